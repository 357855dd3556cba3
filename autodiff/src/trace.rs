//! What `compile` learns while a step runs once, eagerly, as a trace.
//!
//! A trace must capture every effect of the step, not just the dataflow that ops record:
//!
//! - *Assignments* ([`Tensor::assign`], `Var::set`, an optimiser's step, BatchNorm's running
//!   statistics, a generator's state) are not applied while tracing: each becomes an update of
//!   the program, applied at every call. Later reads of an assigned leaf in the same trace see
//!   the assigned value (functionalisation), except for a parameter that requires grad, whose
//!   read after its update is an error (its gradient would flow through the update). That
//!   error is kept and returned by `compile` when the step ends, not by the op that read the
//!   parameter: ops that cannot fail (unary maps, scalar operands, full reductions) return a
//!   `Tensor`, so the read goes on with the value before the update, and the trace is refused.
//! - *Gradients* accumulated into `.grad()` slots are program values: the slots are restored
//!   when the trace ends, and each call leaves in them what the step left (a holder tensor per
//!   parameter that the program writes in place). A gradient already present when the step
//!   reads it is read at every call (accumulation across calls), and whether one is present is
//!   checked before each call, like a guard.
//! - *Reads* of a value that depends on the step's inputs or state (`item`, `to_vec`) are
//!   guards: the value may steer Rust control flow, so the program checks it at every call and
//!   is re-traced when it differs.
//! - *Checkpointed segments* ([`checkpoint`](crate::checkpoint)) mark the values computed
//!   inside them, which the compiler recomputes for the backward pass instead of keeping.

use crate::{Error, Result, Tensor};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::panic::Location;

/// A value read during the trace.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    /// The tensor read.
    pub tensor: Tensor,
    /// What the trace saw.
    pub values: Vec<f64>,
    /// Who read it.
    pub location: &'static Location<'static>,
}

/// The effects a finished trace hands to the lowering.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// `(leaf, new value)`, in assignment order (gradient holders last).
    pub updates: Vec<(Tensor, Tensor)>,
    /// Leaves the program reads at every call beyond parameters and update targets.
    pub state: Vec<Tensor>,
    /// After each call: `(leaf, holder)` sets the leaf's `.grad()` to the holder (or clears it).
    pub grads: Vec<(Tensor, Option<Tensor>)>,
    /// Gradient slots the step read before writing them, with the id of what they held (the
    /// holder the program reads, or none): checked before each call, since a program that saw
    /// an empty slot cannot accumulate into one that is now full, nor the reverse.
    pub grad_expected: Vec<(Tensor, Option<usize>)>,
    /// Values read during the trace.
    pub guards: Vec<Guard>,
    /// Flags read during the trace, with the value seen.
    pub flags: Vec<(Flag, bool)>,
    /// Ids of tensors computed inside checkpointed segments, their outputs included.
    pub recompute: HashSet<usize>,
    /// Ids of the outputs of checkpointed segments (kept, not recomputed).
    pub segment_outputs: HashSet<usize>,
    /// Ids of tensors computed by a backward pass.
    pub backward: HashSet<usize>,
    /// The first misuse found while tracing (a parameter read after its update): the trace
    /// is refused with it.
    pub error: Option<Error>,
}

#[derive(Default)]
struct Trace {
    /// Ids of the traced step inputs.
    inputs: HashSet<usize>,
    /// Leaf id → position in `updates`.
    assigned: HashMap<usize, usize>,
    updates: Vec<(Tensor, Tensor)>,
    state: Vec<Tensor>,
    state_ids: HashSet<usize>,
    /// `(leaf, what its slot held when the trace first touched it, the holder the program
    /// writes the step's gradient into when it is a variable already)`.
    grads: Vec<(Tensor, Option<Tensor>, Option<Tensor>)>,
    grad_ids: HashSet<usize>,
    grad_expected: Vec<(Tensor, Option<usize>)>,
    guards: Vec<Guard>,
    flags: Vec<(Flag, bool)>,
    recompute: HashSet<usize>,
    segment_outputs: HashSet<usize>,
    backward: HashSet<usize>,
    /// Nesting depth of checkpointed segments.
    segments: usize,
    /// Nesting depth of backward passes.
    backwards: usize,
    /// See [`Effects::error`].
    error: Option<Error>,
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Trace) -> R) -> Option<R> {
    TRACE.with(|t| t.borrow_mut().as_mut().map(f))
}

/// Starts recording a trace on this thread with these traced inputs.
pub(crate) fn begin(inputs: &[Tensor]) -> Result<()> {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_some() {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: "a compiled step was called while another step is being traced; compile the \
                         outer step only (its trace includes everything the inner one does)"
                    .into(),
            });
        }
        *t = Some(Trace { inputs: inputs.iter().map(Tensor::id).collect(), ..Trace::default() });
        Ok(())
    })
}

/// Ends the trace: restores every gradient slot it touched and returns its effects. Also run
/// (and its result dropped) when the step fails.
pub(crate) fn end() -> Effects {
    let Some(trace) = TRACE.with(|t| t.borrow_mut().take()) else { return Effects::default() };
    let mut effects = Effects {
        updates: trace.updates,
        state: trace.state,
        guards: trace.guards,
        flags: trace.flags,
        recompute: trace.recompute,
        segment_outputs: trace.segment_outputs,
        backward: trace.backward,
        grads: Vec::new(),
        grad_expected: trace.grad_expected,
        error: trace.error,
    };
    for (leaf, restore, holder) in trace.grads {
        let last = std::mem::replace(&mut *leaf.grad_lock(), restore);
        match last {
            // untouched since the trace began: nothing to write
            Some(g) if holder.as_ref().is_some_and(|h| h.id() == g.id()) => {}
            Some(g) => {
                // its first value is the traced one; the program writes it at every call
                let holder = holder.unwrap_or_else(|| Tensor::variable(&g));
                effects.updates.push((holder.clone(), g));
                effects.grads.push((leaf, Some(holder)));
            }
            None => effects.grads.push((leaf, None)),
        }
    }
    effects
}

/// Records `target ← value` (shapes checked by the caller).
pub(crate) fn assign(target: &Tensor, value: &Tensor) {
    with(|t| match t.assigned.get(&target.id()) {
        Some(&i) => t.updates[i].1 = value.clone(),
        None => {
            t.assigned.insert(target.id(), t.updates.len());
            t.updates.push((target.clone(), value.clone()));
        }
    });
}

/// What an op reads for operand `t`: the value assigned to it earlier in the trace, if any.
pub(crate) fn current(t: &Tensor) -> Option<Tensor> {
    if !t.is_leaf() {
        return None;
    }
    with(|trace| {
        let &i = trace.assigned.get(&t.id())?;
        if t.requires_grad() {
            // kept for `compile` to return: the op reading it may be one that cannot fail
            trace.error.get_or_insert_with(|| Error::InvalidArgument {
                op: "compile",
                reason: format!(
                    "a parameter of shape {:?} is read after it was updated in the same compiled step; \
                     run one update per call (its gradient would flow through the update)",
                    t.shape()
                ),
            });
            return None;
        }
        Some(trace.updates[i].1.clone())
    })
    .flatten()
}

/// Registers a leaf the program must read at every call.
pub(crate) fn add_state(t: &Tensor) {
    with(|trace| {
        if trace.state_ids.insert(t.id()) {
            trace.state.push(t.clone());
        }
    });
}

/// Called before a leaf's gradient slot is used during a trace: remembers what it held. When
/// the step reads the slot first (accumulation), a gradient already present becomes state the
/// program reads (a holder it owns), and what the slot held is checked at every call; when
/// the step first overwrites it (`zero_grad`, `set_grad`), what it held does not matter.
pub(crate) fn touch_grad(leaf: &Tensor, overwrite: bool) {
    let first = with(|t| t.grad_ids.insert(leaf.id())).unwrap_or(false);
    if !first {
        return;
    }
    let original = leaf.grad_lock().clone();
    let (restore, holder) = match original {
        Some(g) if !overwrite => {
            let holder = if g.is_variable() { g } else { Tensor::variable(&g) };
            *leaf.grad_lock() = Some(holder.clone());
            add_state(&holder);
            (Some(holder.clone()), Some(holder))
        }
        // a holder must be a variable the program may write in place
        Some(g) => (Some(g.clone()), g.is_variable().then_some(g)),
        None => (None, None),
    };
    with(|t| {
        if !overwrite {
            t.grad_expected.push((leaf.clone(), holder.as_ref().map(Tensor::id)));
        }
        t.grads.push((leaf.clone(), restore, holder));
    });
}

/// Records a read of `t` by `item`/`to_vec` during a trace, when its value depends on the
/// step's inputs or state.
pub(crate) fn read(t: &Tensor, location: &'static Location<'static>) {
    let dynamic = with(|trace| depends_on_inputs(trace, t)).unwrap_or(false);
    if dynamic {
        let values = t.read().to_f64_vec();
        with(|trace| trace.guards.push(Guard { tensor: t.clone(), values, location }));
    }
}

fn depends_on_inputs(trace: &Trace, t: &Tensor) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![t.clone()];
    while let Some(t) = stack.pop() {
        if !seen.insert(t.id()) {
            continue;
        }
        if t.inputs().is_empty() {
            let id = t.id();
            if trace.inputs.contains(&id)
                || t.requires_grad()
                || t.is_variable()
                || trace.state_ids.contains(&id)
                || trace.assigned.contains_key(&id)
            {
                return true;
            }
        }
        stack.extend(t.inputs().iter().cloned());
    }
    false
}

/// Marks a tensor made inside a checkpointed segment or a backward pass.
pub(crate) fn made(t: &Tensor) {
    with(|trace| {
        if trace.segments > 0 {
            trace.recompute.insert(t.id());
        }
        if trace.backwards > 0 {
            trace.backward.insert(t.id());
        }
    });
}

/// Runs `f` as a checkpointed segment of the trace; its `outputs` stay stored.
pub(crate) fn segment<R>(f: impl FnOnce() -> Result<R>, outputs: impl Fn(&R) -> Vec<usize>) -> Result<R> {
    with(|t| t.segments += 1);
    let result = f();
    with(|t| t.segments -= 1);
    if let Ok(r) = &result {
        let kept = outputs(r);
        with(|t| t.segment_outputs.extend(kept));
    }
    result
}

/// Runs `f` as a backward pass of the trace.
pub(crate) fn backward<R>(f: impl FnOnce() -> R) -> R {
    with(|t| t.backwards += 1);
    let result = f();
    with(|t| t.backwards -= 1);
    result
}

/// A boolean setting a step may read, such as a layer's training mode: Rust control flow that a
/// trace would freeze. Reading it inside a traced step makes it a guard, checked before every
/// call of the compiled program (the step is traced again for a new value). Clones share the
/// value.
#[derive(Clone, Debug, Default)]
pub struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Flag {
    /// A flag holding `value`.
    pub fn new(value: bool) -> Flag {
        Flag(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(value)))
    }

    /// The value (recorded as a guard while tracing).
    pub fn get(&self) -> bool {
        let value = self.peek();
        with(|t| {
            if !t.flags.iter().any(|(f, _)| std::sync::Arc::ptr_eq(&f.0, &self.0)) {
                t.flags.push((self.clone(), value));
            }
        });
        value
    }

    /// Sets the value.
    pub fn set(&self, value: bool) {
        self.0.store(value, std::sync::atomic::Ordering::Relaxed);
    }

    /// The value, without recording a guard.
    pub(crate) fn peek(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

//! The graph compiler: trace a step once, optimise it, replay it (like `jax.jit` and
//! `torch.compile`).
//!
//! [`compile`] wraps the training step as it is written eagerly — forward, loss on integer
//! labels, `backward`, gradient clipping, `optimizer.step()` — in one wrapper. On the first call
//! with a given input signature (shapes, dtypes, requires-grad flags) the step runs once,
//! eagerly, as a trace: every op keeps its inputs, and every effect is recorded instead of
//! applied (assignments to parameters, optimiser state, running statistics and generator
//! states; gradients left in `.grad()`). The recorded dataflow is lowered into a petgraph IR
//! ([`ir`]), rewritten by a pipeline of passes ([`passes`]: dead code, algebraic identities,
//! constants, common subexpressions, rematerialisation of checkpointed segments, matmul
//! epilogues, elementwise fusion into single-pass kernels, which [`kernel`] compiles to
//! machine code through `graphgrad_ops::jit`), scheduled and memory-planned
//! ([`memory`]), and cached. Every call then replays the planned program on the new inputs:
//! state leaves are read from their tensors at each call and the step's updates are written
//! back into them, in place where the planner can.
//!
//! ```
//! use graphgrad_autodiff::compile::compile;
//! use graphgrad_autodiff::{DType, Tensor, Var};
//! // one SGD step of least squares, y ≈ x·w, written as in eager mode
//! let w = Var::new("w", &Tensor::zeros(&[3, 1], DType::F32)?);
//! let mut train = compile(|io: &[Tensor]| {
//!     w.zero_grad();
//!     let loss = io[0].matmul(&w)?.sub(&io[1])?.square().mean_all();
//!     loss.backward()?;
//!     w.set(&w.sub(&w.grad().unwrap().mul_scalar(0.1))?)?;
//!     Ok::<_, graphgrad_autodiff::Error>(loss)
//! });
//! let x = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], &[2, 3])?;
//! let y = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1])?;
//! let first = train.call(&[x.clone(), y.clone()])?[0].item()?;
//! let second = train.call(&[x, y])?[0].item()?;
//! assert!(second < first);
//! println!("{}", train.programs().next().unwrap().log());
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```
//!
//! # What is and is not captured
//!
//! - *Inputs* are the tensors passed to [`Compiled::call`]: float data, and `i64` labels,
//!   token ids and indices (every indexing op and loss takes them as tensors), new at every
//!   call. Index lists given as `&[usize]` would be constants of the program, so tracing them
//!   is an error unless wrapped in [`constant_indices`].
//! - *State* is read at every call: parameters (leaves that require grad), variables
//!   ([`Tensor::variable`]: learning rates, step counts, running statistics, generator
//!   states) and gradients present before the call. Every other leaf is a constant.
//! - *Effects*: [`Tensor::assign`] (and everything built on it) becomes an update applied at
//!   every call; `.grad()` holds after each call what the step left there.
//! - *Reads*: a value computed from the inputs or state and read with `item`/`to_vec` may steer
//!   Rust control flow, which a trace freezes. Such a read is a guard: each call checks that the
//!   value is what the trace saw; when it is not, the call's updates are discarded and the step
//!   is traced again for the new value (and the recompilation logged). A value that differs at
//!   every call fails after [`CompileOptions::max_retraces`] retraces, with an error naming
//!   where it was read: return it from the step instead.
//! - *Cache*: one program per signature and guard outcome, at most
//!   [`CompileOptions::cache_size`] (default 8) in all, the least recently used evicted first,
//!   each recompilation and eviction logged ([`Compiled::log`], and on standard error).
//! - *Memory*: values computed inside [`checkpoint`](crate::checkpoint) segments are
//!   recomputed for the backward pass instead of kept, and the remat pass does the same for
//!   cheap elementwise values ([`CompileOptions::remat`]); the log reports the bytes saved,
//!   and a program whose recomputation planned a higher peak is compiled without it.

pub mod dot;
pub mod ir;
pub mod kernel;
mod lower;
pub mod memory;
pub mod passes;
mod profile;
mod replay;

use crate::mode::TracingGuard;
use crate::{trace, DType, Error, Result, Tensor};
use graphgrad_ops::Shape;
use ir::Graph;
use memory::MemoryPlan;
use passes::PassReport;
pub use profile::{KernelTime, Profile};
use replay::Executor;
use std::fmt::Write;

/// Whether a step is being traced on this thread: library code with an eager fast path (an
/// optimiser's fused update) records tensor ops instead while this is true.
pub fn tracing() -> bool {
    crate::mode::tracing()
}

/// Runs `f` (inside a traced step) allowing index lists — `gather`, `index_select`,
/// `embedding`, a loss's class targets — that are truly the same on every call to become
/// constants of the program. Outside this scope a traced op taking an index list is an
/// error, because a list that changes between calls would be silently replaced by the traced
/// one: pass such indices as an `i64` tensor input.
pub fn constant_indices<R>(f: impl FnOnce() -> R) -> R {
    crate::mode::with_constant_indices(f)
}

/// Which passes run, and whether the IR is verified after each one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Algebraic simplification (`simplify`).
    pub simplify: bool,
    /// Constant folding (`fold`).
    pub fold_constants: bool,
    /// Common-subexpression elimination (`cse`).
    pub eliminate_common_subexpressions: bool,
    /// Bias/activation epilogues of matmuls and convolutions (`epilogue`).
    pub fuse_epilogues: bool,
    /// Elementwise and reduction fusion (`fuse`), and max pooling's two ops as one (`pool`).
    pub fuse_elementwise: bool,
    /// Let the memory planner write updates straight into parameters and overwrite dying
    /// operands in place.
    pub inplace: bool,
    /// Recompute cheap elementwise values for the backward pass instead of keeping them
    /// (`remat`; checkpointed segments are recomputed whatever this says).
    pub remat: bool,
    /// Run the IR verifier after every pass (default: in debug builds).
    pub verify: bool,
    /// Programs kept, over all signatures and guard outcomes (default 8); the least recently
    /// used is evicted first.
    pub cache_size: usize,
    /// Retraces in a row caused by guards before a call fails (default 8): a value read with
    /// `item` that changes at every call would otherwise recompile forever.
    pub max_retraces: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            simplify: true,
            fold_constants: true,
            eliminate_common_subexpressions: true,
            fuse_epilogues: true,
            fuse_elementwise: true,
            inplace: true,
            remat: true,
            verify: cfg!(debug_assertions),
            cache_size: 8,
            max_retraces: 8,
        }
    }
}

impl CompileOptions {
    /// Every optimisation off (dead-code elimination and memory planning still run): the
    /// traced graph replayed op by op.
    pub fn unoptimized() -> Self {
        CompileOptions {
            simplify: false,
            fold_constants: false,
            eliminate_common_subexpressions: false,
            fuse_epilogues: false,
            fuse_elementwise: false,
            inplace: false,
            remat: false,
            verify: cfg!(debug_assertions),
            ..CompileOptions::default()
        }
    }
}

/// What a step returns: the tensors each call hands back (copies, detached). Implemented for
/// a tensor, a vector, an array or a pair of tensors, and `()`.
pub trait IntoOutputs {
    /// The returned tensors, in order.
    fn into_outputs(self) -> Vec<Tensor>;
}

impl IntoOutputs for Tensor {
    fn into_outputs(self) -> Vec<Tensor> {
        vec![self]
    }
}

impl IntoOutputs for Vec<Tensor> {
    fn into_outputs(self) -> Vec<Tensor> {
        self
    }
}

impl<const N: usize> IntoOutputs for [Tensor; N] {
    fn into_outputs(self) -> Vec<Tensor> {
        self.into()
    }
}

impl IntoOutputs for (Tensor, Tensor) {
    fn into_outputs(self) -> Vec<Tensor> {
        vec![self.0, self.1]
    }
}

impl IntoOutputs for () {
    fn into_outputs(self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// Input shapes, dtypes and requires-grad flags: the cache key.
pub type Signature = Vec<(Shape, DType, bool)>;

fn signature(inputs: &[Tensor]) -> Signature {
    inputs.iter().map(|t| (t.shape().into(), t.dtype(), t.requires_grad())).collect()
}

/// A value the trace read, checked at every call.
#[derive(Debug)]
struct GuardCheck {
    /// Position among the program's outputs.
    output: usize,
    values: Vec<f64>,
    location: &'static std::panic::Location<'static>,
}

impl GuardCheck {
    /// Whether `t` holds the traced values (NaN matches NaN: a check, not arithmetic).
    fn holds(&self, t: &Tensor) -> bool {
        let now = t.read().to_f64_vec();
        now.len() == self.values.len()
            && now.iter().zip(&self.values).all(|(a, b)| a.to_bits() == b.to_bits() || a == b)
    }
}

/// What running a program gave.
enum Run {
    Done(Vec<Tensor>),
    /// A guard failed: nothing was written; the text says which.
    GuardFailed(String),
}

/// One traced, optimised and planned step for one input signature (and guard outcome).
#[derive(Debug)]
pub struct Program {
    signature: Signature,
    graph: Graph,
    traced_nodes: usize,
    reports: Vec<PassReport>,
    plan: MemoryPlan,
    executor: Executor,
    state: Vec<Tensor>,
    /// How many of the graph's outputs the step returns (guard values follow).
    returned: usize,
    guards: Vec<GuardCheck>,
    /// After each call: each leaf's `.grad()` becomes its holder (or none).
    grads: Vec<(Tensor, Option<Tensor>)>,
    /// Flags read during the trace, checked before each call.
    flags: Vec<(crate::Flag, bool)>,
    /// Gradient slots the step accumulates into, with the id of the holder it read (or none
    /// when it saw an empty slot), checked before each call.
    grad_expected: Vec<(Tensor, Option<usize>)>,
    /// Recomputed nodes and the planned peak without recomputation.
    remat: Option<(usize, usize)>,
}

impl Program {
    /// Traces `step` on `inputs` and compiles it.
    pub fn trace<F, R, E>(
        step: &mut F,
        inputs: &[Tensor],
        options: &CompileOptions,
    ) -> std::result::Result<Program, E>
    where
        F: FnMut(&[Tensor]) -> std::result::Result<R, E> + ?Sized,
        R: IntoOutputs,
        E: From<Error>,
    {
        let traced: Vec<Tensor> = inputs
            .iter()
            .map(|t| Tensor::leaf(t.read().clone(), t.shape(), t.requires_grad()))
            .collect::<Result<_>>()?;
        trace::begin(&traced)?;
        let result = {
            let _tracing = TracingGuard::new();
            step(&traced)
        };
        // Always end the trace (restoring gradient slots), also when the step failed.
        let mut effects = trace::end();
        // a misuse the step's ops could not report (a parameter read after its update)
        if let Some(e) = effects.error.take() {
            return Err(e.into());
        }
        let outputs = result?.into_outputs();
        Ok(Program::build(inputs, &traced, outputs, effects, options)?)
    }

    fn build(
        inputs: &[Tensor],
        traced: &[Tensor],
        outputs: Vec<Tensor>,
        effects: trace::Effects,
        options: &CompileOptions,
    ) -> Result<Program> {
        let returned = outputs.len();
        let mut roots = outputs;
        roots.extend(effects.guards.iter().map(|g| g.tensor.clone()));
        let (mut graph, state) = lower::lower(
            traced,
            &roots,
            &effects.updates,
            &effects.state,
            (&effects.recompute, &effects.segment_outputs),
            &effects.backward,
        )?;
        drop(roots);
        let traced_nodes = graph.node_count();
        let param_writes = effects.guards.is_empty();
        let lowered = graph.clone();
        let checkpointed = !graph.recompute.is_empty();
        let mut reports = passes::run_pipeline(&mut graph, &passes::pipeline(options, true), options.verify)?;
        let mut plan = memory::plan_memory(&graph, options.inplace, param_writes)?;
        // What recomputation saved: the same program planned without it.
        // the remat pass only adds nodes: its clones
        let clones = reports.iter().find(|r| r.name == "remat").map_or(0, |r| r.nodes_after - r.nodes_before);
        let remat = if clones == 0 {
            None
        } else {
            let mut kept = lowered;
            let kept_reports =
                passes::run_pipeline(&mut kept, &passes::pipeline(options, false), options.verify)?;
            let without = memory::plan_memory(&kept, options.inplace, param_writes)?;
            if without.peak_bytes < plan.peak_bytes && !checkpointed {
                // the policy's recomputation made the peak worse (slots packed differently)
                (graph, reports, plan) = (kept, kept_reports, without);
                None
            } else {
                Some((clones, without.peak_bytes))
            }
        };
        reports.push(PassReport {
            name: "plan_memory",
            nodes_before: graph.node_count(),
            nodes_after: graph.node_count(),
            bytes_before: plan.unplanned_bytes,
            bytes_after: plan.peak_bytes,
        });
        let executor = Executor::new(&graph, &plan);
        let guards = effects
            .guards
            .into_iter()
            .enumerate()
            .map(|(i, g)| GuardCheck { output: returned + i, values: g.values, location: g.location })
            .collect();
        Ok(Program {
            signature: signature(inputs),
            graph,
            traced_nodes,
            reports,
            plan,
            executor,
            state,
            returned,
            guards,
            grads: effects.grads,
            flags: effects.flags,
            grad_expected: effects.grad_expected,
            remat,
        })
    }

    /// Replays the program on `inputs` (same signature as the trace), writing the updates
    /// back into their leaves, and returns the outputs. A failed guard is an error here (a
    /// [`Compiled`] step re-traces instead).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        match self.try_run(inputs)? {
            Run::Done(outputs) => Ok(outputs),
            Run::GuardFailed(why) => Err(Error::InvalidArgument { op: "compile", reason: why }),
        }
    }

    fn try_run(&mut self, inputs: &[Tensor]) -> Result<Run> {
        let sig = signature(inputs);
        if sig != self.signature {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: format!("inputs {sig:?} do not match the traced signature {:?}", self.signature),
            });
        }
        if let Some(i) = inputs.iter().position(|t| self.state.iter().any(|s| s.id() == t.id())) {
            return Err(Error::InvalidArgument {
                op: "compile",
                reason: format!("input {i} is also a parameter of the step; pass a copy (`detach`)"),
            });
        }
        if let Some((_, traced)) = self.flags.iter().find(|(f, v)| f.peek() != *v) {
            return Ok(Run::GuardFailed(format!(
                "a flag (a layer's training mode) read by the step was {traced} when traced and is {} now",
                !traced
            )));
        }
        if let Some((leaf, traced)) =
            self.grad_expected.iter().find(|(leaf, id)| leaf.grad_lock().as_ref().map(Tensor::id) != *id)
        {
            let what = match (traced, leaf.grad_lock().is_some()) {
                (None, _) => "was empty when traced and holds a gradient now",
                (Some(_), false) => "held a gradient when traced and is empty now",
                (Some(_), true) => "now holds a gradient set outside the step",
            };
            return Ok(Run::GuardFailed(format!(
                "the .grad() of a parameter of shape {:?} that the step accumulates into {what}",
                leaf.shape()
            )));
        }
        let mut failed = None;
        let guards = &self.guards;
        let outputs = self.executor.run(inputs, &self.state, |outs| {
            failed = guards.iter().find(|g| !g.holds(&outs[g.output])).map(|g| {
                let now = outs[g.output].read().to_f64_vec();
                format!(
                    "the value read at {} was {} when traced and is {} now",
                    g.location,
                    preview(&g.values),
                    preview(&now)
                )
            });
            failed.is_none()
        })?;
        let Some(mut outputs) = outputs else {
            return Ok(Run::GuardFailed(failed.unwrap_or_default()));
        };
        for (leaf, holder) in &self.grads {
            *leaf.grad_lock() = holder.clone();
        }
        outputs.truncate(self.returned);
        Ok(Run::Done(outputs))
    }

    /// Runs the program `calls` times on `inputs` (updates included, as [`run`](Self::run)
    /// does) timing each kernel: where a step's time goes.
    ///
    /// ```
    /// use graphgrad_autodiff::compile::Program;
    /// use graphgrad_autodiff::{DType, Error, Tensor};
    /// let x = Tensor::ones(&[256, 64], DType::F32)?;
    /// let w = Tensor::ones(&[64, 32], DType::F32)?;
    /// let mut program = Program::trace(
    ///     &mut |io: &[Tensor]| Ok::<_, Error>(io[0].matmul(&io[1])?.relu().sum_all()),
    ///     &[x.clone(), w.clone()],
    ///     &Default::default(),
    /// )?;
    /// let profile = program.profile(&[x, w], 10)?;
    /// assert!(profile.kernels.iter().any(|k| k.kernel.starts_with("matmul")));
    /// println!("{profile}");
    /// # Ok::<(), graphgrad_autodiff::Error>(())
    /// ```
    pub fn profile(&mut self, inputs: &[Tensor], calls: usize) -> Result<Profile> {
        let calls = calls.max(1);
        let described = self.executor.describe_steps();
        self.executor.profile = Some(vec![std::time::Duration::ZERO; described.len()]);
        let started = std::time::Instant::now();
        let mut result = Ok(());
        for _ in 0..calls {
            if let Err(e) = self.run(inputs) {
                result = Err(e);
                break;
            }
        }
        let per_call = started.elapsed() / calls as u32;
        let times = self.executor.profile.take().unwrap_or_default();
        result?;
        let kernels = described
            .into_iter()
            .zip(times)
            .enumerate()
            .map(|(index, ((kernel, shapes), time))| KernelTime {
                index,
                kernel,
                shapes,
                mean: time / calls as u32,
            })
            .collect();
        Ok(Profile { calls, per_call, kernels })
    }

    /// What each pass did, in order (the last entry is the memory planner).
    pub fn reports(&self) -> &[PassReport] {
        &self.reports
    }

    /// The pass log: one line per pass, like `fuse: 120 -> 64 nodes, 3.10 MB -> 1.20 MB`.
    pub fn log(&self) -> String {
        let mut s = format!("trace: {} nodes\n", self.traced_nodes);
        for r in &self.reports {
            let _ = writeln!(s, "{r}");
        }
        let _ = writeln!(
            s,
            "memory: {} slots, {} in-place outputs, {} in-place updates",
            self.plan.slots.len(),
            self.plan.inplace_outputs,
            self.plan.inplace_updates
        );
        if let Some((nodes, without)) = self.remat {
            let _ = writeln!(
                s,
                "remat: {nodes} nodes recomputed, peak {} -> {} (saved {})",
                passes::human_bytes(without),
                passes::human_bytes(self.plan.peak_bytes),
                passes::human_bytes(without.saturating_sub(self.plan.peak_bytes))
            );
        }
        if !(self.guards.is_empty() && self.flags.is_empty()) {
            let _ = writeln!(
                s,
                "guards: {} values and {} flags read during the trace",
                self.guards.len(),
                self.flags.len()
            );
        }
        s
    }

    /// The optimised graph in Graphviz dot syntax.
    pub fn to_dot(&self) -> String {
        dot::to_dot(&self.graph)
    }

    /// The optimised IR.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Nodes in the optimised IR.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Nodes in the IR as traced, before any pass.
    pub fn traced_node_count(&self) -> usize {
        self.traced_nodes
    }

    /// The schedule and buffer plan.
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The state leaves (parameters, buffers) the program reads, as `Param(i)`.
    pub fn state(&self) -> &[Tensor] {
        &self.state
    }

    /// The input signature this program was traced for.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The planned peak bytes this program would have without rematerialisation (`None` when
    /// nothing is recomputed): compare with `memory_plan().peak_bytes`.
    pub fn peak_bytes_without_remat(&self) -> Option<usize> {
        self.remat.map(|(_, without)| without)
    }

    /// How many values read during the trace each call checks.
    pub fn guard_count(&self) -> usize {
        self.guards.len()
    }
}

/// At most a few values of a guard, for messages.
fn preview(values: &[f64]) -> String {
    match values {
        [v] => format!("{v}"),
        _ if values.len() <= 4 => format!("{values:?}"),
        _ => format!("{:?}… ({} values)", &values[..4], values.len()),
    }
}

/// A step function with its compiled programs (see the module docs).
pub struct Compiled<F> {
    step: F,
    /// Run the step as it is, without tracing (`compile_if(false, ..)`).
    eager: bool,
    options: CompileOptions,
    /// Least recently used first.
    cache: Vec<Program>,
    traces: usize,
    /// Guard-caused retraces in a row.
    retraces: usize,
    log: Vec<String>,
}

/// Compiles `step` with the default options (see the module docs).
pub fn compile<F>(step: F) -> Compiled<F> {
    compile_with(step, CompileOptions::default())
}

/// Compiles `step` with `options`.
pub fn compile_with<F>(step: F, options: CompileOptions) -> Compiled<F> {
    Compiled { step, eager: false, options, cache: Vec::new(), traces: 0, retraces: 0, log: Vec::new() }
}

/// Compiles `step` when `enabled`, else runs it eagerly at every call: one flag switches a
/// program between modes with the very same step body.
///
/// ```
/// use graphgrad_autodiff::compile::compile_if;
/// use graphgrad_autodiff::{DType, Error, Tensor};
/// for compiled in [false, true] {
///     let mut step = compile_if(compiled, |io: &[Tensor]| Ok::<_, Error>(io[0].exp().sum_all()));
///     let y = step.call(&[Tensor::zeros(&[3], DType::F64)?])?;
///     assert_eq!(y[0].item()?, 3.0);
///     assert_eq!(step.trace_count(), usize::from(compiled));
/// }
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn compile_if<F>(enabled: bool, step: F) -> Compiled<F> {
    Compiled { eager: !enabled, ..compile(step) }
}

impl<F> Compiled<F> {
    /// Runs the step on `inputs`: replays the program compiled for their signature whose
    /// guards hold, or traces and compiles the step first.
    pub fn call<R, E>(&mut self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, E>
    where
        F: FnMut(&[Tensor]) -> std::result::Result<R, E>,
        R: IntoOutputs,
        E: From<Error>,
    {
        // Inside another compiled step's trace, the step runs as written and becomes part of
        // that trace (a program replayed there would be a constant of the outer one).
        if self.eager || crate::mode::tracing() {
            return Ok((self.step)(inputs)?.into_outputs());
        }
        let sig = signature(inputs);
        let mut failures = Vec::new();
        for i in (0..self.cache.len()).rev() {
            if self.cache[i].signature != sig {
                continue;
            }
            match self.cache[i].try_run(inputs)? {
                Run::Done(outputs) => {
                    let program = self.cache.remove(i);
                    self.cache.push(program);
                    self.retraces = 0;
                    return Ok(outputs);
                }
                Run::GuardFailed(why) => failures.push(why),
            }
        }
        if !failures.is_empty() {
            self.retraces += 1;
            if self.retraces > self.options.max_retraces {
                return Err(Error::InvalidArgument {
                    op: "compile",
                    reason: format!(
                        "{} retraces in a row: {}; a value that changes at every call cannot steer the \
                         step's control flow, so return it from the step instead of reading it inside",
                        self.retraces - 1,
                        failures[0]
                    ),
                }
                .into());
            }
            self.note(format!("recompiling: {}", failures[0]));
        } else if self.traces > 0 {
            self.note(format!("recompiling for a new input signature {sig:?}"));
        }
        let program = Program::trace(&mut self.step, inputs, &self.options)?;
        // The trace ran the step eagerly; the program has buffers of its own, so the memory
        // the trace freed would only stay resident.
        crate::pool::clear_buffer_pool();
        self.traces += 1;
        self.cache.push(program);
        if self.cache.len() > self.options.cache_size.max(1) {
            let evicted = self.cache.remove(0);
            self.note(format!(
                "evicted the least recently used program (signature {:?}); the cache holds {}",
                evicted.signature, self.options.cache_size
            ));
        }
        let program = self.cache.last_mut().expect("internal invariant: just pushed");
        match program.try_run(inputs)? {
            Run::Done(outputs) => Ok(outputs),
            Run::GuardFailed(why) => Err(Error::InvalidArgument {
                op: "compile",
                reason: format!(
                    "the step reads a value that differs between its trace and its replay: {why}"
                ),
            }
            .into()),
        }
    }

    fn note(&mut self, line: String) {
        eprintln!("graphgrad compile: {line}");
        self.log.push(line);
    }

    /// The most recently used program compiled for the signature of `inputs`, if any.
    pub fn program(&self, inputs: &[Tensor]) -> Option<&Program> {
        let sig = signature(inputs);
        self.cache.iter().rev().find(|p| p.signature == sig)
    }

    /// Profiles the program for the signature of `inputs` over `calls` calls (see
    /// [`Program::profile`]), compiling it first if needed: the calls train, as calls of the
    /// step do. An error in eager mode (`compile_if(false, ..)`), which has no program.
    pub fn profile<R, E>(&mut self, inputs: &[Tensor], calls: usize) -> std::result::Result<Profile, E>
    where
        F: FnMut(&[Tensor]) -> std::result::Result<R, E>,
        R: IntoOutputs,
        E: From<Error>,
    {
        if self.eager {
            return Err(Error::InvalidArgument {
                op: "profile",
                reason: "the step runs eagerly: nothing is compiled".into(),
            }
            .into());
        }
        self.call(inputs)?;
        let sig = signature(inputs);
        let program = self
            .cache
            .iter_mut()
            .rev()
            .find(|p| p.signature == sig)
            .expect("internal invariant: just called");
        Ok(program.profile(inputs, calls)?)
    }

    /// Every cached program, least recently used first.
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.cache.iter()
    }

    /// How many times the step has been traced (once per new signature or guard outcome).
    pub fn trace_count(&self) -> usize {
        self.traces
    }

    /// Recompilations and evictions, one line each (also written to standard error).
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Whether calls are compiled (false for `compile_if(false, ..)`).
    pub fn is_compiled(&self) -> bool {
        !self.eager
    }

    /// The options in use.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }
}

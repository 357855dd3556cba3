//! `ParamOptimizer<R>`: the one implementation of [`Optimizer`] shared by every element-wise
//! rule (SGD, Adam, AdamW, RMSprop, Adagrad). It owns parameter groups and per-parameter
//! state, and runs each rule's one definition ([`UpdateRule::update`], written in [`Num`]) in
//! both modes:
//!
//! - eagerly, element by element over the raw slices of the parameter, its gradient and its
//!   state buffers: one fused pass, no temporary tensors;
//! - inside a step traced by `compile`, on whole tensors: the update is recorded (and fused by
//!   the compiler into one kernel per parameter) and assigned to the parameter and its state,
//!   so every call of the compiled step applies it. The learning rate of each group and the
//!   step count of each parameter are variables ([`Tensor::variable`]) that the program reads
//!   at every call: a schedule changes the rate without recompiling.
//!
//! Invariants: parameter names are unique across groups; a parameter's state buffers have its
//! element type and element count (slots the configuration does not use are empty); each
//! group's learning-rate variable holds its configuration's rate.

use crate::error::invalid;
use crate::num::{Lanes, LANES};
use crate::optimizer::{GroupState, OptimizerState, ParamState};
use crate::saved::{SavedData, SavedTensor};
use crate::{Error, Num, Optimizer, Range, Result, Settings};
use graphgrad_autodiff::{Buffer, DType, Elem, Storage, Tensor, Var};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The hyper-parameters of one parameter group together with the update they define.
///
/// Implement it to add an element-wise optimiser: declare its [`Settings`] with
/// [`settings!`](crate::settings!) and write its update here; [`ParamOptimizer`] does the rest
/// (groups, state, checkpoints).
pub trait UpdateRule: Settings + Clone + std::fmt::Debug + Sync {
    /// Names of the per-parameter state buffers, in the order `update` receives them.
    const SLOTS: &'static [&'static str];

    /// Checks every hyper-parameter, with a message naming the bad one: the declared ranges,
    /// and whatever relations between settings the rule needs on top.
    fn validate(&self) -> Result<()> {
        self.check_ranges()
    }

    /// The per-step coefficients of the update from the learning rate and the step number
    /// `t` (1 for the first update): computed once per parameter and step, in f64 eagerly and
    /// as rank-0 tensors in a compiled step.
    fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S>;

    /// One update: the new parameter from the parameter `p`, its gradient `g` and the
    /// coefficients `k`, reading and writing the state `slots` (a slot the configuration does
    /// not use holds zero and is not kept). Eagerly `X` is one element; compiled, the whole
    /// tensor.
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X;

    /// Whether this configuration uses state slot `slot` (unused slots stay empty). A slot
    /// that becomes used after a parameter's first step (momentum switched on mid-run) starts
    /// from [`initial_slot_value`](Self::initial_slot_value), not from PyTorch's lazy copy of
    /// the gradient.
    fn uses_slot(&self, _slot: usize) -> bool {
        true
    }
    /// The value a used slot starts with (zero unless overridden).
    fn initial_slot_value(&self, _slot: usize) -> f64 {
        0.0
    }
}

/// Parameters that share hyper-parameters.
#[derive(Clone, Debug)]
pub struct ParamGroup<C> {
    /// The parameters with their (unique) names.
    pub params: Vec<(String, Var)>,
    /// The group's hyper-parameters.
    pub config: C,
}

impl<C> ParamGroup<C> {
    /// A group of `params` updated with `config`.
    pub fn new(params: Vec<(String, Var)>, config: C) -> ParamGroup<C> {
        ParamGroup { params, config }
    }
}

/// One parameter's live state: its update count (an f64 variable, exact to 2⁵³) and its slot
/// buffers (variables).
#[derive(Clone, Debug)]
struct Slots {
    step: Tensor,
    buffers: Vec<Tensor>,
}

impl Slots {
    fn steps(&self) -> u64 {
        self.step.read().to_f64_vec()[0] as u64
    }
}

/// The most updates a parameter's step count holds exactly (it is an f64 variable).
const MAX_STEPS: u64 = 1 << 53;

fn step_variable(step: u64) -> Tensor {
    Tensor::variable(&Tensor::scalar(step as f64))
}

fn lr_variable(lr: f64) -> Tensor {
    Tensor::variable(&Tensor::scalar(lr))
}

/// An optimiser that updates each parameter independently with rule `R` (see the aliases
/// [`Sgd`](crate::Sgd), [`Adam`](crate::Adam), [`AdamW`](crate::AdamW),
/// [`RmsProp`](crate::RmsProp), [`Adagrad`](crate::Adagrad)).
#[derive(Clone, Debug)]
pub struct ParamOptimizer<R: UpdateRule> {
    groups: Vec<ParamGroup<R>>,
    /// Each group's learning rate as a variable, for compiled steps.
    lrs: Vec<Tensor>,
    state: BTreeMap<String, Slots>,
}

impl<R: UpdateRule> ParamOptimizer<R> {
    /// One group of `params` with `config` (validated; names must be unique).
    pub fn new(params: Vec<(String, Var)>, config: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, config)])
    }

    /// Several groups, each with its own hyper-parameters.
    pub fn with_groups(groups: Vec<ParamGroup<R>>) -> Result<Self> {
        let mut optimizer = ParamOptimizer { groups: Vec::new(), lrs: Vec::new(), state: BTreeMap::new() };
        for group in groups {
            optimizer.add_param_group(group)?;
        }
        Ok(optimizer)
    }

    /// Adds a group (validated; its names must not clash with existing ones, and none of its
    /// parameters may be in a group already: it would be updated twice per step).
    pub fn add_param_group(&mut self, group: ParamGroup<R>) -> Result<()> {
        group.config.validate()?;
        let mut seen: BTreeSet<&str> = self.names().collect();
        let mut ids: BTreeMap<usize, &str> =
            self.groups.iter().flat_map(|g| g.params.iter().map(|(n, v)| (v.id(), n.as_str()))).collect();
        for (name, var) in &group.params {
            if !seen.insert(name) {
                invalid!(R::NAME, "parameter name `{name}` appears more than once");
            }
            if let Some(other) = ids.insert(var.id(), name) {
                invalid!(
                    R::NAME,
                    "parameter `{name}` is the same tensor as `{other}`: it would be updated twice"
                );
            }
        }
        self.lrs.push(lr_variable(group.config.lr()));
        self.groups.push(group);
        Ok(())
    }

    /// Writes group `group`'s rate into its variable (read by compiled steps at every call).
    fn sync_lr(&self, group: usize) -> Result<()> {
        let lr = Tensor::scalar(self.groups[group].config.lr());
        Ok(self.lrs[group].assign(&lr)?)
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup<R>] {
        &self.groups
    }

    /// Replaces the hyper-parameters of group `group` (validated; state is kept).
    pub fn set_config(&mut self, group: usize, config: R) -> Result<()> {
        config.validate()?;
        let n = self.groups.len();
        let Some(g) = self.groups.get_mut(group) else {
            invalid!(R::NAME, "group {group} does not exist ({n} groups)");
        };
        g.config = config;
        self.sync_lr(group)
    }

    /// How many updates the parameter `name` has received (0 before its first).
    pub fn step_count(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, Slots::steps)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flat_map(|g| g.params.iter().map(|(n, _)| n.as_str()))
    }
}

/// Elements per parallel task of an update.
const UPDATE_CHUNK: usize = 1 << 15;

/// The most state slots, and per-step coefficients, a rule has.
const MAX_SLOTS: usize = 3;
const MAX_COEFFICIENTS: usize = 4;

/// Runs `rule` over every element of one parameter, on the thread pool for large ones. Every
/// rule is elementwise, so the chunking never changes a result.
fn update_in_chunks<R: UpdateRule, T: Elem>(
    rule: &R,
    k: &[T],
    param: &mut [T],
    grad: &[T],
    slots: Vec<&mut [T]>,
) {
    if param.len() <= UPDATE_CHUNK || rayon::current_num_threads() == 1 {
        let mut slots = slots;
        return update_elements(rule, k, param, grad, &mut slots);
    }
    let chunks = param.len().div_ceil(UPDATE_CHUNK);
    let mut slot_chunks: Vec<Vec<&mut [T]>> = (0..chunks).map(|_| Vec::with_capacity(slots.len())).collect();
    for slot in slots {
        if slot.is_empty() {
            // a slot the rule does not use stays empty in every chunk
            slot_chunks.iter_mut().for_each(|c| c.push(Default::default()));
        } else {
            slot_chunks.iter_mut().zip(slot.chunks_mut(UPDATE_CHUNK)).for_each(|(c, part)| c.push(part));
        }
    }
    param
        .par_chunks_mut(UPDATE_CHUNK)
        .zip(grad.par_chunks(UPDATE_CHUNK))
        .zip(slot_chunks)
        .for_each(|((p, g), mut s)| update_elements(rule, k, p, g, &mut s));
}

/// The rule on each element: runs on [`Lanes`] of consecutive elements (the arithmetic of
/// each op is a loop over the lanes, which compiles to vector code), with an unused (empty)
/// slot reading as zero and not written back.
fn update_elements<R: UpdateRule, T: Elem>(
    rule: &R,
    k: &[T],
    param: &mut [T],
    grad: &[T],
    slots: &mut [&mut [T]],
) {
    let n = param.len();
    assert!(
        grad.len() == n && slots.iter().all(|s| s.is_empty() || s.len() == n),
        "internal invariant: update operand lengths"
    );
    // On the stack, so the lanes stay in registers across the rule's ops.
    assert!(k.len() <= MAX_COEFFICIENTS && slots.len() <= MAX_SLOTS, "internal invariant: rule sizes");
    let kc: [Lanes<T>; MAX_COEFFICIENTS] =
        std::array::from_fn(|i| Lanes([k.get(i).copied().unwrap_or(T::ZERO); LANES]));
    let kc = &kc[..k.len()];
    let mut staged = [Lanes([T::ZERO; LANES]); MAX_SLOTS];
    let values = &mut staged[..slots.len()];
    for (block, (p, g)) in param.chunks_mut(LANES).zip(grad.chunks(LANES)).enumerate() {
        let range = block * LANES..block * LANES + p.len();
        for (v, slot) in values.iter_mut().zip(slots.iter()) {
            if !slot.is_empty() {
                *v = Lanes::load(&slot[range.clone()]);
            }
        }
        rule.update(kc, &Lanes::load(p), &Lanes::load(g), values).store(p);
        for (v, slot) in values.iter().zip(slots.iter_mut()) {
            if !slot.is_empty() {
                v.store(&mut slot[range.clone()]);
            }
        }
    }
}

fn new_slots<R: UpdateRule>(rule: &R, dtype: DType, shape: &[usize]) -> Result<Slots> {
    Ok(Slots {
        step: step_variable(0),
        buffers: (0..R::SLOTS.len()).map(|i| new_slot(rule, i, dtype, shape)).collect::<Result<_>>()?,
    })
}

/// Slot `i` as a variable of the parameter's shape: its initial value if the configuration
/// uses it, else empty.
fn new_slot<R: UpdateRule>(rule: &R, i: usize, dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let value = if rule.uses_slot(i) {
        Tensor::full(shape, rule.initial_slot_value(i), dtype)?
    } else {
        Tensor::zeros(&[0], dtype)?
    };
    Ok(Tensor::variable(&value))
}

/// One eager update of `var` (whose gradient is `grad`) with its slots, at step `t`.
fn apply<R: UpdateRule>(rule: &R, lr: f64, var: &Var, grad: &Tensor, slots: &mut Slots) -> Result<()> {
    let t = slots.steps() + 1;
    slots.step.assign(&Tensor::scalar(t as f64))?;
    let k64 = rule.coefficients(&lr, &(t as f64));
    // A handle on the gradient's storage, not a lock: a gradient that is the parameter itself
    // would deadlock the write lock below (its storage is then copied on write instead).
    let g: Buffer = grad.read().clone();
    let mut p = var.write();
    let mut guards: Vec<_> = slots.buffers.iter().map(Tensor::write).collect();
    fn typed<'a, T: Elem>(
        guards: &'a mut [std::sync::RwLockWriteGuard<'_, Buffer>],
    ) -> Option<Vec<&'a mut [T]>> {
        guards.iter_mut().map(|b| T::slice_mut(b)).collect()
    }
    let done = match (&mut *p, &g) {
        (Buffer::F32(_), Buffer::F32(g)) => typed::<f32>(&mut guards).map(|s| {
            let k: Vec<f32> = k64.iter().map(|&c| c as f32).collect();
            update_in_chunks(rule, &k, f32::slice_mut(&mut p).expect("f32"), g, s)
        }),
        (Buffer::F64(_), Buffer::F64(g)) => typed::<f64>(&mut guards)
            .map(|s| update_in_chunks(rule, &k64, f64::slice_mut(&mut p).expect("f64"), g, s)),
        _ => None,
    };
    if done.is_none() {
        invalid!(R::NAME, "parameter `{}` and its state must be f32 or f64 of one type", var.name());
    }
    Ok(())
}

/// One traced update of `var`: the rule on whole tensors, assigned to the parameter and its
/// state (see the module docs).
fn apply_traced<R: UpdateRule>(rule: &R, lr: &Tensor, var: &Var, grad: &Tensor, slots: &Slots) -> Result<()> {
    let dtype = var.dtype();
    let t = slots.step.add_scalar(1.0);
    let k: Vec<Tensor> = rule.coefficients(lr, &t).iter().map(|c| c.to_dtype(dtype)).collect();
    let mut values: Vec<Tensor> = slots
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| if rule.uses_slot(i) { b.clone() } else { Tensor::scalar_of(0.0, dtype) })
        .collect();
    let p = rule.update(&k, var.tensor(), grad, &mut values);
    var.set(&p)?;
    for (i, (slot, value)) in slots.buffers.iter().zip(&values).enumerate() {
        if rule.uses_slot(i) {
            slot.assign(value)?;
        }
    }
    slots.step.assign(&t)?;
    Ok(())
}

impl<R: UpdateRule> Optimizer for ParamOptimizer<R> {
    fn step(&mut self) -> Result<()> {
        // Check every gradient before touching any parameter: a step is all or nothing.
        for (name, var) in self.groups.iter().flat_map(|g| &g.params) {
            if let Some(grad) = var.grad() {
                if grad.shape() != var.shape() || grad.dtype() != var.dtype() {
                    invalid!(
                        R::NAME,
                        "gradient of `{name}` is {:?} {} but the parameter is {:?} {}",
                        grad.shape(),
                        grad.dtype(),
                        var.shape(),
                        var.dtype()
                    );
                }
            }
        }
        let tracing = graphgrad_autodiff::compile::tracing();
        for (group, lr) in self.groups.iter().zip(&self.lrs) {
            for (name, var) in &group.params {
                let Some(grad) = var.grad() else { continue };
                let numel = var.numel();
                let slots = match self.state.entry(name.clone()) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(new_slots(&group.config, var.dtype(), var.shape())?)
                    }
                };
                // A configuration changed since the state was made (amsgrad switched on, say)
                // gets its newly used slots here, so kernels always see full-length slots.
                for (i, buffer) in slots.buffers.iter_mut().enumerate() {
                    let len = if group.config.uses_slot(i) { numel } else { 0 };
                    if buffer.numel() != len {
                        *buffer = new_slot(&group.config, i, var.dtype(), var.shape())?;
                    }
                }
                if tracing {
                    apply_traced(&group.config, lr, var, &grad, slots)?;
                } else {
                    apply(&group.config, group.config.lr(), var, &grad, slots)?;
                }
            }
        }
        Ok(())
    }

    fn zero_grad(&self) {
        for group in &self.groups {
            for (_, var) in &group.params {
                var.zero_grad();
            }
        }
    }

    fn lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.config.lr()).collect()
    }

    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        Range::NonNegative.check(R::NAME, "lr", lr)?;
        let n = self.groups.len();
        let Some(g) = self.groups.get_mut(group) else {
            invalid!(R::NAME, "group {group} does not exist ({n} groups)");
        };
        g.config.set_lr(lr);
        self.sync_lr(group)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
    }

    fn state(&self) -> OptimizerState {
        let groups = self
            .groups
            .iter()
            .map(|g| GroupState {
                params: g.params.iter().map(|(n, _)| n.clone()).collect(),
                hyper: g.config.hyper().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            })
            .collect();
        let owners: BTreeMap<&str, (&R, &[usize])> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(move |(n, v)| (n.as_str(), (&g.config, v.shape()))))
            .collect();
        let params = self
            .state
            .iter()
            .map(|(name, slots)| {
                let (config, shape) = owners[name.as_str()];
                let saved = R::SLOTS
                    .iter()
                    .zip(&slots.buffers)
                    .enumerate()
                    .filter(|(i, _)| config.uses_slot(*i))
                    .map(|(_, (slot, b))| {
                        (
                            slot.to_string(),
                            SavedTensor { shape: shape.to_vec(), data: SavedData::from_buffer(&b.read()) },
                        )
                    })
                    .collect();
                (name.clone(), ParamState { step: slots.steps(), slots: saved })
            })
            .collect();
        OptimizerState { kind: R::NAME.to_string(), groups, params }
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        let (configs, slots) = self.check_state(state)?;
        for (group, config) in self.groups.iter_mut().zip(configs) {
            group.config = config;
        }
        // Loaded into the existing variables, so compiled steps keep reading them.
        for (name, loaded) in slots {
            match self.state.get_mut(&name) {
                Some(live)
                    if live.buffers.iter().zip(&loaded.buffers).all(|(a, b)| a.numel() == b.numel()) =>
                {
                    live.step.assign(&loaded.step)?;
                    for (a, b) in live.buffers.iter().zip(&loaded.buffers) {
                        a.assign(b)?;
                    }
                }
                _ => {
                    self.state.insert(name, loaded);
                }
            }
        }
        for group in 0..self.groups.len() {
            self.sync_lr(group)?;
        }
        Ok(())
    }
}

impl<R: UpdateRule> ParamOptimizer<R> {
    /// Validates `state` against this optimiser and builds what `load_state` installs.
    #[allow(clippy::type_complexity)]
    fn check_state(&self, state: &OptimizerState) -> Result<(Vec<R>, BTreeMap<String, Slots>)> {
        let what = "optimizer state";
        if state.kind != R::NAME {
            invalid!(R::NAME, "cannot load state saved by {} into {}", state.kind, R::NAME);
        }
        if state.groups.len() != self.groups.len() {
            invalid!(
                R::NAME,
                "state has {} parameter groups, the optimizer has {}",
                state.groups.len(),
                self.groups.len()
            );
        }
        let (mut missing, mut unexpected, mut mismatched) = (Vec::new(), Vec::new(), Vec::new());
        let mut configs = Vec::new();
        for (i, (saved, group)) in state.groups.iter().zip(&self.groups).enumerate() {
            let ours: Vec<&str> = group.params.iter().map(|(n, _)| n.as_str()).collect();
            let theirs: Vec<&str> = saved.params.iter().map(String::as_str).collect();
            if ours != theirs {
                mismatched.push(format!("group {i}: expected parameters {ours:?}, found {theirs:?}"));
            }
            let mut config = group.config.clone();
            let known: BTreeSet<&str> = config.hyper().iter().map(|(k, _)| *k).collect();
            for k in &known {
                if !saved.hyper.contains_key(*k) {
                    missing.push(format!("group {i} hyper-parameter `{k}`"));
                }
            }
            for (k, &v) in &saved.hyper {
                if !config.set_hyper(k, v) {
                    unexpected.push(format!("group {i} hyper-parameter `{k}`"));
                }
            }
            configs.push(config);
        }
        let params: BTreeMap<&str, (&R, &Var)> = self
            .groups
            .iter()
            .zip(&configs)
            .flat_map(|(g, c)| g.params.iter().map(move |(n, v)| (n.as_str(), (c, v))))
            .collect();
        let mut slots = BTreeMap::new();
        for (name, saved) in &state.params {
            let Some(&(config, var)) = params.get(name.as_str()) else {
                unexpected.push(format!("state of parameter `{name}`"));
                continue;
            };
            let mut buffers = Vec::new();
            for (i, slot) in R::SLOTS.iter().enumerate() {
                let used = config.uses_slot(i);
                match saved.slots.get(*slot) {
                    None if used => missing.push(format!("`{name}` slot `{slot}`")),
                    None => buffers.push(Tensor::variable(&Tensor::zeros(&[0], var.dtype())?)),
                    Some(t)
                        if t.shape != var.shape()
                            || t.dtype() != var.dtype()
                            || t.data.len() != var.numel() =>
                    {
                        mismatched.push(format!(
                            "`{name}` slot `{slot}`: expected {:?} {}, found {:?} {} ({} elements)",
                            var.shape(),
                            var.dtype(),
                            t.shape,
                            t.dtype(),
                            t.data.len()
                        ))
                    }
                    Some(_) if !used => {
                        unexpected.push(format!("`{name}` slot `{slot}` (unused by this configuration)"))
                    }
                    Some(t) => buffers.push(Tensor::variable(&t.to_tensor()?)),
                }
            }
            for slot in saved.slots.keys().filter(|s| !R::SLOTS.contains(&s.as_str())) {
                unexpected.push(format!("`{name}` slot `{slot}`"));
            }
            if saved.step > MAX_STEPS {
                mismatched.push(format!("`{name}` step {} (at most 2^53: steps count in f64)", saved.step));
            }
            slots.insert(name.clone(), Slots { step: step_variable(saved.step), buffers });
        }
        if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
            return Err(Error::StateMismatch { what, missing, unexpected, mismatched });
        }
        for config in &configs {
            config.validate()?;
        }
        Ok((configs, slots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdamConfig, SgdConfig};

    /// Runs `steps` updates of `rule` on a parameter longer than several chunks, once through
    /// the chunked path and once in one call, and returns both parameters and the start.
    fn chunked_and_whole<R: UpdateRule>(rule: &R, slots: usize, steps: u64) -> [Vec<f32>; 3] {
        let n = 3 * UPDATE_CHUNK + 17;
        let start: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let grad: Vec<f32> = (0..n).map(|i| ((i * 53) % 97) as f32 / 40.0 - 1.2).collect();
        let slot_len = |i: usize| if rule.uses_slot(i) { n } else { 0 };
        let (mut a, mut b) = (start.clone(), start.clone());
        let mut slots_a: Vec<Vec<f32>> = (0..slots).map(|i| vec![0.0; slot_len(i)]).collect();
        let mut slots_b = slots_a.clone();
        for step in 1..=steps {
            let k: Vec<f32> =
                rule.coefficients(&rule.lr(), &(step as f64)).iter().map(|&c| c as f32).collect();
            update_in_chunks(rule, &k, &mut a, &grad, slots_a.iter_mut().map(|s| s.as_mut_slice()).collect());
            let mut whole: Vec<&mut [f32]> = slots_b.iter_mut().map(|s| s.as_mut_slice()).collect();
            update_elements(rule, &k, &mut b, &grad, &mut whole);
        }
        [a, b, start]
    }

    #[test]
    fn chunked_updates_equal_one_whole_update() {
        let adam = chunked_and_whole(&AdamConfig::new(1e-2), AdamConfig::SLOTS.len(), 3);
        let momentum = chunked_and_whole(&SgdConfig::new(0.1).momentum(0.9), SgdConfig::SLOTS.len(), 3);
        // plain SGD leaves its momentum slot empty
        let plain = chunked_and_whole(&SgdConfig::new(0.1), SgdConfig::SLOTS.len(), 2);
        for [chunked, whole, start] in [adam, momentum, plain] {
            assert_eq!(chunked, whole);
            assert_ne!(chunked, start, "the parameter moved");
        }
    }
}

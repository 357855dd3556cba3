//! `ParamOptimizer<R>`: the one implementation of [`Optimizer`] shared by every element-wise
//! rule (SGD, Adam, AdamW, RMSprop, Adagrad). It owns parameter groups and per-parameter
//! state, and hands each parameter to its rule as raw slices: the rule updates the value and
//! its state buffers in one fused pass, with no temporary tensors.
//!
//! Invariants: parameter names are unique across groups; a parameter's state buffers have its
//! element type and element count (slots the configuration does not use are empty).

use crate::error::invalid;
use crate::optimizer::{GroupState, OptimizerState, ParamState};
use crate::saved::{SavedData, SavedTensor};
use crate::{Error, Optimizer, Result};
use graphgrad_autodiff::{Buffer, DType, Elem, Var};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The hyper-parameters of one parameter group together with the update they define.
///
/// Implement it to add an element-wise optimiser: [`ParamOptimizer`] does the rest (groups,
/// state, checkpoints). Flags are exposed to [`UpdateRule::hyper`] as 0 or 1.
pub trait UpdateRule: Clone + std::fmt::Debug + Sync {
    /// The optimiser's name, as stored in its saved state (`"Adam"`).
    const NAME: &'static str;
    /// Names of the per-parameter state buffers, in the order `update` receives them.
    const SLOTS: &'static [&'static str];

    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (already checked finite and non-negative).
    fn set_lr(&mut self, lr: f64);
    /// Every hyper-parameter by name, the learning rate included.
    fn hyper(&self) -> Vec<(&'static str, f64)>;
    /// Sets one hyper-parameter by name; false when the name is unknown.
    fn set_hyper(&mut self, name: &str, value: f64) -> bool;
    /// Checks every hyper-parameter's range, with a message naming the bad one.
    fn validate(&self) -> Result<()>;

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

    /// One fused update of `param` from `grad` at `step` (1 for the first update), reading and
    /// writing the slots (`slots[i]` is empty when `uses_slot(i)` is false).
    fn update<T: Elem>(&self, step: u64, param: &mut [T], grad: &[T], slots: &mut [&mut [T]]);
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

/// One parameter's live state: its update count and its slot buffers.
#[derive(Clone, Debug)]
struct Slots {
    step: u64,
    buffers: Vec<Buffer>,
}

/// An optimiser that updates each parameter independently with rule `R` (see the aliases
/// [`Sgd`](crate::Sgd), [`Adam`](crate::Adam), [`AdamW`](crate::AdamW),
/// [`RmsProp`](crate::RmsProp), [`Adagrad`](crate::Adagrad)).
#[derive(Clone, Debug)]
pub struct ParamOptimizer<R: UpdateRule> {
    groups: Vec<ParamGroup<R>>,
    state: BTreeMap<String, Slots>,
}

impl<R: UpdateRule> ParamOptimizer<R> {
    /// One group of `params` with `config` (validated; names must be unique).
    pub fn new(params: Vec<(String, Var)>, config: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, config)])
    }

    /// Several groups, each with its own hyper-parameters.
    pub fn with_groups(groups: Vec<ParamGroup<R>>) -> Result<Self> {
        let mut optimizer = ParamOptimizer { groups: Vec::new(), state: BTreeMap::new() };
        for group in groups {
            optimizer.add_param_group(group)?;
        }
        Ok(optimizer)
    }

    /// Adds a group (validated; its names must not clash with existing ones).
    pub fn add_param_group(&mut self, group: ParamGroup<R>) -> Result<()> {
        group.config.validate()?;
        let mut seen: BTreeSet<&str> = self.names().collect();
        for (name, _) in &group.params {
            if !seen.insert(name) {
                invalid!(R::NAME, "parameter name `{name}` appears more than once");
            }
        }
        self.groups.push(group);
        Ok(())
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
        Ok(())
    }

    /// How many updates the parameter `name` has received (0 before its first).
    pub fn step_count(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flat_map(|g| g.params.iter().map(|(n, _)| n.as_str()))
    }
}

/// Typed views of every slot; `None` when a slot has another element type.
fn typed_slots<T: Elem>(buffers: &mut [Buffer]) -> Option<Vec<&mut [T]>> {
    buffers.iter_mut().map(|b| T::slice_mut(b)).collect()
}

/// Runs `rule` on one parameter, dispatching on its element type.
fn apply<R: UpdateRule>(
    rule: &R,
    step: u64,
    param: &mut Buffer,
    grad: &Buffer,
    slots: &mut [Buffer],
) -> bool {
    match (param, grad) {
        (Buffer::F32(p), Buffer::F32(g)) => typed_slots::<f32>(slots)
            .map(|s| update_in_chunks(rule, step, Arc::make_mut(p).as_mut_slice(), g, s)),
        (Buffer::F64(p), Buffer::F64(g)) => typed_slots::<f64>(slots)
            .map(|s| update_in_chunks(rule, step, Arc::make_mut(p).as_mut_slice(), g, s)),
        _ => None,
    }
    .is_some()
}

/// Elements per parallel task of an update.
const UPDATE_CHUNK: usize = 1 << 15;

/// Runs `rule` over large parameters in chunks on the thread pool. Every rule is elementwise,
/// so the chunking never changes a result.
fn update_in_chunks<R: UpdateRule, T: Elem>(
    rule: &R,
    step: u64,
    param: &mut [T],
    grad: &[T],
    slots: Vec<&mut [T]>,
) {
    if param.len() <= UPDATE_CHUNK || rayon::current_num_threads() == 1 {
        let mut slots = slots;
        return rule.update(step, param, grad, &mut slots);
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
        .for_each(|((p, g), mut s)| rule.update(step, p, g, &mut s));
}

fn new_slots<R: UpdateRule>(rule: &R, dtype: DType, len: usize) -> Slots {
    let buffers = (0..R::SLOTS.len())
        .map(|i| {
            let len = if rule.uses_slot(i) { len } else { 0 };
            Buffer::from_f64(dtype, &vec![rule.initial_slot_value(i); len])
        })
        .collect();
    Slots { step: 0, buffers }
}

fn check_lr(what: &'static str, lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        invalid!(what, "learning rate must be finite and non-negative, got {lr}");
    }
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
        for group in &self.groups {
            for (name, var) in &group.params {
                let Some(grad) = var.grad() else { continue };
                let slots = self
                    .state
                    .entry(name.clone())
                    .or_insert_with(|| new_slots(&group.config, var.dtype(), var.numel()));
                slots.step += 1;
                // A configuration changed since the state was made (amsgrad switched on, say)
                // gets its newly used slots here, so kernels always see full-length slots.
                for (i, buffer) in slots.buffers.iter_mut().enumerate() {
                    let len = if group.config.uses_slot(i) { var.numel() } else { 0 };
                    if buffer.len() != len {
                        *buffer =
                            Buffer::from_f64(var.dtype(), &vec![group.config.initial_slot_value(i); len]);
                    }
                }
                // A gradient sharing the parameter's storage would deadlock the write lock
                // below; copy it first in that (pathological) case.
                let (copy, guard);
                let g: &Buffer = if grad.id() == var.id() {
                    copy = grad.read().clone();
                    &copy
                } else {
                    guard = grad.read();
                    &guard
                };
                let mut p = var.write();
                if !apply(&group.config, slots.step, &mut p, g, &mut slots.buffers) {
                    panic!("internal invariant: state of `{name}` has the parameter's element type");
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
        check_lr(R::NAME, lr)?;
        let n = self.groups.len();
        let Some(g) = self.groups.get_mut(group) else {
            invalid!(R::NAME, "group {group} does not exist ({n} groups)");
        };
        g.config.set_lr(lr);
        Ok(())
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
                            SavedTensor { shape: shape.to_vec(), data: SavedData::from_buffer(b) },
                        )
                    })
                    .collect();
                (name.clone(), ParamState { step: slots.step, slots: saved })
            })
            .collect();
        OptimizerState { kind: R::NAME.to_string(), groups, params }
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        let (configs, slots) = self.check_state(state)?;
        for (group, config) in self.groups.iter_mut().zip(configs) {
            group.config = config;
        }
        self.state = slots;
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
                    None => buffers.push(Buffer::zeros(var.dtype(), 0)),
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
                    Some(t) => buffers.push(t.data.to_buffer()),
                }
            }
            for slot in saved.slots.keys().filter(|s| !R::SLOTS.contains(&s.as_str())) {
                unexpected.push(format!("`{name}` slot `{slot}`"));
            }
            slots.insert(name.clone(), Slots { step: saved.step, buffers });
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
            update_in_chunks(
                rule,
                step,
                &mut a,
                &grad,
                slots_a.iter_mut().map(|s| s.as_mut_slice()).collect(),
            );
            let mut whole: Vec<&mut [f32]> = slots_b.iter_mut().map(|s| s.as_mut_slice()).collect();
            rule.update(step, &mut b, &grad, &mut whole);
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

//! The `Optimizer` trait and the serialisable form of an optimiser's state.
//!
//! An optimiser owns parameter groups: named [`Var`]s that share hyper-parameters (each group
//! has its own learning rate). `step` updates every parameter that has a gradient, in place;
//! parameters without a gradient are skipped, like PyTorch. State (moments, step counts) is
//! keyed by parameter name, so a checkpoint stays readable when the parameter order changes.

use crate::saved::SavedTensor;
use crate::Result;
use graphgrad_autodiff::Var;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Updates parameters from their gradients.
///
/// Object safe: schedules and training loops take `&mut dyn Optimizer`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Optimizer, Sgd, SgdConfig};
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f32, -2.0], &[2])?);
/// let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(0.1))?;
/// w.mul(&w)?.sum_all().backward()?; // ∂/∂w Σw² = 2w = [2, −4]
/// opt.step()?; // w − 0.1·2w = [0.8, −1.6]
/// assert_eq!(w.to_vec::<f32>()?, vec![0.8, -1.6]);
/// opt.zero_grad();
/// assert!(w.grad().is_none());
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub trait Optimizer {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;

    /// Clears every parameter's gradient (sets it to none, like `set_to_none=True`).
    fn zero_grad(&self);

    /// The learning rate of each parameter group, in group order.
    fn lrs(&self) -> Vec<f64>;

    /// Sets the learning rate of every group (finite and non-negative).
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        for group in 0..self.lrs().len() {
            self.set_group_lr(group, lr)?;
        }
        Ok(())
    }

    /// Sets the learning rate of one group (finite and non-negative).
    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()>;

    /// All parameters with their names, group by group.
    fn named_parameters(&self) -> Vec<(String, Var)>;

    /// A copy of the optimiser's state: hyper-parameters per group and per-parameter buffers.
    fn state(&self) -> OptimizerState;

    /// Restores a state saved by [`Optimizer::state`] from an optimiser of the same kind over
    /// parameters with the same names and shapes (hyper-parameters included, like PyTorch's
    /// `load_state_dict`). On error nothing is changed, and the error lists what differs.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// An optimiser's state in plain, serialisable data (what a checkpoint stores).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Which optimiser wrote it (`"SGD"`, `"Adam"`, ...).
    pub kind: String,
    /// Hyper-parameters and parameter names of each group, in group order.
    pub groups: Vec<GroupState>,
    /// Per-parameter state by parameter name (parameters never stepped have none).
    pub params: BTreeMap<String, ParamState>,
}

/// One parameter group in saved form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Names of the group's parameters, in order.
    pub params: Vec<String>,
    /// Hyper-parameters by name (`lr`, `momentum`, ...; flags as 0 or 1).
    pub hyper: BTreeMap<String, f64>,
}

/// One parameter's optimiser state in saved form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamState {
    /// Number of updates applied to this parameter.
    pub step: u64,
    /// Buffers by slot name (`momentum_buffer`, `exp_avg`, ...), each of the parameter's shape.
    pub slots: BTreeMap<String, SavedTensor>,
}

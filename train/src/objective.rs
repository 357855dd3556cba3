//! What the trainer minimises: an [`Objective`] maps a model's outputs and a batch's targets to
//! a scalar loss (a mean over the batch, so that gradient accumulation can weight batches by
//! their size).
//!
//! Targets reach a loss as one tensor ([`StepTargets`]): class labels as i64 indices, or
//! real values; the same form in eager and compiled steps.

use crate::error::{setting, Result};
use graphgrad_autodiff::{DType, Tensor};
use graphgrad_nn::loss::{cross_entropy, mse_loss};
use graphgrad_nn::Reduction;

/// The targets of one training step.
#[derive(Clone, Copy, Debug)]
pub enum StepTargets<'a> {
    /// Class indices `[batch]`, an i64 tensor.
    Labels(&'a Tensor),
    /// Real-valued targets `[batch, dim]`.
    Values(&'a Tensor),
}

impl<'a> StepTargets<'a> {
    /// An i64 tensor holds labels; any other, values.
    pub fn of(targets: &'a Tensor) -> StepTargets<'a> {
        match targets.dtype() {
            DType::I64 => StepTargets::Labels(targets),
            _ => StepTargets::Values(targets),
        }
    }
}

/// A training loss: outputs and targets to a scalar mean over the batch.
pub trait Objective {
    /// Short name for logs and charts (`"cross-entropy"`).
    fn name(&self) -> &str;

    /// The mean loss of a batch.
    fn loss(&self, output: &Tensor, targets: StepTargets<'_>) -> Result<Tensor>;
}

/// Softmax cross-entropy from logits `[batch, classes]` against class labels.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn name(&self) -> &str {
        "cross-entropy"
    }

    fn loss(&self, output: &Tensor, targets: StepTargets<'_>) -> Result<Tensor> {
        match targets {
            StepTargets::Labels(labels) => Ok(cross_entropy(output, labels, Reduction::Mean)?),
            StepTargets::Values(_) => Err(setting(
                "loss",
                "cross-entropy needs class labels; this data set has real-valued targets",
            )),
        }
    }
}

/// Mean squared error against real-valued targets of the output's shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanSquaredError;

impl Objective for MeanSquaredError {
    fn name(&self) -> &str {
        "mean squared error"
    }

    fn loss(&self, output: &Tensor, targets: StepTargets<'_>) -> Result<Tensor> {
        match targets {
            StepTargets::Values(values) => Ok(mse_loss(output, values, Reduction::Mean)?),
            _ => Err(setting(
                "loss",
                "mean squared error needs real-valued targets; this data set has class labels",
            )),
        }
    }
}

/// A loss written as a closure, with a name.
///
/// ```
/// use graphgrad_train::{objective_fn, Objective, StepTargets};
/// use graphgrad_nn::{loss::l1_loss, Reduction};
/// let l1 = objective_fn("L1", |output, targets| match targets {
///     StepTargets::Values(values) => Ok(l1_loss(output, values, Reduction::Mean)?),
///     _ => Err(graphgrad_train::Error::Callback("L1 needs values".into())),
/// });
/// assert_eq!(l1.name(), "L1");
/// ```
pub fn objective_fn<F>(name: &str, loss: F) -> FnObjective<F>
where
    F: Fn(&Tensor, StepTargets<'_>) -> Result<Tensor>,
{
    FnObjective { name: name.to_string(), loss }
}

/// See [`objective_fn`].
pub struct FnObjective<F> {
    name: String,
    loss: F,
}

impl<F> Objective for FnObjective<F>
where
    F: Fn(&Tensor, StepTargets<'_>) -> Result<Tensor>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn loss(&self, output: &Tensor, targets: StepTargets<'_>) -> Result<Tensor> {
        (self.loss)(output, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_takes_i64_labels() {
        let logits = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.1, 0.2, 0.3], &[2, 3]).unwrap();
        let labels = Tensor::from_indices(&[2, 0], &[2]).unwrap();
        let loss = CrossEntropy.loss(&logits, StepTargets::of(&labels)).unwrap().item().unwrap();
        // by hand: row 0: log(e^.5 + e^-1 + e^2) − 2 = 0.24131; row 1: log(e^.1+e^.2+e^.3) − 0.1 = 1.20194
        assert!((loss - (0.241_31 + 1.201_94) / 2.0).abs() < 1e-4, "{loss}");
        let err = MeanSquaredError.loss(&logits, StepTargets::of(&labels)).unwrap_err().to_string();
        assert!(err.contains("needs real-valued targets"), "{err}");
    }
}

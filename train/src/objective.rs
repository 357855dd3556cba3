//! What the trainer minimises: an [`Objective`] maps a model's outputs and a batch's targets to
//! a scalar loss (a mean over the batch, so that gradient accumulation can weight batches by
//! their size).
//!
//! Targets reach a loss in one of three forms ([`StepTargets`]): class labels as indices (the
//! eager path), the same labels one-hot (what a compiled step takes today: the compiler
//! refuses index lists that change between calls), or real values. A loss that has no one-hot
//! form cannot be compiled until the compiler takes integer label tensors.

use crate::error::{setting, Result};
use graphgrad_autodiff::Tensor;
use graphgrad_nn::data::BatchTargets;
use graphgrad_nn::loss::{cross_entropy, mse_loss};
use graphgrad_nn::Reduction;

/// The targets of one training step.
#[derive(Clone, Copy, Debug)]
pub enum StepTargets<'a> {
    /// Class indices, one per sample.
    Labels(&'a [usize]),
    /// The same labels as a one-hot `[batch, classes]` tensor.
    OneHot(&'a Tensor),
    /// Real-valued targets `[batch, dim]`.
    Values(&'a Tensor),
}

impl<'a> StepTargets<'a> {
    /// The targets of a data set batch (labels or values).
    pub fn of(targets: &'a BatchTargets) -> StepTargets<'a> {
        match targets {
            BatchTargets::Classes(labels) => StepTargets::Labels(labels),
            BatchTargets::Values(values) => StepTargets::Values(values),
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
            // −mean_i Σ_c y_ic · log softmax(x_i)_c
            StepTargets::OneHot(one_hot) => {
                Ok(output.log_softmax(-1)?.mul(one_hot)?.sum(&[-1], false)?.mean_all()?.neg())
            }
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

/// `[batch, classes]` one-hot rows of `labels` (f32), for compiled steps.
pub(crate) fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor> {
    let mut data = vec![0.0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(setting("labels", format!("label {label} is not below the {classes} classes")));
        }
        data[row * classes + label] = 1.0;
    }
    Ok(Tensor::from_vec(data, &[labels.len(), classes])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-hot form used by compiled steps is the same number as the index form.
    #[test]
    fn one_hot_cross_entropy_matches_the_index_form() {
        let logits = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.1, 0.2, 0.3], &[2, 3]).unwrap();
        let labels = [2usize, 0];
        let by_index = CrossEntropy.loss(&logits, StepTargets::Labels(&labels)).unwrap().item().unwrap();
        let hot = one_hot(&labels, 3).unwrap();
        let by_one_hot = CrossEntropy.loss(&logits, StepTargets::OneHot(&hot)).unwrap().item().unwrap();
        // by hand: row 0: log(e^.5 + e^-1 + e^2) − 2 = 0.24131; row 1: log(e^.1+e^.2+e^.3) − 0.1 = 1.20194
        assert!((by_index - (0.241_31 + 1.201_94) / 2.0).abs() < 1e-4, "{by_index}");
        assert!((by_index - by_one_hot).abs() < 1e-6);
        let err = one_hot(&[3], 3).unwrap_err().to_string();
        assert!(err.contains("label 3 is not below the 3 classes"), "{err}");
    }
}

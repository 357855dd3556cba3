//! Stopping criteria (the course's « critère d'arrêt »): a maximum number of epochs, a loss
//! target, early stopping on a validation metric, and divergence detection.
//!
//! Divergence is an error, not a reason to stop quietly: a NaN or infinite loss means the
//! next update would write NaN into the weights. [`check_loss`] and [`step_if_finite`] catch
//! it before the optimiser runs, so the weights stay those of the last good step.

use crate::grad::all_finite;
use crate::{EarlyStopping, Error, Optimizer, Result};
use graphgrad_autodiff::{DType, Tensor, Var};
use std::fmt;

/// Why training stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// The epoch budget is spent.
    MaxEpochs {
        /// Epochs trained.
        epochs: u64,
    },
    /// The training loss reached its target.
    LossTarget {
        /// The epoch's loss.
        loss: f64,
        /// The target.
        target: f64,
    },
    /// The validation metric stopped improving.
    EarlyStopping {
        /// The best metric.
        best: f64,
        /// Its epoch (whose weights were restored, unless disabled).
        best_epoch: u64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxEpochs { epochs } => write!(f, "reached the maximum of {epochs} epochs"),
            StopReason::LossTarget { loss, target } => write!(f, "loss {loss} reached the target {target}"),
            StopReason::EarlyStopping { best, best_epoch } => {
                write!(f, "validation metric stopped improving (best {best} at epoch {best_epoch})")
            }
        }
    }
}

/// An error when `loss` is NaN or infinite (call it before `backward`/`step`).
///
/// ```
/// use graphgrad_optim::check_loss;
/// assert!(check_loss(0.3, 1, 10).is_ok());
/// let err = check_loss(f64::NAN, 1, 11).unwrap_err();
/// assert!(err.to_string().contains("loss is NaN at epoch 1, step 11"));
/// ```
pub fn check_loss(loss: f64, epoch: u64, step: u64) -> Result<()> {
    if !loss.is_finite() {
        return Err(Error::Diverged { what: "loss", value: loss, epoch, step });
    }
    Ok(())
}

/// Steps `optimizer` only when `loss` and every gradient are finite; otherwise returns the
/// error and leaves every weight as it was. A step that makes a weight non-finite all the same
/// (finite gradients, an update too large for the weight's type) is
/// [`Error::NonFiniteUpdate`]: the weights then hold that step's values.
pub fn step_if_finite(optimizer: &mut dyn Optimizer, loss: f64, epoch: u64, step: u64) -> Result<()> {
    check_loss(loss, epoch, step)?;
    let params = optimizer.named_parameters();
    check_gradients_finite(&params)?;
    optimizer.step()?;
    match params.into_iter().find(|(_, var)| var.grad().is_some() && !all_finite(&var.read())) {
        Some((param, _)) => Err(Error::NonFiniteUpdate { param, epoch, step }),
        None => Ok(()),
    }
}

/// An error naming the first parameter whose gradient holds a NaN or an infinity. Inside a
/// compiled step the check is one guard on one value: a call with a non-finite gradient
/// writes nothing and returns this error.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::check_gradients_finite;
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f32, 2.0], &[2])?);
/// w.set_grad(Some(&Tensor::from_vec(vec![0.5f32, f32::INFINITY], &[2])?))?;
/// let err = check_gradients_finite(&[("w".to_string(), w)]).unwrap_err();
/// assert!(err.to_string().contains("w"), "{err}");
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub fn check_gradients_finite(params: &[(String, Var)]) -> Result<()> {
    // g − g is 0 exactly where g is finite: one sum over every gradient is 0 exactly when all are
    let residues: Vec<(&String, Tensor)> = params
        .iter()
        .filter_map(|(name, var)| var.grad().map(|g| (name, g)))
        .map(|(name, g)| Ok((name, g.sub(&g)?.sum_all().to_dtype(DType::F64))))
        .collect::<Result<_>>()?;
    let mut total = Tensor::scalar(0.0f64);
    for (_, r) in &residues {
        total = total.add(r)?;
    }
    if total.eq_scalar(0.0).item()? == 1.0 {
        return Ok(());
    }
    let param = residues.iter().find(|(_, r)| r.read().to_f64_vec()[0] != 0.0).map(|(n, _)| n.to_string());
    Err(Error::NonFiniteGradient {
        op: "check_gradients_finite",
        param: param.unwrap_or_default(),
        norm: None,
    })
}

/// Combined stopping criteria, checked once per epoch by [`end_epoch`](Self::end_epoch).
///
/// ```
/// use graphgrad_optim::{StopReason, StoppingCriteria};
/// let mut stop = StoppingCriteria::new().max_epochs(10).loss_target(0.01);
/// assert_eq!(stop.end_epoch(0, 0.5, None, &[])?, None);
/// assert_eq!(stop.end_epoch(1, 0.008, None, &[])?, Some(StopReason::LossTarget { loss: 0.008, target: 0.01 }));
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StoppingCriteria {
    max_epochs: Option<u64>,
    loss_target: Option<f64>,
    early: Option<EarlyStopping>,
}

impl StoppingCriteria {
    /// No criterion yet (only divergence is checked).
    pub fn new() -> StoppingCriteria {
        StoppingCriteria::default()
    }

    /// Stops after `epochs` epochs.
    pub fn max_epochs(mut self, epochs: u64) -> StoppingCriteria {
        self.max_epochs = Some(epochs);
        self
    }

    /// Stops once the epoch's training loss is at or below `target`.
    pub fn loss_target(mut self, target: f64) -> StoppingCriteria {
        self.loss_target = Some(target);
        self
    }

    /// Adds early stopping on the validation metric passed to `end_epoch`.
    pub fn early_stopping(mut self, early: EarlyStopping) -> StoppingCriteria {
        self.early = Some(early);
        self
    }

    /// The early-stopping state, when configured.
    pub fn early(&self) -> Option<&EarlyStopping> {
        self.early.as_ref()
    }

    /// The early-stopping state, mutably (to restore it from a checkpoint).
    pub fn early_mut(&mut self) -> Option<&mut EarlyStopping> {
        self.early.as_mut()
    }

    /// The epoch budget, when set.
    pub fn epoch_budget(&self) -> Option<u64> {
        self.max_epochs
    }

    /// The training-loss target, when set.
    pub fn target_loss(&self) -> Option<f64> {
        self.loss_target
    }

    /// Checks the criteria after epoch `epoch` (0-based) with its training loss and, for
    /// early stopping, its validation metric. Order: divergence (an error), loss target,
    /// early stopping (which may restore the best weights into `params`), epoch budget.
    pub fn end_epoch(
        &mut self,
        epoch: u64,
        train_loss: f64,
        val_metric: Option<f64>,
        params: &[(String, Var)],
    ) -> Result<Option<StopReason>> {
        check_loss(train_loss, epoch, 0)?;
        if let Some(target) = self.loss_target {
            if train_loss <= target {
                return Ok(Some(StopReason::LossTarget { loss: train_loss, target }));
            }
        }
        if let Some(early) = &mut self.early {
            let Some(metric) = val_metric else {
                return Err(Error::InvalidConfig {
                    what: "StoppingCriteria",
                    reason: format!("early stopping needs a validation metric, none given for epoch {epoch}"),
                });
            };
            if early.observe(epoch, metric, params)? {
                let (best, best_epoch) =
                    (early.best().unwrap_or(metric), early.best_epoch().unwrap_or(epoch));
                return Ok(Some(StopReason::EarlyStopping { best, best_epoch }));
            }
        }
        match self.max_epochs {
            Some(max) if epoch + 1 >= max => Ok(Some(StopReason::MaxEpochs { epochs: epoch + 1 })),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricMode;

    #[test]
    fn max_epochs_counts_completed_epochs() {
        let mut stop = StoppingCriteria::new().max_epochs(3);
        assert_eq!(stop.end_epoch(0, 1.0, None, &[]).unwrap(), None);
        assert_eq!(stop.end_epoch(1, 1.0, None, &[]).unwrap(), None);
        assert_eq!(stop.end_epoch(2, 1.0, None, &[]).unwrap(), Some(StopReason::MaxEpochs { epochs: 3 }));
    }

    #[test]
    fn infinite_loss_is_divergence_and_early_stopping_needs_a_metric() {
        let mut stop = StoppingCriteria::new().early_stopping(EarlyStopping::new(MetricMode::Min, 1));
        let err = stop.end_epoch(4, f64::INFINITY, Some(1.0), &[]).unwrap_err().to_string();
        assert!(err.contains("loss is inf at epoch 4"), "{err}");
        let err = stop.end_epoch(4, 1.0, None, &[]).unwrap_err().to_string();
        assert!(err.contains("needs a validation metric"), "{err}");
    }
}

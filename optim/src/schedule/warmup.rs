//! Linear warm-up, optionally followed by another schedule (PyTorch's `LinearLR` chained
//! with `SequentialLR`): the factor climbs linearly from `start_factor` to 1 over
//! `warmup_steps` epochs, then the inner schedule runs from its own epoch 0.

use super::{ConstantLr, Schedule};
use crate::error::invalid;
use crate::Result;

/// `base_lr · (f₀ + (1 − f₀)·t/w)` for `t < w`, then `then.lr_at(base_lr, t − w)`.
///
/// ```
/// use graphgrad_optim::{CosineAnnealingLr, LinearWarmup, Schedule};
/// let s = LinearWarmup::new(4, 0.25).then(CosineAnnealingLr::new(10, 0.0));
/// let lrs: Vec<f64> = (0..5).map(|e| s.lr_at(1.0, e)).collect();
/// assert_eq!(lrs, vec![0.25, 0.4375, 0.625, 0.8125, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinearWarmup<S = ConstantLr> {
    /// Epochs of warm-up.
    pub warmup_steps: u64,
    /// Fraction of the base rate at epoch 0, in (0, 1].
    pub start_factor: f64,
    /// The schedule after warm-up.
    pub then: S,
}

impl LinearWarmup {
    /// Warms up over `warmup_steps` epochs from `start_factor · base_lr`, then stays at the base.
    pub fn new(warmup_steps: u64, start_factor: f64) -> LinearWarmup {
        LinearWarmup { warmup_steps, start_factor, then: ConstantLr }
    }
}

impl<S> LinearWarmup<S> {
    /// Runs `schedule` after the warm-up.
    pub fn then<T: Schedule>(self, schedule: T) -> LinearWarmup<T> {
        LinearWarmup { warmup_steps: self.warmup_steps, start_factor: self.start_factor, then: schedule }
    }
}

impl<S: Schedule> Schedule for LinearWarmup<S> {
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        if epoch < self.warmup_steps {
            let progress = epoch as f64 / self.warmup_steps as f64;
            base_lr * (self.start_factor + (1.0 - self.start_factor) * progress)
        } else {
            self.then.lr_at(base_lr, epoch - self.warmup_steps)
        }
    }

    fn describe(&self) -> String {
        format!(
            "LinearWarmup(warmup_steps={}, start_factor={}) then {}",
            self.warmup_steps,
            self.start_factor,
            self.then.describe()
        )
    }

    fn validate(&self) -> Result<()> {
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            invalid!("LinearWarmup", "start_factor must be in (0, 1], got {}", self.start_factor);
        }
        self.then.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepLr;

    /// w = 2, f₀ = 0.5, base 0.2: t = 0 → 0.1, t = 1 → 0.15, then StepLr(1, 0.5) from its
    /// epoch 0: 0.2, 0.1, 0.05.
    #[test]
    fn warmup_hands_over_to_the_inner_schedule() {
        let s = LinearWarmup::new(2, 0.5).then(StepLr::new(1, 0.5));
        let lrs: Vec<f64> = (0..5).map(|e| s.lr_at(0.2, e)).collect();
        let expected = [0.1, 0.15, 0.2, 0.1, 0.05];
        for (got, want) in lrs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{lrs:?}");
        }
        assert!(LinearWarmup::new(2, 0.0).validate().is_err());
    }
}

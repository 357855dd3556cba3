//! Piecewise and exponential decay: constant, step, multi-step and exponential schedules,
//! in PyTorch's closed forms (`base_lr · γ^k`).

use super::Schedule;
use crate::error::invalid;
use crate::{Range, Result};

/// The base rate at every epoch (what a warm-up hands over to by default).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConstantLr;

impl Schedule for ConstantLr {
    fn lr_at(&self, base_lr: f64, _epoch: u64) -> f64 {
        base_lr
    }

    fn describe(&self) -> String {
        "ConstantLr".to_string()
    }
}

/// `base_lr · γ^⌊epoch / step_size⌋`: multiply by γ every `step_size` epochs.
///
/// ```
/// use graphgrad_optim::{Schedule, StepLr};
/// let s = StepLr::new(3, 0.1);
/// assert_eq!((s.lr_at(1.0, 2), s.lr_at(1.0, 3)), (1.0, 0.1));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    /// Epochs between decays.
    pub step_size: u64,
    /// Decay factor.
    pub gamma: f64,
}

impl StepLr {
    /// Decays by `gamma` every `step_size` epochs.
    pub fn new(step_size: u64, gamma: f64) -> StepLr {
        StepLr { step_size, gamma }
    }
}

impl Schedule for StepLr {
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        base_lr * self.gamma.powf((epoch / self.step_size.max(1)) as f64)
    }

    fn describe(&self) -> String {
        format!("StepLr(step_size={}, gamma={})", self.step_size, self.gamma)
    }

    fn validate(&self) -> Result<()> {
        if self.step_size == 0 {
            invalid!("StepLr", "step_size must be at least 1");
        }
        Range::NonNegative.check("StepLr", "gamma", self.gamma)
    }
}

/// `base_lr · γ^(number of milestones ≤ epoch)`.
///
/// ```
/// use graphgrad_optim::{MultiStepLr, Schedule};
/// let s = MultiStepLr::new(vec![2, 5], 0.5);
/// let lrs: Vec<f64> = (0..6).map(|e| s.lr_at(1.0, e)).collect();
/// assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// Epochs at which the rate is multiplied by γ (increasing).
    pub milestones: Vec<u64>,
    /// Decay factor.
    pub gamma: f64,
}

impl MultiStepLr {
    /// Decays by `gamma` at each of `milestones` (increasing).
    pub fn new(milestones: Vec<u64>, gamma: f64) -> MultiStepLr {
        MultiStepLr { milestones, gamma }
    }
}

impl Schedule for MultiStepLr {
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        let passed = self.milestones.partition_point(|&m| m <= epoch);
        base_lr * self.gamma.powf(passed as f64)
    }

    fn describe(&self) -> String {
        format!("MultiStepLr(milestones={:?}, gamma={})", self.milestones, self.gamma)
    }

    fn validate(&self) -> Result<()> {
        if self.milestones.windows(2).any(|w| w[0] >= w[1]) {
            invalid!("MultiStepLr", "milestones must be strictly increasing, got {:?}", self.milestones);
        }
        Range::NonNegative.check("MultiStepLr", "gamma", self.gamma)
    }
}

/// `base_lr · γ^epoch`.
///
/// ```
/// use graphgrad_optim::{ExponentialLr, Schedule};
/// assert_eq!(ExponentialLr::new(0.5).lr_at(2.0, 3), 0.25);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Decay factor per epoch.
    pub gamma: f64,
}

impl ExponentialLr {
    /// Decays by `gamma` every epoch.
    pub fn new(gamma: f64) -> ExponentialLr {
        ExponentialLr { gamma }
    }
}

impl Schedule for ExponentialLr {
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        base_lr * self.gamma.powf(epoch as f64)
    }

    fn describe(&self) -> String {
        format!("ExponentialLr(gamma={})", self.gamma)
    }

    fn validate(&self) -> Result<()> {
        Range::NonNegative.check("ExponentialLr", "gamma", self.gamma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// γ = 0.1, step 2: epochs 0,1 → 0.5; 2,3 → 0.05; 4 → 0.005 (base 0.5).
    #[test]
    fn step_lr_decays_every_step_size_epochs() {
        let s = StepLr::new(2, 0.1);
        let lrs: Vec<f64> = (0..5).map(|e| s.lr_at(0.5, e)).collect();
        let expected = [0.5, 0.5, 0.05, 0.05, 0.005];
        for (got, want) in lrs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{lrs:?}");
        }
        assert!(StepLr::new(0, 0.1).validate().is_err());
    }

    #[test]
    fn multi_step_counts_milestones_passed() {
        let s = MultiStepLr::new(vec![1, 3], 0.1);
        assert_eq!(s.lr_at(1.0, 0), 1.0);
        assert_eq!(s.lr_at(1.0, 1), 0.1);
        assert_eq!(s.lr_at(1.0, 2), 0.1);
        assert!((s.lr_at(1.0, 3) - 0.01).abs() < 1e-17);
        assert!(MultiStepLr::new(vec![3, 1], 0.1).validate().is_err());
    }
}

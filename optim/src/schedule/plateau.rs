//! Reduce-on-plateau, following `torch.optim.lr_scheduler.ReduceLROnPlateau`: when a metric
//! has not improved for more than `patience` epochs, every group's rate is multiplied by
//! `factor` (never below `min_lr`), then `cooldown` epochs pass before counting again.

use super::{check_base_lrs, check_kind, ScheduleState, Scheduler};
use crate::error::invalid;
use crate::{Optimizer, Range, Result};
use std::collections::BTreeMap;

/// Whether a metric improves by going down (a loss) or up (an accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricMode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative: better than `best·(1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// Cuts the learning rate when a metric stops improving.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{MetricMode, Optimizer, ReduceLrOnPlateau, Sgd, SgdConfig};
/// let w = Var::new("w", &Tensor::zeros(&[1], graphgrad_autodiff::DType::F32)?);
/// let mut opt = Sgd::new(vec![("w".into(), w)], SgdConfig::new(1.0))?;
/// let mut plateau = ReduceLrOnPlateau::new(MetricMode::Min, &opt).factor(0.5).patience(1);
/// for loss in [1.0, 0.9, 0.9, 0.9] {
///     plateau.step(loss, &mut opt)?;
/// }
/// // 0.9 improved on 1.0; then two epochs without improvement exceed patience 1.
/// assert_eq!(opt.lrs(), vec![0.5]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    mode: MetricMode,
    factor: f64,
    patience: u64,
    threshold: f64,
    threshold_mode: ThresholdMode,
    cooldown: u64,
    min_lr: f64,
    eps: f64,
    base_lrs: Vec<f64>,
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    epoch: u64,
}

impl ReduceLrOnPlateau {
    /// PyTorch's defaults: factor 0.1, patience 10, relative threshold 1e-4, no cooldown,
    /// min_lr 0, eps 1e-8. `optimizer` gives the number of groups and their base rates.
    pub fn new(mode: MetricMode, optimizer: &dyn Optimizer) -> ReduceLrOnPlateau {
        ReduceLrOnPlateau {
            mode,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            base_lrs: optimizer.lrs(),
            best: worst(mode),
            num_bad_epochs: 0,
            cooldown_counter: 0,
            epoch: 0,
        }
    }

    /// Sets the factor the rate is multiplied by (in (0, 1)).
    pub fn factor(mut self, factor: f64) -> ReduceLrOnPlateau {
        self.factor = factor;
        self
    }

    /// Sets how many epochs without improvement are tolerated.
    pub fn patience(mut self, patience: u64) -> ReduceLrOnPlateau {
        self.patience = patience;
        self
    }

    /// Sets the significance threshold and how it applies.
    pub fn threshold(mut self, threshold: f64, mode: ThresholdMode) -> ReduceLrOnPlateau {
        self.threshold = threshold;
        self.threshold_mode = mode;
        self
    }

    /// Sets the epochs to wait after a reduction before counting bad epochs again.
    pub fn cooldown(mut self, cooldown: u64) -> ReduceLrOnPlateau {
        self.cooldown = cooldown;
        self
    }

    /// Sets the lowest rate.
    pub fn min_lr(mut self, min_lr: f64) -> ReduceLrOnPlateau {
        self.min_lr = min_lr;
        self
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Feeds one epoch's metric; returns true when the rates were reduced. A NaN metric never
    /// counts as an improvement (as in PyTorch).
    pub fn step(&mut self, metric: f64, optimizer: &mut dyn Optimizer) -> Result<bool> {
        self.validate()?;
        self.epoch += 1;
        if self.is_better(metric) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs <= self.patience {
            return Ok(false);
        }
        let mut reduced = false;
        for (group, old) in optimizer.lrs().into_iter().enumerate() {
            let new = (old * self.factor).max(self.min_lr);
            if old - new > self.eps {
                optimizer.set_group_lr(group, new)?;
                reduced = true;
            }
        }
        self.cooldown_counter = self.cooldown;
        self.num_bad_epochs = 0;
        Ok(reduced)
    }

    fn is_better(&self, a: f64) -> bool {
        let best = self.best;
        match (self.mode, self.threshold_mode) {
            (MetricMode::Min, ThresholdMode::Rel) => a < best * (1.0 - self.threshold),
            (MetricMode::Min, ThresholdMode::Abs) => a < best - self.threshold,
            (MetricMode::Max, ThresholdMode::Rel) => a > best * (1.0 + self.threshold),
            (MetricMode::Max, ThresholdMode::Abs) => a > best + self.threshold,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            invalid!("ReduceLrOnPlateau", "factor must be in (0, 1), got {}", self.factor);
        }
        Range::NonNegative.check("ReduceLrOnPlateau", "threshold", self.threshold)?;
        Range::NonNegative.check("ReduceLrOnPlateau", "min_lr", self.min_lr)
    }

    fn describe(&self) -> String {
        format!(
            "ReduceLrOnPlateau(mode={:?}, factor={}, patience={}, threshold={}, threshold_mode={:?}, \
             cooldown={}, min_lr={})",
            self.mode,
            self.factor,
            self.patience,
            self.threshold,
            self.threshold_mode,
            self.cooldown,
            self.min_lr
        )
    }
}

fn worst(mode: MetricMode) -> f64 {
    match mode {
        MetricMode::Min => f64::INFINITY,
        MetricMode::Max => f64::NEG_INFINITY,
    }
}

impl Scheduler for ReduceLrOnPlateau {
    fn state(&self) -> ScheduleState {
        let values = BTreeMap::from([
            ("best".to_string(), self.best),
            ("num_bad_epochs".to_string(), self.num_bad_epochs as f64),
            ("cooldown_counter".to_string(), self.cooldown_counter as f64),
        ]);
        ScheduleState { kind: self.describe(), epoch: self.epoch, base_lrs: self.base_lrs.clone(), values }
    }

    fn load_state(&mut self, state: &ScheduleState) -> Result<()> {
        check_kind(&state.kind, &self.describe())?;
        check_base_lrs(&state.base_lrs, self.base_lrs.len())?;
        let count = |name: &str| -> Result<u64> {
            match state.values.get(name) {
                Some(&v) if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53) => Ok(v as u64),
                Some(v) => invalid!("schedule state", "`{name}` must be a count, got {v}"),
                None => invalid!("schedule state", "`{name}` is missing"),
            }
        };
        let (num_bad_epochs, cooldown_counter) = (count("num_bad_epochs")?, count("cooldown_counter")?);
        let Some(&best) = state.values.get("best") else {
            invalid!("schedule state", "`best` is missing");
        };
        self.best = best;
        self.num_bad_epochs = num_bad_epochs;
        self.cooldown_counter = cooldown_counter;
        self.epoch = state.epoch;
        self.base_lrs = state.base_lrs.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sgd, SgdConfig};
    use graphgrad_autodiff::{DType, Tensor, Var};

    fn sgd(lr: f64) -> Sgd {
        let w = Var::new("w", &Tensor::zeros(&[1], DType::F64).unwrap());
        Sgd::new(vec![("w".into(), w)], SgdConfig::new(lr)).unwrap()
    }

    /// patience 2, cooldown 1, factor 0.5, min_lr 0.3, base 1:
    /// metrics 5, 5, 5, 5 → bad epochs 1, 2, 3 > 2 → lr 0.5 at epoch 4 (cooldown 1);
    /// 5 → cooldown resets the count; 5, 5 → 1, 2; 5 → 3 > 2 → lr max(0.25, 0.3) = 0.3;
    /// then never lower.
    #[test]
    fn plateau_follows_pytorch_counting_with_cooldown_and_min_lr() {
        let mut opt = sgd(1.0);
        let mut p =
            ReduceLrOnPlateau::new(MetricMode::Min, &opt).factor(0.5).patience(2).cooldown(1).min_lr(0.3);
        let mut lrs = Vec::new();
        for _ in 0..12 {
            p.step(5.0, &mut opt).unwrap();
            lrs.push(opt.lrs()[0]);
        }
        assert_eq!(lrs, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3]);
    }

    #[test]
    fn max_mode_with_absolute_threshold() {
        let mut opt = sgd(1.0);
        let mut p =
            ReduceLrOnPlateau::new(MetricMode::Max, &opt).patience(0).threshold(0.1, ThresholdMode::Abs);
        assert!(!p.step(0.5, &mut opt).unwrap()); // first value improves on −inf
        assert!(!p.step(0.65, &mut opt).unwrap()); // +0.15 > 0.1: improves
        assert!(p.step(0.7, &mut opt).unwrap()); // +0.05 is not significant: bad epoch 1 > 0
        assert!((opt.lrs()[0] - 0.1).abs() < 1e-15);
        assert_eq!(p.best(), 0.65);
    }

    #[test]
    fn state_round_trips_and_rejects_another_configuration() {
        let mut opt = sgd(1.0);
        let mut p = ReduceLrOnPlateau::new(MetricMode::Min, &opt).patience(3);
        for m in [3.0, 2.0, 2.5, 2.5] {
            p.step(m, &mut opt).unwrap();
        }
        let state = p.state();
        let mut q = ReduceLrOnPlateau::new(MetricMode::Min, &opt).patience(3);
        q.load_state(&state).unwrap();
        assert_eq!(q.state(), state);
        let mut other = ReduceLrOnPlateau::new(MetricMode::Max, &opt).patience(3);
        let err = other.load_state(&state).unwrap_err().to_string();
        assert!(err.contains("schedule state does not match") && err.contains("mode=Max"), "{err}");
    }
}

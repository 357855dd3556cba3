//! Cosine annealing (SGDR without restarts), PyTorch's closed form:
//! `η_min + (base_lr − η_min)·(1 + cos(π·t/T_max))/2`.

use super::Schedule;
use crate::error::invalid;
use crate::{Range, Result};
use std::f64::consts::PI;

/// Anneals from the base rate to `eta_min` over `t_max` epochs along half a cosine.
///
/// ```
/// use graphgrad_optim::{CosineAnnealingLr, Schedule};
/// let s = CosineAnnealingLr::new(10, 0.0);
/// assert_eq!(s.lr_at(1.0, 0), 1.0);
/// assert!((s.lr_at(1.0, 5) - 0.5).abs() < 1e-15);
/// assert!(s.lr_at(1.0, 10).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// Epochs from the base rate down to `eta_min`.
    pub t_max: u64,
    /// The smallest rate.
    pub eta_min: f64,
}

impl CosineAnnealingLr {
    /// Anneals to `eta_min` over `t_max` epochs.
    pub fn new(t_max: u64, eta_min: f64) -> CosineAnnealingLr {
        CosineAnnealingLr { t_max, eta_min }
    }
}

impl Schedule for CosineAnnealingLr {
    /// Past `t_max` the cosine continues (the rate climbs back), as PyTorch's closed form does.
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        let phase = PI * epoch as f64 / self.t_max.max(1) as f64;
        self.eta_min + (base_lr - self.eta_min) * (1.0 + phase.cos()) / 2.0
    }

    fn describe(&self) -> String {
        format!("CosineAnnealingLr(t_max={}, eta_min={})", self.t_max, self.eta_min)
    }

    fn validate(&self) -> Result<()> {
        if self.t_max == 0 {
            invalid!("CosineAnnealingLr", "t_max must be at least 1");
        }
        Range::NonNegative.check("CosineAnnealingLr", "eta_min", self.eta_min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T_max 4, η_min 0.1, base 1.1: t = 1 → 0.1 + 1·(1 + cos(π/4))/2 = 0.1 + 0.853553390593 =
    /// 0.953553390593; t = 2 → 0.1 + 0.5 = 0.6; t = 3 → 0.1 + (1 − 0.707106781187)/2 = 0.246446609407.
    #[test]
    fn cosine_matches_hand_computed_rates() {
        let s = CosineAnnealingLr::new(4, 0.1);
        let expected = [1.1, 0.953553390593274, 0.6, 0.246446609406726, 0.1];
        for (epoch, want) in expected.iter().enumerate() {
            let got = s.lr_at(1.1, epoch as u64);
            assert!((got - want).abs() < 1e-12, "epoch {epoch}: {got} vs {want}");
        }
    }
}

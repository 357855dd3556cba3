//! Early stopping on a validation metric with patience and min-delta; keeps a copy of the
//! best weights and restores them when it stops (Keras' `restore_best_weights`).
//!
//! Counting follows Keras / PyTorch Lightning: an epoch improves when the metric beats the
//! best by more than `min_delta`; after `patience` epochs in a row without improvement,
//! training stops.
//!
//! Its progress (best value and epoch, epochs without improvement, the best weights) is saved
//! as an [`EarlyStoppingState`], so a resumed run stops where the uninterrupted one would.

use crate::saved::{load_state_dict, save_state_dict, SavedState};
use crate::{Error, MetricMode, Result};
use graphgrad_autodiff::{load_state, state_of, StateDict, Var};
use serde::{Deserialize, Serialize};

/// Early stopping's progress in plain, serialisable data (what a training checkpoint stores).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
    /// Patience and mode of the watcher that wrote it, in words (a state only loads into the
    /// same configuration).
    pub kind: String,
    /// The best metric and its epoch, once one was observed.
    pub best: Option<(f64, u64)>,
    /// Epochs in a row without improvement.
    pub bad_epochs: u64,
    /// The weights of the best epoch, when kept.
    pub best_weights: Option<SavedState>,
}

/// Watches a validation metric and says when to stop.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{EarlyStopping, MetricMode};
/// let w = Var::new("w", &Tensor::from_vec(vec![0.0f32], &[1])?);
/// let params = vec![("w".to_string(), w.clone())];
/// let mut stop = EarlyStopping::new(MetricMode::Min, 2);
/// for (epoch, val_loss) in [0.9, 0.5, 0.7, 0.8].into_iter().enumerate() {
///     w.set(&Tensor::from_vec(vec![epoch as f32], &[1])?)?; // "training"
///     if stop.observe(epoch as u64, val_loss, &params)? {
///         break;
///     }
/// }
/// // Stopped after two epochs without improvement; the weights of epoch 1 are back.
/// assert_eq!((stop.best(), stop.best_epoch()), (Some(0.5), Some(1)));
/// assert_eq!(w.to_vec::<f32>()?, vec![1.0]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    mode: MetricMode,
    patience: u64,
    min_delta: f64,
    restore_best: bool,
    best: Option<(f64, u64)>,
    bad_epochs: u64,
    best_weights: Option<StateDict>,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without improvement; min_delta 0; restores the best
    /// weights when it stops.
    pub fn new(mode: MetricMode, patience: u64) -> EarlyStopping {
        EarlyStopping {
            mode,
            patience,
            min_delta: 0.0,
            restore_best: true,
            best: None,
            bad_epochs: 0,
            best_weights: None,
        }
    }

    /// Sets the smallest change that counts as an improvement (its absolute value is used).
    pub fn min_delta(mut self, min_delta: f64) -> EarlyStopping {
        self.min_delta = min_delta.abs();
        self
    }

    /// Chooses whether stopping restores the best weights (default: yes).
    pub fn restore_best(mut self, restore: bool) -> EarlyStopping {
        self.restore_best = restore;
        self
    }

    /// The best metric so far.
    pub fn best(&self) -> Option<f64> {
        self.best.map(|(v, _)| v)
    }

    /// The epoch of the best metric.
    pub fn best_epoch(&self) -> Option<u64> {
        self.best.map(|(_, e)| e)
    }

    /// Errors unless the settings are usable: `min_delta` finite (a NaN would make no metric an
    /// improvement, and stop training while it improves).
    pub fn check(&self) -> Result<()> {
        if !self.min_delta.is_finite() {
            crate::error::invalid!("EarlyStopping", "min_delta must be finite, got {:?}", self.min_delta);
        }
        Ok(())
    }

    /// Epochs in a row without improvement.
    pub fn bad_epochs(&self) -> u64 {
        self.bad_epochs
    }

    /// Records `metric` for `epoch` after training it. Keeps a copy of `params` when the
    /// metric improves; returns true when training should stop (having restored the best
    /// weights, unless disabled). A NaN or infinite metric is an error
    /// ([`Error::Diverged`]) and changes nothing.
    pub fn observe(&mut self, epoch: u64, metric: f64, params: &[(String, Var)]) -> Result<bool> {
        self.check()?;
        if !metric.is_finite() {
            return Err(Error::Diverged { what: "validation metric", value: metric, epoch, step: 0 });
        }
        let improved = match (self.best, self.mode) {
            (None, _) => true,
            (Some((best, _)), MetricMode::Min) => metric < best - self.min_delta,
            (Some((best, _)), MetricMode::Max) => metric > best + self.min_delta,
        };
        if improved {
            self.best = Some((metric, epoch));
            self.bad_epochs = 0;
            self.best_weights = Some(state_of(params));
            return Ok(false);
        }
        self.bad_epochs += 1;
        if self.bad_epochs < self.patience.max(1) {
            return Ok(false);
        }
        if self.restore_best {
            self.restore_best_weights(params)?;
        }
        Ok(true)
    }

    /// Copies the best weights seen back into `params` (names and shapes must match).
    pub fn restore_best_weights(&self, params: &[(String, Var)]) -> Result<()> {
        match &self.best_weights {
            Some(state) => Ok(load_state(params, state)?),
            None => Err(Error::InvalidConfig {
                what: "EarlyStopping",
                reason: "no metric observed yet: there are no best weights to restore".into(),
            }),
        }
    }

    /// The best weights seen, by name.
    pub fn best_weights(&self) -> Option<&StateDict> {
        self.best_weights.as_ref()
    }

    /// Whether lower or higher values are better.
    pub fn mode(&self) -> MetricMode {
        self.mode
    }

    /// Epochs without improvement that stop training.
    pub fn patience(&self) -> u64 {
        self.patience
    }

    /// Whether stopping restores the best weights.
    pub fn restores_best(&self) -> bool {
        self.restore_best
    }

    /// The configuration in words, as saved in [`EarlyStoppingState::kind`].
    fn describe(&self) -> String {
        format!(
            "EarlyStopping(mode={:?}, patience={}, min_delta={}, restore_best={})",
            self.mode, self.patience, self.min_delta, self.restore_best
        )
    }

    /// A copy of the progress (best value, epoch, counter and best weights).
    pub fn state(&self) -> EarlyStoppingState {
        EarlyStoppingState {
            kind: self.describe(),
            best: self.best,
            bad_epochs: self.bad_epochs,
            best_weights: self.best_weights.as_ref().map(save_state_dict),
        }
    }

    /// Restores progress saved by [`state`](EarlyStopping::state) from a watcher of the same
    /// configuration; on error nothing changes.
    pub fn load_state(&mut self, state: &EarlyStoppingState) -> Result<()> {
        let ours = self.describe();
        if state.kind != ours {
            return Err(Error::StateMismatch {
                what: "early-stopping state",
                missing: Vec::new(),
                unexpected: Vec::new(),
                mismatched: vec![format!("early stopping: expected {ours}, found {}", state.kind)],
            });
        }
        let weights = state.best_weights.as_ref().map(load_state_dict).transpose()?;
        self.best = state.best;
        self.bad_epochs = state.bad_epochs;
        self.best_weights = weights;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphgrad_autodiff::Tensor;

    fn param(v: f64) -> Vec<(String, Var)> {
        vec![("w".to_string(), Var::new("w", &Tensor::from_vec(vec![v], &[1]).unwrap()))]
    }

    /// min_delta 0.1: 1.0 (best), 0.95 (not by > 0.1: bad 1), 0.85 (beats 1.0 − 0.1: best),
    /// 0.8 (bad 1), 0.79 (bad 2 = patience: stop, restore epoch 2's weights).
    #[test]
    fn min_delta_and_patience_decide_and_best_weights_return() {
        let params = param(0.0);
        let mut stop = EarlyStopping::new(MetricMode::Min, 2).min_delta(0.1);
        let mut stopped_at = None;
        for (epoch, m) in [1.0, 0.95, 0.85, 0.8, 0.79, 0.7].into_iter().enumerate() {
            params[0].1.set(&Tensor::from_vec(vec![epoch as f64 * 10.0], &[1]).unwrap()).unwrap();
            if stop.observe(epoch as u64, m, &params).unwrap() {
                stopped_at = Some(epoch);
                break;
            }
        }
        assert_eq!(stopped_at, Some(4));
        assert_eq!(stop.best_epoch(), Some(2));
        assert_eq!(params[0].1.to_vec::<f64>().unwrap(), vec![20.0]);
    }

    /// A watcher restored from another's state after epoch 1 stops at the same epoch with
    /// the same best weights as the one that ran on.
    #[test]
    fn state_round_trip_continues_the_count() {
        let metrics = [1.0, 0.8, 0.9, 0.95, 0.7];
        let run = |resume_after: Option<usize>| {
            let params = param(0.0);
            let mut stop = EarlyStopping::new(MetricMode::Min, 2);
            for (epoch, m) in metrics.into_iter().enumerate() {
                params[0].1.set(&Tensor::from_vec(vec![epoch as f64], &[1]).unwrap()).unwrap();
                if stop.observe(epoch as u64, m, &params).unwrap() {
                    return (epoch, params[0].1.to_vec::<f64>().unwrap());
                }
                if resume_after == Some(epoch) {
                    let saved = stop.state();
                    stop = EarlyStopping::new(MetricMode::Min, 2);
                    stop.load_state(&saved).unwrap();
                }
            }
            (metrics.len(), vec![])
        };
        // 0.9 and 0.95 do not beat 0.8: stop after epoch 3 with epoch 1's weights
        assert_eq!(run(None), (3, vec![1.0]));
        assert_eq!(run(Some(1)), (3, vec![1.0]));
        assert_eq!(run(Some(2)), (3, vec![1.0]));
        let err = EarlyStopping::new(MetricMode::Max, 2)
            .load_state(&EarlyStopping::new(MetricMode::Min, 2).state());
        assert!(err.unwrap_err().to_string().contains("expected EarlyStopping(mode=Max"));
    }

    #[test]
    fn max_mode_and_nan_metric() {
        let params = param(1.0);
        let mut stop = EarlyStopping::new(MetricMode::Max, 1).restore_best(false);
        assert!(!stop.observe(0, 0.5, &params).unwrap());
        assert!(!stop.observe(1, 0.6, &params).unwrap());
        let err = stop.observe(2, f64::NAN, &params).unwrap_err().to_string();
        assert!(err.contains("validation metric is NaN"), "{err}");
        assert!(stop.observe(3, 0.6, &params).unwrap());
        assert_eq!(stop.best(), Some(0.6));
    }
}

//! Callbacks: code of the user's that runs at the end of every batch and every epoch, and may
//! stop training (the run then ends as if a stopping criterion had said so, after the epoch's
//! evaluation, and its checkpoint records why).

use crate::error::Result;
use crate::metrics::EpochRecord;

/// What a callback wants after it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on training.
    Continue,
    /// Stop after this batch's epoch is evaluated.
    Stop,
}

/// The end of one training batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchEnd {
    /// The epoch, from 1.
    pub epoch: u64,
    /// The batch within the epoch, from 0.
    pub batch: usize,
    /// Optimiser steps taken so far (with gradient accumulation, not every batch steps).
    pub step: u64,
    /// The batch's training-mode loss.
    pub loss: f64,
}

/// Runs at batch and epoch ends. Both methods do nothing by default.
///
/// ```
/// use graphgrad_train::{Callback, Control, EpochRecord, Result};
/// /// Stops once validation accuracy reaches 99%.
/// struct GoodEnough;
/// impl Callback for GoodEnough {
///     fn on_epoch_end(&mut self, record: &EpochRecord) -> Result<Control> {
///         Ok(if record.get("val/accuracy").unwrap_or(0.0) >= 0.99 { Control::Stop } else { Control::Continue })
///     }
/// }
/// ```
pub trait Callback {
    /// After every batch (and its optimiser step, if it made one).
    fn on_batch_end(&mut self, _batch: &BatchEnd) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// After every epoch's evaluation, with its record.
    fn on_epoch_end(&mut self, _record: &EpochRecord) -> Result<Control> {
        Ok(Control::Continue)
    }
}

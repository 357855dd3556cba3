//! Learning-rate schedules the trainer steps once per epoch: any closed-form schedule
//! ([`LrScheduler`]) and reduce-on-plateau, which reads the monitored value.

use graphgrad_optim::{LrScheduler, Optimizer, ReduceLrOnPlateau, Result, Schedule, Scheduler};

/// A schedule stepped at the end of every epoch; its progress is checkpointed.
pub trait EpochSchedule: Scheduler {
    /// Moves to the next epoch; `monitored` is the epoch's monitored value (`val/loss` by
    /// default), which reduce-on-plateau needs.
    fn end_epoch(&mut self, monitored: Option<f64>, optimizer: &mut dyn Optimizer) -> Result<()>;
}

impl<S: Schedule> EpochSchedule for LrScheduler<S> {
    fn end_epoch(&mut self, _monitored: Option<f64>, optimizer: &mut dyn Optimizer) -> Result<()> {
        self.step(optimizer)
    }
}

impl EpochSchedule for ReduceLrOnPlateau {
    fn end_epoch(&mut self, monitored: Option<f64>, optimizer: &mut dyn Optimizer) -> Result<()> {
        match monitored {
            Some(value) => self.step(value, optimizer).map(|_| ()),
            None => Err(graphgrad_optim::Error::InvalidConfig {
                what: "ReduceLrOnPlateau",
                reason: "the monitored value was not measured this epoch".into(),
            }),
        }
    }
}

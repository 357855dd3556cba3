//! Learning-rate schedules, like `torch.optim.lr_scheduler`.
//!
//! A [`Schedule`] is a closed form: the rate at epoch `t` for a group whose initial rate is
//! `base_lr`. [`LrScheduler`] drives one: it records each group's base rate when created,
//! sets epoch 0's rates at once (as PyTorch's constructors do), and each
//! [`step`](LrScheduler::step) moves to the next epoch (or iteration: a schedule counts
//! whatever its caller counts). [`ReduceLrOnPlateau`] reacts to a metric instead. Both save
//! their progress as a [`ScheduleState`] for checkpoints; the rates themselves live in the
//! optimiser's state.

mod cosine;
mod plateau;
mod step;
mod warmup;

pub use cosine::CosineAnnealingLr;
pub use plateau::{MetricMode, ReduceLrOnPlateau, ThresholdMode};
pub use step::{ConstantLr, ExponentialLr, MultiStepLr, StepLr};
pub use warmup::LinearWarmup;

use crate::error::invalid;
use crate::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// A closed-form learning-rate schedule.
pub trait Schedule: Debug {
    /// The learning rate at `epoch` (0 = the start) for a group whose initial rate is `base_lr`.
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64;

    /// The schedule and its parameters in words (`StepLr(step_size=30, gamma=0.1)`); saved in
    /// the state, so a state only loads into the same schedule.
    fn describe(&self) -> String;

    /// Checks the parameters' ranges.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// A scheduler's progress in plain, serialisable data (what a checkpoint stores).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Which scheduler wrote it ([`Schedule::describe`], or `ReduceLrOnPlateau(...)`).
    pub kind: String,
    /// Steps taken so far.
    pub epoch: u64,
    /// Each group's initial learning rate.
    pub base_lrs: Vec<f64>,
    /// Scheduler-specific counters by name (reduce-on-plateau's best value, ...).
    pub values: BTreeMap<String, f64>,
}

/// Anything whose progress a checkpoint saves and restores.
pub trait Scheduler {
    /// The current progress.
    fn state(&self) -> ScheduleState;
    /// Restores progress saved by the same kind of scheduler (the optimiser's rates are
    /// restored with the optimiser's own state).
    fn load_state(&mut self, state: &ScheduleState) -> Result<()>;
}

/// Drives a [`Schedule`]: sets every group's rate from the schedule at each step.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{LrScheduler, Optimizer, Sgd, SgdConfig, StepLr};
/// let w = Var::new("w", &Tensor::zeros(&[1], graphgrad_autodiff::DType::F32)?);
/// let mut opt = Sgd::new(vec![("w".into(), w)], SgdConfig::new(1.0))?;
/// let mut sched = LrScheduler::new(StepLr::new(2, 0.5), &mut opt)?;
/// let mut seen = vec![opt.lrs()[0]];
/// for _ in 0..4 {
///     sched.step(&mut opt)?;
///     seen.push(opt.lrs()[0]);
/// }
/// assert_eq!(seen, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LrScheduler<S> {
    schedule: S,
    base_lrs: Vec<f64>,
    epoch: u64,
}

impl<S: Schedule> LrScheduler<S> {
    /// Records `optimizer`'s current rates as the base rates and sets epoch 0's rates.
    pub fn new(schedule: S, optimizer: &mut dyn Optimizer) -> Result<LrScheduler<S>> {
        schedule.validate()?;
        let scheduler = LrScheduler { schedule, base_lrs: optimizer.lrs(), epoch: 0 };
        scheduler.apply(optimizer)?;
        Ok(scheduler)
    }

    /// Moves to the next epoch and sets its rates.
    pub fn step(&mut self, optimizer: &mut dyn Optimizer) -> Result<()> {
        self.epoch += 1;
        self.apply(optimizer)
    }

    /// Steps taken so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The rates of the current epoch, per group.
    pub fn lrs(&self) -> Vec<f64> {
        self.base_lrs.iter().map(|&base| self.schedule.lr_at(base, self.epoch)).collect()
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    fn apply(&self, optimizer: &mut dyn Optimizer) -> Result<()> {
        let groups = optimizer.lrs().len();
        if groups != self.base_lrs.len() {
            invalid!(
                "LrScheduler",
                "the optimizer has {groups} parameter groups but the schedule was set up for {}",
                self.base_lrs.len()
            );
        }
        for (group, lr) in self.lrs().into_iter().enumerate() {
            optimizer.set_group_lr(group, lr)?;
        }
        Ok(())
    }
}

impl<S: Schedule> Scheduler for LrScheduler<S> {
    fn state(&self) -> ScheduleState {
        ScheduleState {
            kind: self.schedule.describe(),
            epoch: self.epoch,
            base_lrs: self.base_lrs.clone(),
            values: BTreeMap::new(),
        }
    }

    fn load_state(&mut self, state: &ScheduleState) -> Result<()> {
        check_kind(&state.kind, &self.schedule.describe())?;
        check_base_lrs(&state.base_lrs, self.base_lrs.len())?;
        self.epoch = state.epoch;
        self.base_lrs = state.base_lrs.clone();
        Ok(())
    }
}

pub(crate) fn check_kind(saved: &str, ours: &str) -> Result<()> {
    if saved != ours {
        return Err(Error::StateMismatch {
            what: "schedule state",
            missing: Vec::new(),
            unexpected: Vec::new(),
            mismatched: vec![format!("schedule: expected {ours}, found {saved}")],
        });
    }
    Ok(())
}

pub(crate) fn check_base_lrs(saved: &[f64], groups: usize) -> Result<()> {
    if saved.len() != groups {
        return Err(Error::StateMismatch {
            what: "schedule state",
            missing: Vec::new(),
            unexpected: Vec::new(),
            mismatched: vec![format!("base_lrs: expected {groups} groups, found {}", saved.len())],
        });
    }
    if let Some(bad) = saved.iter().find(|lr| !(lr.is_finite() && **lr >= 0.0)) {
        invalid!("schedule state", "base learning rate {bad} is not finite and non-negative");
    }
    Ok(())
}

//! `Trainer`: the course's loop as a library.
//!
//! The model was initialised at random when it was built. Until a stopping criterion says
//! stop: random mini-batches, forward, loss, backward, update; at each epoch's end the loss
//! and metrics on the training and validation data, the schedule, the stopping criteria,
//! callbacks, logs and checkpoints. Then [`Trainer::evaluate`] gives the error on data never
//! seen in training. Settings are checked when `fit` starts: a bad one is an
//! [`Error::Setting`](crate::Error::Setting) naming it, never a silent extra epoch.

mod parallel;
mod run;
mod step;

pub(crate) use step::target_tensor;
pub use step::Execution;

use crate::callback::Callback;
use crate::checkpoint::{CheckpointPolicy, SavedStop, TrainingCheckpoint};
use crate::error::Result;
use crate::metrics::{evaluate, predict, Evaluation, History, Metric};
use crate::objective::Objective;
use crate::plot::{learning_curves, CurveOptions};
use crate::progress::ProgressMode;
use crate::schedule::EpochSchedule;
use graphgrad_autodiff::Tensor;
use graphgrad_distributed::ProcessGroup;
use graphgrad_nn::data::Dataset;
use graphgrad_nn::Module;
use graphgrad_optim::{EarlyStopping, MetricMode, Optimizer, StoppingCriteria};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Trains a model: see the module docs and the crate's example.
pub struct Trainer<M: Module> {
    model: M,
    optimizer: Box<dyn Optimizer>,
    objective: Box<dyn Objective>,
    schedule: Option<Box<dyn EpochSchedule>>,
    stopping: StoppingCriteria,
    epochs: Option<u64>,
    metrics: Vec<Metric>,
    monitor: Option<(String, MetricMode)>,
    batch_size: usize,
    eval_batch_size: usize,
    accumulate: usize,
    drop_last: bool,
    execution: Execution,
    frozen: Vec<String>,
    callbacks: Vec<Box<dyn Callback>>,
    progress: ProgressMode,
    progress_sink: Option<Box<dyn Write>>,
    log_dir: Option<PathBuf>,
    log_steps: bool,
    tensorboard: bool,
    plots: bool,
    check_gradients: bool,
    evaluate_training: bool,
    checkpoints: Option<CheckpointPolicy>,
    group: Option<Arc<dyn ProcessGroup>>,
    name: String,
    rng: ChaCha8Rng,
    state: RunState,
    resume: Option<(PathBuf, TrainingCheckpoint)>,
}

/// Where a run stands: what a checkpoint saves besides the model and optimiser.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunState {
    pub(crate) history: History,
    /// Epochs completed.
    pub(crate) epoch: u64,
    /// Optimiser steps taken.
    pub(crate) step: u64,
    /// Best monitored value and its epoch (1-based).
    pub(crate) best: Option<(f64, u64)>,
    pub(crate) stopped: Option<SavedStop>,
}

impl<M: Module> Trainer<M> {
    /// A trainer of `model` by `optimizer` (built over `model.named_parameters()`) on
    /// `objective`. Defaults: batch size 32, no epoch budget yet (set [`epochs`](Self::epochs)
    /// or another stopping criterion), the loss as the only metric, eager steps, progress on
    /// standard output, mini-batches drawn from a ChaCha8 stream seeded with 0.
    pub fn new(
        model: M,
        optimizer: impl Optimizer + 'static,
        objective: impl Objective + 'static,
    ) -> Trainer<M> {
        Trainer::with_boxed_optimizer(model, Box::new(optimizer), objective)
    }

    /// As [`new`](Self::new), with a boxed optimiser (e.g. chosen at run time).
    pub fn with_boxed_optimizer(
        model: M,
        optimizer: Box<dyn Optimizer>,
        objective: impl Objective + 'static,
    ) -> Trainer<M> {
        Trainer {
            model,
            optimizer,
            objective: Box::new(objective),
            schedule: None,
            stopping: StoppingCriteria::new(),
            epochs: None,
            metrics: Vec::new(),
            monitor: None,
            batch_size: 32,
            eval_batch_size: 1024,
            accumulate: 1,
            drop_last: false,
            execution: Execution::Eager,
            frozen: Vec::new(),
            callbacks: Vec::new(),
            progress: ProgressMode::Auto,
            progress_sink: None,
            log_dir: None,
            log_steps: false,
            tensorboard: true,
            plots: true,
            check_gradients: false,
            evaluate_training: true,
            checkpoints: None,
            group: None,
            name: "training".into(),
            rng: ChaCha8Rng::seed_from_u64(0),
            state: RunState::default(),
            resume: None,
        }
    }

    /// Trains for at most `epochs` epochs in all (a resumed run counts the epochs before the
    /// checkpoint). 0 is an error when `fit` starts.
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.epochs = Some(epochs);
        self
    }

    /// Samples per mini-batch (default 32; 0 is an error when `fit` starts).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Samples per batch when evaluating (default 1024).
    pub fn eval_batch_size(mut self, batch_size: usize) -> Self {
        self.eval_batch_size = batch_size;
        self
    }

    /// Drops each epoch's last, smaller batch.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Stepped at every epoch's end ([`LrScheduler`](graphgrad_optim::LrScheduler) or
    /// [`ReduceLrOnPlateau`](graphgrad_optim::ReduceLrOnPlateau), which reads the monitored
    /// value).
    pub fn schedule(mut self, schedule: impl EpochSchedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Metrics measured each epoch besides the loss (on training and validation data).
    pub fn metrics(mut self, metrics: &[Metric]) -> Self {
        self.metrics = metrics.to_vec();
        self
    }

    /// More stopping criteria (a loss target, ...); [`epochs`](Self::epochs) and
    /// [`early_stopping`](Self::early_stopping) are added to them.
    pub fn stopping(mut self, stopping: StoppingCriteria) -> Self {
        self.stopping = stopping;
        self
    }

    /// Early stopping on the monitored value (`val/loss` unless [`monitor`](Self::monitor)
    /// says otherwise); its mode must agree with the monitor's.
    pub fn early_stopping(mut self, early: EarlyStopping) -> Self {
        self.stopping = self.stopping.early_stopping(early);
        self
    }

    /// The value early stopping, reduce-on-plateau, the best checkpoint and the chart's
    /// marker watch (`"val/loss"`, `"val/accuracy"`, ...). Default: `val/loss` with validation
    /// data, `train/loss` without.
    pub fn monitor(mut self, name: &str, mode: MetricMode) -> Self {
        self.monitor = Some((name.to_string(), mode));
        self
    }

    /// Eager or compiled steps.
    pub fn execution(mut self, execution: Execution) -> Self {
        self.execution = execution;
        self
    }

    /// Steps the optimiser every `batches` batches, with the gradients of those batches
    /// averaged by their sizes (so `k` batches of `b` equal one batch of `k·b` for a mean
    /// loss). An epoch always ends with a step. Default 1; 0 is an error.
    pub fn accumulate_gradients(mut self, batches: usize) -> Self {
        self.accumulate = batches;
        self
    }

    /// Parameters that are not trained: each entry is a full name (`0.weight`) or a prefix
    /// ending with a dot (`encoder.`). Unknown names are an error when `fit` starts.
    pub fn freeze(mut self, names: &[&str]) -> Self {
        self.frozen = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// Adds a callback run at every batch's and epoch's end.
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// How progress is shown (default: a bar on a terminal, plain lines otherwise).
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// Writes progress lines to `writer` instead of standard output (no bar).
    pub fn progress_to(mut self, writer: impl Write + 'static) -> Self {
        self.progress_sink = Some(Box::new(writer));
        self
    }

    /// Writes `metrics.jsonl`, TensorBoard events and, at the end of `fit`, the charts into
    /// `dir` (created).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Also logs every step's loss (`steps.jsonl`, TensorBoard `step/loss`).
    pub fn log_steps(mut self, on: bool) -> Self {
        self.log_steps = on;
        self
    }

    /// Whether the log folder gets TensorBoard event files (default yes).
    pub fn tensorboard(mut self, on: bool) -> Self {
        self.tensorboard = on;
        self
    }

    /// Whether `fit` writes its charts into the log folder at the end (default yes).
    pub fn plots(mut self, on: bool) -> Self {
        self.plots = on;
        self
    }

    /// Checks that every gradient is finite before each update (a pass over all of them;
    /// off by default: the loss is always checked, and a NaN loss is an error).
    pub fn check_gradients(mut self, on: bool) -> Self {
        self.check_gradients = on;
        self
    }

    /// Whether each epoch ends by evaluating the loss and metrics on the whole training set
    /// in eval mode (default yes: the honest training curve). Off, `train/loss` is the mean
    /// of the epoch's training-mode batch losses and no training metrics are measured,
    /// which saves a forward pass over the training data per epoch.
    pub fn evaluate_training(mut self, on: bool) -> Self {
        self.evaluate_training = on;
        self
    }

    /// Saves checkpoints at every epoch's end as `policy` says.
    pub fn checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = Some(policy);
        self
    }

    /// Trains data-parallel over `group`, one process per rank (`mpirun -np 2 PROGRAM`, with
    /// `graphgrad::distributed::MpiGroup`): every rank builds the same trainer on the same
    /// data, and `fit` checks that the ranks hold the same model and gives every rank rank
    /// 0's weights. Each step, each rank computes the gradient of its part of a global batch of
    /// `batch_size × ranks` samples; the gradients are averaged over the ranks before the
    /// update, so every replica takes the step of the whole global batch, eagerly or compiled.
    /// The epoch's measurements are rank 0's; only rank 0 prints, logs, plots and writes
    /// checkpoints (the others wait for it). Callbacks run on every rank, and rank 0's decision
    /// to stop holds. To resume, every rank reads the checkpoint file itself (one machine, or
    /// a shared file system).
    pub fn distributed(mut self, group: Arc<dyn ProcessGroup>) -> Self {
        self.group = Some(group);
        self
    }

    /// The run's name, in chart titles and the summary.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Draws mini-batches from `rng` (default: ChaCha8 seeded with 0).
    pub fn rng(mut self, rng: ChaCha8Rng) -> Self {
        self.rng = rng;
        self
    }

    /// Continues the run saved in the training checkpoint at `path` when `fit` starts: model
    /// (parameters and buffers), optimiser, schedule, early stopping, history, epoch, step and
    /// random streams come back, so the run goes on exactly as if never interrupted. The file
    /// is read and checked now; that it fits this model is checked when `fit` starts.
    pub fn resume(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        self.resume = Some((path.to_path_buf(), TrainingCheckpoint::load(path)?));
        Ok(self)
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// Ends the trainer, giving back the model.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Every epoch so far.
    pub fn history(&self) -> &History {
        &self.state.history
    }

    /// Epochs completed and optimiser steps taken.
    pub fn progress_counters(&self) -> (u64, u64) {
        (self.state.epoch, self.state.step)
    }

    /// The loss and metrics of the model on `data` (eval mode, no gradients).
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        evaluate(&self.model, self.objective.as_ref(), data, &self.metrics, self.eval_batch_size.max(1))
    }

    /// The model's outputs for `inputs` `[n, ...]` (eval mode, no gradients, in batches).
    pub fn predict(&self, inputs: &Tensor) -> Result<Tensor> {
        predict(&self.model, inputs, self.eval_batch_size.max(1))
    }

    /// Writes the learning curves as `stem.svg` and `stem.png` (what `fit` writes at its end
    /// as `learning_curves` in the log folder).
    pub fn plot_learning_curves(&self, stem: &Path) -> Result<[PathBuf; 2]> {
        learning_curves(&self.state.history, &self.curve_options(), stem)
    }

    fn curve_options(&self) -> CurveOptions {
        let metrics =
            self.metrics.iter().filter(|m| **m != Metric::PerClass).map(|m| m.name().to_string()).collect();
        let monitor = self.resolved_monitor(true).map(|(name, mode)| (name, mode == MetricMode::Min));
        CurveOptions {
            title: format!("{}: learning curves", self.name),
            loss_name: self.objective.name().to_string(),
            metrics,
            monitor,
        }
    }

    /// The monitored value's name and mode; `has_validation` picks the default.
    fn resolved_monitor(&self, has_validation: bool) -> Option<(String, MetricMode)> {
        match &self.monitor {
            Some(m) => Some(m.clone()),
            None if has_validation => Some(("val/loss".into(), MetricMode::Min)),
            None => Some(("train/loss".into(), MetricMode::Min)),
        }
    }
}

//! `Trainer::fit`: checks the settings, applies a resume, then runs epochs until a stopping
//! criterion (or a callback) says stop, with logs, progress, checkpoints and, at the end, the
//! charts.

use super::parallel::DataParallel;
use super::step::Stepper;
use super::{RunState, Trainer};
use crate::callback::{BatchEnd, Control};
use crate::checkpoint::{SavedStop, TrainerState, TrainingCheckpoint};
use crate::error::{setting, Error, Result};
use crate::log::{EventWriter, JsonLines};
use crate::metrics::{evaluate, EpochRecord, History};
use crate::plot::confusion_matrix;
use crate::progress::{Progress, ProgressMode, Sink};
use graphgrad_autodiff::Var;
use graphgrad_nn::data::{shuffled_indices, Dataset, Targets};
use graphgrad_nn::Module;
use graphgrad_optim::{check_loss, Checkpoint, MetricMode};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

/// What `fit` settled before the first epoch.
struct Plan {
    trainable: Vec<(String, Var)>,
    monitor: (String, MetricMode),
    budget: Option<u64>,
}

impl<M: Module> Trainer<M> {
    /// Trains on `train` (random mini-batches each epoch), measuring the loss and metrics on
    /// `train` and `validation` after every epoch, until a stopping criterion says stop.
    /// Returns the history of the whole run (with a resume: from its first epoch).
    ///
    /// Errors, before anything is trained, on: an epoch budget of 0, a batch size or
    /// accumulation of 0, no stopping criterion, empty training or validation data, metrics
    /// that need labels on real-valued targets, a monitored validation value without
    /// validation data, an early-stopping mode that disagrees with the monitor's, unknown
    /// frozen names, and a resume checkpoint of another model or of a run that already
    /// stopped or spent the budget. During training: a NaN or infinite loss.
    pub fn fit(&mut self, train: &Dataset, validation: Option<&Dataset>) -> Result<History> {
        let plan = self.prepare(train, validation)?;
        self.run(train, validation, plan)?;
        Ok(self.state.history.clone())
    }

    fn prepare(&mut self, train: &Dataset, validation: Option<&Dataset>) -> Result<Plan> {
        if self.batch_size == 0 {
            return Err(setting("batch size", "must be at least 1, got 0"));
        }
        if self.accumulate == 0 {
            return Err(setting("gradient accumulation", "must be at least 1 batch per step, got 0"));
        }
        if self.eval_batch_size == 0 {
            return Err(setting("evaluation batch size", "must be at least 1, got 0"));
        }
        if let Some(early) = self.stopping.early() {
            early.check()?;
        }
        if let Some(epochs) = self.epochs {
            if epochs == 0 {
                return Err(setting(
                    "epochs",
                    "must be at least 1, got 0 (an epoch budget of 0 trains nothing)",
                ));
            }
            self.stopping = std::mem::take(&mut self.stopping).max_epochs(epochs);
        }
        let budget = self.stopping.epoch_budget();
        if budget == Some(0) {
            return Err(setting("epochs", "the stopping criteria's epoch budget is 0"));
        }
        if budget.is_none() && self.stopping.target_loss().is_none() && self.stopping.early().is_none() {
            return Err(setting("stopping", "no stopping criterion: set an epoch budget with `epochs(n)`"));
        }
        if train.is_empty() {
            return Err(setting("training data", "the data set is empty"));
        }
        if validation.is_some_and(Dataset::is_empty) {
            return Err(setting(
                "validation data",
                "the validation set is empty; pass None to train without validation",
            ));
        }
        let labelled = matches!(train.targets(), Targets::Classes(_));
        if let Some(m) = self.metrics.iter().find(|m| m.needs_labels() != labelled) {
            let has = if labelled { "class labels" } else { "real-valued targets" };
            return Err(setting("metrics", format!("{} does not apply: the data set has {has}", m.name())));
        }
        let monitor = self.resolved_monitor(validation.is_some()).expect("a monitor always resolves");
        if monitor.0.starts_with("val/") && validation.is_none() {
            return Err(setting("monitor", format!("{} needs validation data, and fit got none", monitor.0)));
        }
        if let Some(early) = self.stopping.early() {
            if early.mode() != monitor.1 {
                return Err(setting(
                    "early stopping",
                    format!(
                        "its mode {:?} disagrees with the monitor {} ({:?})",
                        early.mode(),
                        monitor.0,
                        monitor.1
                    ),
                ));
            }
        }
        let named = self.model.named_parameters();
        let unknown: Vec<&String> =
            self.frozen.iter().filter(|f| !named.iter().any(|(n, _)| frozen_by(n, f))).collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
            return Err(setting(
                "freeze",
                format!(
                    "no parameter is called {unknown:?}; the model's parameters are {}",
                    known.join(", ")
                ),
            ));
        }
        let trainable: Vec<(String, Var)> =
            named.into_iter().filter(|(n, _)| !self.frozen.iter().any(|f| frozen_by(n, f))).collect();
        if trainable.is_empty() {
            return Err(setting("freeze", "every parameter is frozen: there is nothing to train"));
        }
        self.apply_resume(budget)?;
        if let Some(budget) = budget {
            if self.state.epoch >= budget {
                return Err(setting(
                    "epochs",
                    format!("the budget of {budget} epochs is already spent ({} trained)", self.state.epoch),
                ));
            }
        }
        if self.state.stopped.as_ref().is_some_and(|s| !matches!(s, SavedStop::MaxEpochs { .. })) {
            return Err(setting("fit", "this run already stopped; build a new trainer to train again"));
        }
        Ok(Plan { trainable, monitor, budget })
    }

    /// Restores everything a training checkpoint holds, and refuses a run with nothing left
    /// to train.
    fn apply_resume(&mut self, budget: Option<u64>) -> Result<()> {
        let Some((path, saved)) = self.resume.take() else {
            return Ok(());
        };
        let resume_error = |reason: String| Error::Resume { path: path.clone(), reason };
        let TrainingCheckpoint { checkpoint, trainer } = saved;
        let epochs_done = checkpoint.epoch;
        match &trainer.stopped {
            Some(SavedStop::MaxEpochs { .. }) | None => {}
            Some(stop) => {
                return Err(resume_error(format!(
                    "the run already stopped after epoch {epochs_done} ({}); there is nothing to resume",
                    describe_stop(stop)
                )));
            }
        }
        if let Some(budget) = budget {
            if epochs_done >= budget {
                return Err(resume_error(format!(
                    "the run has trained {epochs_done} epochs and the budget is {budget}: nothing is left to \
                     train; raise the epoch budget to go on"
                )));
            }
        }
        checkpoint
            .restore_model(&self.model.named_state())
            .map_err(|e| resume_error(format!("the checkpoint is of another model: {e}")))?;
        self.model
            .load_random_state(&trainer.random_streams)
            .map_err(|e| resume_error(format!("the model's random streams differ: {e}")))?;
        checkpoint
            .restore_optimizer(self.optimizer.as_mut())
            .map_err(|e| resume_error(format!("the optimiser does not match: {e}")))?;
        match (&mut self.schedule, &checkpoint.schedule) {
            (Some(schedule), Some(_)) => {
                let scheduler: &mut dyn graphgrad_optim::Scheduler = schedule.as_mut();
                checkpoint
                    .restore_schedule(scheduler)
                    .map_err(|e| resume_error(format!("the schedule does not match: {e}")))?;
            }
            (Some(_), None) => {
                return Err(resume_error("the checkpoint holds no schedule, this run has one".into()))
            }
            (None, Some(_)) => {
                return Err(resume_error("the checkpoint holds a schedule, this run has none".into()))
            }
            (None, None) => {}
        }
        match (self.stopping.early_mut(), &trainer.early_stopping) {
            (Some(early), Some(state)) => early
                .load_state(state)
                .map_err(|e| resume_error(format!("early stopping does not match: {e}")))?,
            (Some(_), None) => {
                return Err(resume_error(
                    "the checkpoint holds no early-stopping state, this run has one".into(),
                ))
            }
            _ => {}
        }
        self.rng = checkpoint.rng().map_err(|e| resume_error(e.to_string()))?;
        let mut history = trainer.history;
        history.epochs.retain(|r| r.epoch <= epochs_done);
        history.steps.retain(|&(s, _)| s <= checkpoint.step);
        self.state = RunState {
            history,
            epoch: epochs_done,
            step: checkpoint.step,
            best: trainer.best,
            stopped: None,
        };
        Ok(())
    }

    fn run(&mut self, train: &Dataset, validation: Option<&Dataset>, plan: Plan) -> Result<()> {
        let Plan { trainable, monitor, budget } = plan;
        let started = Instant::now();
        let resumed_at = (self.state.epoch, self.state.step);
        let mut data_parallel = match &self.group {
            Some(group) => {
                let named = self.model.named_parameters();
                let mut fixed: Vec<(String, Var)> =
                    named.into_iter().filter(|(n, _)| !trainable.iter().any(|(t, _)| t == n)).collect();
                fixed.extend(self.model.named_buffers());
                let (samples, batch, drop_last) = (train.len(), self.batch_size, self.drop_last);
                Some(DataParallel::new(group.clone(), trainable.clone(), &fixed, samples, batch, drop_last)?)
            }
            None => None,
        };
        // only rank 0 reports
        let lead = data_parallel.as_ref().is_none_or(DataParallel::lead);
        let batches_per_epoch = match &data_parallel {
            Some(dp) => dp.steps_per_epoch(),
            None if self.drop_last => train.len() / self.batch_size,
            None => train.len().div_ceil(self.batch_size),
        } as u64;
        if batches_per_epoch == 0 {
            return Err(setting(
                "batch size",
                format!(
                    "{} with drop_last leaves no batch of the {} training samples",
                    self.batch_size,
                    train.len()
                ),
            ));
        }
        let mut logs = match self.log_dir.as_ref().filter(|_| lead) {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(crate::error::io("create", dir))?;
                let jsonl = JsonLines::create(dir, &self.state.history, self.log_steps)?;
                let events = if self.tensorboard {
                    let mut events = EventWriter::create(dir)?;
                    replay_history(&mut events, &self.state.history)?;
                    Some(events)
                } else {
                    None
                };
                Some((jsonl, events))
            }
            None => None,
        };
        let sink = match self.progress_sink.take() {
            Some(writer) => Sink::Writer(writer),
            None => Sink::Stdout,
        };
        let mode = match (lead, &data_parallel, self.progress) {
            (false, _, _) => ProgressMode::Silent,
            // mpirun hands each rank a pseudo-terminal: a bar would land in its forwarded log
            (true, Some(_), ProgressMode::Auto) => ProgressMode::Lines,
            (true, _, mode) => mode,
        };
        let mut progress = Progress::start(
            mode,
            sink,
            budget.map(|b| b * batches_per_epoch),
            self.state.epoch * batches_per_epoch,
        );
        if resumed_at.0 > 0 {
            progress.note(&format!(
                "{}: resumed after epoch {} (step {})",
                self.name, resumed_at.0, resumed_at.1
            ));
        }
        let headline: Vec<String> = self
            .metrics
            .iter()
            .filter(|m| **m != crate::Metric::PerClass)
            .map(|m| m.name().to_string())
            .collect();
        self.optimizer.zero_grad();
        let stop = {
            let Trainer {
                model,
                optimizer,
                objective,
                schedule,
                stopping,
                metrics,
                callbacks,
                rng,
                state,
                checkpoints,
                ..
            } = self;
            let model: &dyn Module = model;
            let optimizer: RefCell<&mut dyn graphgrad_optim::Optimizer> = RefCell::new(optimizer.as_mut());
            let mut stepper = Stepper::new(
                self.execution,
                model,
                objective.as_ref(),
                &optimizer,
                trainable,
                self.check_gradients,
            );
            let mut stop: Option<SavedStop> = None;
            while stop.is_none() {
                let epoch_started = Instant::now();
                let epoch_index = state.epoch; // 0-based, counted over the whole run
                let epoch = epoch_index + 1;
                model.train();
                if let Some(dp) = &data_parallel {
                    dp.seed_random_streams(model, rng)?;
                }
                let lr = optimizer.borrow().lrs().first().copied().unwrap_or(0.0);
                let (mut loss_sum, mut seen) = (0.0, 0usize);
                // batches and samples summed into `.grad()` since the last update
                let (mut pending, mut pending_samples) = (0, 0);
                let mut callback_stop = false;
                // The epoch's order, the same on every rank; this rank's batches of it, each
                // with the samples of its step over all ranks.
                let order = shuffled_indices(train.len(), rng);
                let steps: Vec<(Vec<usize>, usize)> = match &data_parallel {
                    Some(dp) => dp.batches(&order)?,
                    None => local_batches(order, self.batch_size, self.drop_last),
                };
                let total = steps.len();
                for (b, (indices, global_samples)) in steps.into_iter().enumerate() {
                    let batch = train.batch(&indices)?;
                    let n = batch.len();
                    let loss = if self.accumulate == 1 && data_parallel.is_none() {
                        let loss = stepper.step(&batch)?;
                        state.step += 1;
                        loss
                    } else {
                        let loss = stepper.accumulate(&batch)?;
                        pending += 1;
                        pending_samples += global_samples;
                        loss
                    };
                    check_loss(loss, epoch_index, state.step)?;
                    loss_sum += loss * n as f64;
                    seen += n;
                    if self.log_steps {
                        state.history.steps.push((state.step, loss));
                        if let Some((jsonl, events)) = logs.as_mut() {
                            jsonl.step(epoch, state.step, loss)?;
                            if let Some(events) = events {
                                events.scalar(
                                    "step/loss",
                                    state.step as i64,
                                    loss as f32,
                                    crate::log::wall_time(),
                                )?;
                            }
                        }
                    }
                    let budget_text = budget.map_or(String::new(), |b| format!("/{b}"));
                    progress
                        .batch(|| format!("epoch {epoch}{budget_text} loss {:.4}", loss_sum / seen as f64));
                    let info = BatchEnd { epoch, batch: b, step: state.step, loss };
                    for callback in callbacks.iter_mut() {
                        if callback.on_batch_end(&info)? == Control::Stop {
                            callback_stop = true;
                        }
                    }
                    if let Some(dp) = data_parallel.as_ref().filter(|_| !callbacks.is_empty()) {
                        callback_stop = dp.lead_says(callback_stop)?;
                    }
                    // Σ n_i·g_i / Σ n_i over every sample of every rank: the gradient of the
                    // mean loss (the average over ranks divides the sum by the ranks)
                    if pending > 0 && (pending == self.accumulate || b + 1 == total || callback_stop) {
                        let ranks = match data_parallel.as_mut() {
                            Some(dp) => {
                                dp.average_gradients()?;
                                dp.ranks()
                            }
                            None => 1,
                        };
                        stepper.update(ranks as f64 / pending_samples as f64)?;
                        state.step += 1;
                        (pending, pending_samples) = (0, 0);
                    }
                    if callback_stop {
                        break;
                    }
                }
                // The epoch's measurements (the batch losses of every rank).
                if let Some(dp) = &data_parallel {
                    let mut sums = [loss_sum, seen as f64];
                    dp.sum(&mut sums)?;
                    (loss_sum, seen) = (sums[0], sums[1] as usize);
                    dp.share_buffers()?;
                }
                let mut values = BTreeMap::new();
                values.insert("train/batch_loss".to_string(), loss_sum / seen.max(1) as f64);
                let ebs = self.eval_batch_size;
                if self.evaluate_training {
                    let on_train = evaluate(model, objective.as_ref(), train, metrics, ebs)?;
                    values.insert("train/loss".to_string(), on_train.loss);
                    for (name, v) in on_train.metrics {
                        values.insert(format!("train/{name}"), v);
                    }
                } else {
                    values.insert("train/loss".to_string(), loss_sum / seen.max(1) as f64);
                }
                if let Some(validation) = validation {
                    let on_val = evaluate(model, objective.as_ref(), validation, metrics, ebs)?;
                    values.insert("val/loss".to_string(), on_val.loss);
                    for (name, v) in on_val.metrics {
                        values.insert(format!("val/{name}"), v);
                    }
                }
                if let Some(dp) = &data_parallel {
                    // every rank decides on rank 0's numbers
                    dp.take_lead_values(&mut values)?;
                }
                let Some(&monitored) = values.get(&monitor.0) else {
                    let measured: Vec<&String> = values.keys().collect();
                    return Err(setting(
                        "monitor",
                        format!("{} is not measured; the measured values are {measured:?}", monitor.0),
                    ));
                };
                if let Some(schedule) = schedule.as_mut() {
                    schedule.end_epoch(Some(monitored), &mut **optimizer.borrow_mut())?;
                }
                let train_loss = values["train/loss"];
                let early_value = stopping.early().map(|_| monitored);
                let reason =
                    stopping.end_epoch(epoch_index, train_loss, early_value, &model.named_state())?;
                let improved = match state.best {
                    None => true,
                    Some((best, _)) => match monitor.1 {
                        MetricMode::Min => monitored < best,
                        MetricMode::Max => monitored > best,
                    },
                };
                if improved {
                    state.best = Some((monitored, epoch));
                }
                let record = EpochRecord {
                    epoch,
                    step: state.step,
                    lr,
                    seconds: epoch_started.elapsed().as_secs_f64(),
                    values,
                };
                for callback in callbacks.iter_mut() {
                    if callback.on_epoch_end(&record)? == Control::Stop {
                        callback_stop = true;
                    }
                }
                stop = match &reason {
                    Some(reason) => Some(SavedStop::from_reason(reason)),
                    None if callback_stop => Some(SavedStop::Callback),
                    None => None,
                };
                if let Some((jsonl, events)) = logs.as_mut() {
                    jsonl.epoch(&record)?;
                    jsonl.flush()?;
                    if let Some(events) = events {
                        write_record(events, &record)?;
                        events.flush()?;
                    }
                }
                progress.epoch(&epoch_line(&record, budget, &headline, validation.is_some()));
                state.history.epochs.push(record);
                state.epoch = epoch;
                state.stopped = stop.clone();
                let save = |policy: &crate::checkpoint::CheckpointPolicy| -> Result<()> {
                    let mut checkpoint = Checkpoint::from_state_dict(&model.state_dict())
                        .with_optimizer(&**optimizer.borrow())
                        .with_progress(state.epoch, state.step)
                        .with_rng(rng)
                        .with_metadata("trainer", self.name.as_str());
                    if let Some(schedule) = schedule.as_ref() {
                        let scheduler: &dyn graphgrad_optim::Scheduler = schedule.as_ref();
                        checkpoint = checkpoint.with_schedule(scheduler);
                    }
                    let settings = [
                        ("batch_size", self.batch_size.to_string()),
                        ("accumulate", self.accumulate.to_string()),
                        ("execution", format!("{:?}", self.execution)),
                    ];
                    let trainer = TrainerState {
                        history: state.history.clone(),
                        early_stopping: stopping.early().map(|e| e.state()),
                        random_streams: model.random_state(),
                        best: state.best,
                        stopped: stop.clone(),
                        settings: settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    };
                    policy.save(&TrainingCheckpoint { checkpoint, trainer }, epoch, improved)
                };
                if let Some(policy) = checkpoints.as_ref() {
                    // rank 0 writes; the others wait for it, and share its error
                    let saved = if lead { save(policy) } else { Ok(()) };
                    match &data_parallel {
                        Some(dp) => dp.lead_result(saved)?,
                        None => saved?,
                    }
                }
            }
            if stepper.traces() > 0 {
                progress.note(&format!(
                    "compiled mode: traced {} program(s), one per batch shape",
                    stepper.traces()
                ));
            }
            stop
        };
        let summary = self.summary(stop.as_ref(), &monitor, started.elapsed().as_secs_f64(), resumed_at);
        progress.finish(&summary);
        if let (Some(dir), true) = (&self.log_dir, self.plots && lead) {
            self.plot_learning_curves(&dir.join("learning_curves"))?;
            if let Some(validation) = validation.filter(|v| matches!(v.targets(), Targets::Classes(_))) {
                if let Some(matrix) = self.evaluate(validation)?.confusion {
                    let title = format!("{}: validation confusion matrix", self.name);
                    confusion_matrix(&matrix, &title, &dir.join("confusion_matrix"))?;
                }
            }
        }
        Ok(())
    }

    fn summary(
        &self,
        stop: Option<&SavedStop>,
        monitor: &(String, MetricMode),
        seconds: f64,
        resumed: (u64, u64),
    ) -> String {
        let (epochs, steps) = (self.state.epoch, self.state.step);
        let best = match self.state.best {
            Some((v, e)) => format!("; best {} {v:.4} at epoch {e}", monitor.0),
            None => String::new(),
        };
        let what = match stop {
            Some(SavedStop::MaxEpochs { epochs }) => format!("finished the budget of {epochs} epochs{best}"),
            Some(SavedStop::EarlyStopping { best, best_epoch }) => {
                let restored = match self.stopping.early() {
                    Some(early) if early.restores_best() => ", whose weights are restored",
                    _ => "",
                };
                format!(
                    "early stopping after epoch {epochs}: {} has not improved since epoch {best_epoch} \
                     (best {best:.4}){restored}",
                    monitor.0
                )
            }
            Some(SavedStop::LossTarget { loss, target }) => {
                format!("stopped after epoch {epochs}: the training loss {loss:.4} reached the target {target}{best}")
            }
            Some(SavedStop::Callback) => format!("stopped by a callback after epoch {epochs}{best}"),
            None => format!("stopped after epoch {epochs}{best}"),
        };
        let this_run = if resumed.0 > 0 {
            format!(" ({} epochs and {} steps since the resume)", epochs - resumed.0, steps - resumed.1)
        } else {
            String::new()
        };
        format!("{}: {what}; {steps} steps in {seconds:.1} s{this_run}", self.name)
    }
}

/// Whether the parameter `name` is frozen by the entry `frozen` (a full name, or a prefix
/// ending with a dot).
fn frozen_by(name: &str, frozen: &str) -> bool {
    name == frozen || (frozen.ends_with('.') && name.starts_with(frozen))
}

fn describe_stop(stop: &SavedStop) -> String {
    match stop {
        SavedStop::MaxEpochs { epochs } => format!("finished: the budget of {epochs} epochs is spent"),
        SavedStop::LossTarget { loss, target } => {
            format!("stopped: the training loss {loss:.4} reached the target {target}")
        }
        SavedStop::EarlyStopping { best, best_epoch } => {
            format!("early stopping: no improvement since epoch {best_epoch} (best {best:.4})")
        }
        SavedStop::Callback => "stopped by a callback".to_string(),
    }
}

/// One plain progress line: `epoch 3/20: train loss 0.2100, val loss 0.2500, val accuracy
/// 0.9400, lr 0.001, 0.41 s`.
fn epoch_line(record: &EpochRecord, budget: Option<u64>, headline: &[String], validation: bool) -> String {
    let mut line = match budget {
        Some(b) => format!("epoch {:>w$}/{b}:", record.epoch, w = b.to_string().len()),
        None => format!("epoch {}:", record.epoch),
    };
    let mut parts = Vec::new();
    let prefixes: &[&str] = if validation { &["train", "val"] } else { &["train"] };
    for prefix in prefixes {
        for name in std::iter::once(&"loss".to_string()).chain(headline) {
            if let Some(v) = record.get(&format!("{prefix}/{name}")) {
                parts.push(format!("{prefix} {} {v:.4}", name.replace('_', " ")));
            }
        }
    }
    parts.push(format!("lr {}", crate::plot::tick(&record.lr)));
    parts.push(format!("{:.2} s", record.seconds));
    line.push(' ');
    line.push_str(&parts.join(", "));
    line
}

/// Every value of an epoch as a TensorBoard scalar at step = epoch, plus the learning rate.
fn write_record(events: &mut EventWriter, record: &EpochRecord) -> Result<()> {
    let now = crate::log::wall_time();
    for (name, &v) in &record.values {
        events.scalar(name, record.epoch as i64, v as f32, now)?;
    }
    events.scalar("lr", record.epoch as i64, record.lr as f32, now)
}

/// Writes a resumed run's earlier scalars into a fresh event file.
fn replay_history(events: &mut EventWriter, history: &History) -> Result<()> {
    let now = crate::log::wall_time();
    for &(step, loss) in &history.steps {
        events.scalar("step/loss", step as i64, loss as f32, now)?;
    }
    for record in &history.epochs {
        write_record(events, record)?;
    }
    events.flush()
}

/// `order` in batches of `batch_size` (the last one smaller unless `drop_last`), each with its
/// sample count.
fn local_batches(order: Vec<usize>, batch_size: usize, drop_last: bool) -> Vec<(Vec<usize>, usize)> {
    order
        .chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(|c| (c.to_vec(), c.len()))
        .collect()
}

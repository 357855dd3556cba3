//! Helpers shared by the examples: command-line flags, output folders and a classifier's
//! evaluation. Progress and charts come from the training library (`graphgrad::train`), so a
//! user's own program has them too.

#![allow(dead_code, unused_imports)] // each example uses a different subset

pub use graphgrad::train::plot::{
    heat_maps, image_grid, line_chart, lines_and_points, palette, panels, styled_chart, tick, HeatMap,
    ImageRow, Line, Panel, Series, Style,
};
pub use graphgrad::train::progress::LoopProgress;
use std::error::Error;
use std::path::{Path, PathBuf};

/// Any error an example reports.
pub type AnyResult<T> = Result<T, Box<dyn Error>>;

/// `--name value` flags after the program name, with typed look-ups and defaults.
pub struct Flags {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `std::env::args()`: `--key value` pairs and bare `--switch`es listed in
    /// `switch_names`. Unknown flags are an error that lists the known ones.
    pub fn parse(known: &[&str], switch_names: &[&str]) -> AnyResult<Flags> {
        let mut args = std::env::args().skip(1);
        let (mut pairs, mut switches) = (Vec::new(), Vec::new());
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}; flags: {}", known.join(", ")).into());
            };
            if switch_names.contains(&name) {
                switches.push(name.to_string());
            } else if known.contains(&name) {
                let value = args.next().ok_or_else(|| format!("--{name} needs a value"))?;
                pairs.push((name.to_string(), value));
            } else {
                let all: Vec<&str> = known.iter().chain(switch_names).copied().collect();
                return Err(format!("unknown flag --{name}; flags: --{}", all.join(", --")).into());
            }
        }
        Ok(Flags { pairs, switches })
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> AnyResult<T> {
        match self.pairs.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => v.parse().map_err(|_| format!("--{name}: cannot parse {v:?}").into()),
            None => Ok(default),
        }
    }

    /// The value of `--name` as a string, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// True when the examples should run briefly (the integration test sets `GRAPHGRAD_FAST=1`).
pub fn fast_mode() -> bool {
    std::env::var("GRAPHGRAD_FAST").is_ok_and(|v| v != "0")
}

/// `--mode eager` (the default) or `--mode compiled`: whether the training step is compiled
/// whole (`compile_if`), the same step body either way.
pub fn compiled_mode(flags: &Flags) -> AnyResult<bool> {
    match flags.text("mode").unwrap_or("eager") {
        "eager" => Ok(false),
        "compiled" => Ok(true),
        other => Err(format!("--mode {other:?}: choose eager or compiled").into()),
    }
}

/// The output folder `out/<example>` (created), or `--out` when given.
pub fn output_dir(flags: &Flags, example: &str) -> AnyResult<PathBuf> {
    let dir = flags.text("out").map(PathBuf::from).unwrap_or_else(|| Path::new("out").join(example));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The progress of a loop over `len` steps: a bar on a terminal, plain lines when the output
/// is piped or logged (the training library's [`LoopProgress`]).
pub fn progress(len: u64, what: &str) -> LoopProgress {
    LoopProgress::new(len, what)
}

/// What a classifier example trains for unless its flags say otherwise.
pub struct Schedule {
    /// `--epochs`: the budget.
    pub epochs: u64,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--patience`: epochs without a better validation loss before early stopping.
    pub patience: u64,
}

/// `--distributed`: this process's rank of an `mpirun` job (MPI, in a build with the `mpi`
/// feature); without the switch, a group of one.
pub fn process_group(flags: &Flags) -> AnyResult<std::sync::Arc<dyn graphgrad::distributed::ProcessGroup>> {
    if !flags.switch("distributed") {
        return Ok(std::sync::Arc::new(graphgrad::distributed::SingleProcess));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(graphgrad::distributed::MpiGroup::init(Default::default())?)
    }
    #[cfg(not(feature = "mpi"))]
    Err("--distributed needs MPI: build with `--features mpi` and start the ranks with mpirun".into())
}

/// The training library's loop for a classifier example: `--epochs`, `--batch-size` (the
/// global batch, shared by the ranks of `group`), `--patience` (early stopping on the
/// validation loss, best weights restored), `--mode`, accuracy and macro F1, logs, charts and
/// checkpoints (the last two and the best) in `out`, and `--resume PATH` to continue a run.
pub fn classifier_trainer<M: graphgrad::nn::Module>(
    name: &str,
    model: M,
    optimizer: Box<dyn graphgrad::optim::Optimizer>,
    flags: &Flags,
    out: &Path,
    defaults: Schedule,
    group: &std::sync::Arc<dyn graphgrad::distributed::ProcessGroup>,
) -> AnyResult<graphgrad::train::Trainer<M>> {
    use graphgrad::optim::{EarlyStopping, MetricMode};
    use graphgrad::train::{CheckpointPolicy, CrossEntropy, Execution, Metric, Trainer};
    let execution = if compiled_mode(flags)? { Execution::Compiled } else { Execution::Eager };
    let global_batch: usize = flags.get("batch-size", defaults.batch_size)?;
    let ranks = group.size();
    if !global_batch.is_multiple_of(ranks) {
        return Err(format!(
            "--batch-size {global_batch}: the global batch must divide among the {ranks} ranks"
        )
        .into());
    }
    let mut trainer = Trainer::with_boxed_optimizer(model, optimizer, CrossEntropy)
        .name(name)
        .epochs(flags.get("epochs", defaults.epochs)?)
        .batch_size(global_batch / ranks)
        .metrics(&[Metric::Accuracy, Metric::MacroF1])
        .early_stopping(
            EarlyStopping::new(MetricMode::Min, flags.get("patience", defaults.patience)?).min_delta(1e-4),
        )
        .execution(execution)
        .log_dir(out)
        .checkpoints(CheckpointPolicy::new(out.join("checkpoints")).keep_last(2).keep_best(true));
    if ranks > 1 {
        trainer = trainer.distributed(group.clone());
    }
    if let Some(path) = flags.text("resume") {
        trainer = trainer.resume(path)?;
    }
    Ok(trainer)
}

/// The test set's loss, accuracy, per-class and macro precision, recall and F1 and confusion
/// matrix (also drawn to `out/test_confusion_matrix.{svg,png}`): data the model never saw in
/// training or model selection. `what` names one sample (`"image"`, `"clip"`). Only the
/// `lead` process (rank 0) prints and draws.
pub fn report_test<M: graphgrad::nn::Module>(
    trainer: &graphgrad::train::Trainer<M>,
    name: &str,
    test: &graphgrad::nn::data::Dataset,
    what: &str,
    out: &Path,
    lead: bool,
) -> AnyResult<graphgrad::nn::metrics::ConfusionMatrix> {
    let result = trainer.evaluate(test)?;
    let matrix = result.confusion.ok_or("the test set has no class labels")?;
    if !lead {
        return Ok(matrix);
    }
    println!(
        "\ntest set ({} {what}s never seen in training): loss {:.4}, accuracy {:.2}%\n",
        test.len(),
        result.loss,
        100.0 * matrix.accuracy()
    );
    println!("{}", matrix.report());
    println!("confusion matrix (rows: true class, columns: predicted):\n{matrix}");
    let title = format!("{name}: test confusion matrix");
    graphgrad::train::plot::confusion_matrix(&matrix, &title, &out.join("test_confusion_matrix"))?;
    println!(
        "wrote {}/{{metrics.jsonl, learning_curves.{{svg,png}}, confusion_matrix.{{svg,png}}, \
         test_confusion_matrix.{{svg,png}}}}, TensorBoard events and checkpoints/",
        out.display()
    );
    Ok(matrix)
}

/// Mean cross-entropy, accuracy and predicted classes of a classifier on a whole labelled data
/// set, in eval mode and without recording gradients (training mode is restored after).
pub fn evaluate_classifier(
    model: &dyn graphgrad::nn::Module,
    data: &graphgrad::nn::data::Dataset,
) -> AnyResult<(f64, f64, Vec<usize>)> {
    use graphgrad::nn::{loss::cross_entropy, metrics::predictions, Reduction};
    model.set_training(false);
    let result = graphgrad::autodiff::no_grad(|| -> AnyResult<_> {
        let batch = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
        let labels = batch.labels().ok_or("the data set has no class labels")?;
        let logits = model.forward(&batch.inputs)?;
        let loss = cross_entropy(&logits, labels, Reduction::Mean)?.item()?;
        let predicted = predictions(&logits)?;
        let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok((loss, correct as f64 / labels.len().max(1) as f64, predicted))
    });
    model.set_training(true);
    result
}

/// Train and validation loss and accuracy per epoch: the curves that show under- and
/// over-fitting.
#[derive(Default)]
pub struct LearningCurves {
    train_loss: Vec<(f64, f64)>,
    val_loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    val_acc: Vec<(f64, f64)>,
}

impl LearningCurves {
    /// Records one epoch (numbered from 1 on the x axis).
    pub fn push(&mut self, epoch: u64, train: (f64, f64), validation: (f64, f64)) {
        let x = epoch as f64 + 1.0;
        self.train_loss.push((x, train.0));
        self.train_acc.push((x, train.1));
        self.val_loss.push((x, validation.0));
        self.val_acc.push((x, validation.1));
    }

    /// Writes `learning_curves.svg` (loss) and `accuracy.svg` into `out`; returns their paths.
    pub fn write(&self, out: &Path, name: &str) -> AnyResult<(PathBuf, PathBuf)> {
        self.write_with(out, name, "cross-entropy")
    }

    /// As [`LearningCurves::write`], with the loss axis named `loss_label`.
    pub fn write_with(&self, out: &Path, name: &str, loss_label: &str) -> AnyResult<(PathBuf, PathBuf)> {
        let pair = |train: &[(f64, f64)], val: &[(f64, f64)]| {
            [
                Series { label: "train", points: train.to_vec() },
                Series { label: "validation", points: val.to_vec() },
            ]
        };
        let loss = out.join("learning_curves.svg");
        let title = format!("{name}: loss (a widening gap between the curves is over-fitting)");
        line_chart(&loss, &title, "epoch", loss_label, &pair(&self.train_loss, &self.val_loss))?;
        let accuracy = out.join("accuracy.svg");
        let title = format!("{name}: accuracy");
        line_chart(&accuracy, &title, "epoch", "accuracy", &pair(&self.train_acc, &self.val_acc))?;
        Ok((loss, accuracy))
    }
}

//! The main job: a multi-layer perceptron on the UCI handwritten digits shipped with graphgrad.
//!
//! Splits the 1797 images into train / validation / test (stratified, seeded), trains on random
//! mini-batches until a stopping criterion says stop (epoch budget, or early stopping on the
//! validation loss, which restores the best weights), then evaluates once on the test images
//! the model never saw: accuracy, per-class and macro precision and recall, confusion matrix.
//! Writes learning curves (train vs validation loss and accuracy) and a checkpoint; `--resume`
//! continues from one. `--mode compiled` wraps the very same training step (forward,
//! cross-entropy on the integer labels, backward, optimiser update, dropout included) in
//! `autodiff::compile_if`: it is traced once and its fused, memory-planned program replays on
//! every mini-batch.
//!
//! ```text
//! cargo run --release --example digits
//! cargo run --release --example digits -- --epochs 100 --batch-size 64 --lr 0.001 --optimizer adam
//! cargo run --release --example digits -- --resume out/digits/checkpoint.ggck --epochs 120
//! cargo run --release --example digits -- --mode compiled
//! ```

mod common;

use common::{evaluate_classifier, output_dir, progress, AnyResult, Flags, LearningCurves};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::{Tensor, Var};
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::loss::{cross_entropy, Reduction};
use graphgrad::nn::metrics::ConfusionMatrix;
use graphgrad::nn::{DropoutConfig, LinearConfig, Module, ReLU, Sequential};
use graphgrad::optim::{
    Adam, AdamConfig, Checkpoint, EarlyStopping, MetricMode, Optimizer, Sgd, SgdConfig, StopReason,
    StoppingCriteria,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::process::ExitCode;

/// What the command line chose.
struct Settings {
    epochs: u64,
    batch_size: usize,
    lr: f64,
    optimizer: String,
    seed: u64,
    hidden: usize,
    patience: u64,
    dropout: f64,
    compiled: bool,
    resume: Option<String>,
}

impl Settings {
    fn from_flags(flags: &Flags) -> AnyResult<Settings> {
        let fast = common::fast_mode();
        Ok(Settings {
            epochs: flags.get("epochs", if fast { 2 } else { 100 })?,
            batch_size: flags.get("batch-size", 32)?,
            lr: flags.get("lr", 0.001)?,
            optimizer: flags.get("optimizer", "adam".to_string())?,
            seed: flags.get("seed", 0)?,
            hidden: flags.get("hidden", 128)?,
            patience: flags.get("patience", 10)?,
            dropout: flags.get("dropout", 0.2)?,
            compiled: common::compiled_mode(flags)?,
            resume: flags.text("resume").map(str::to_string),
        })
    }
}

/// 64 → hidden → hidden/2 → 10 with ReLU and dropout.
fn build_model(s: &Settings, rng: &mut ChaCha8Rng) -> AnyResult<Sequential> {
    Ok(Sequential::new()
        .append(LinearConfig::new(64, s.hidden).init(rng)?)
        .append(ReLU)
        .append(DropoutConfig::new(s.dropout).init(rng)?)
        .append(LinearConfig::new(s.hidden, s.hidden / 2).init(rng)?)
        .append(ReLU)
        .append(LinearConfig::new(s.hidden / 2, 10).init(rng)?))
}

fn build_optimizer(s: &Settings, params: Vec<(String, Var)>) -> AnyResult<Box<dyn Optimizer>> {
    Ok(match s.optimizer.as_str() {
        "adam" => Box::new(Adam::new(params, AdamConfig::new(s.lr))?),
        "sgd" => Box::new(Sgd::new(params, SgdConfig::new(s.lr).momentum(0.9))?),
        other => return Err(format!("--optimizer {other:?}: choose adam or sgd").into()),
    })
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &[
            "epochs",
            "batch-size",
            "lr",
            "optimizer",
            "seed",
            "hidden",
            "patience",
            "dropout",
            "mode",
            "resume",
            "out",
        ],
        &[],
    )?;
    let s = Settings::from_flags(&flags)?;
    let out = output_dir(&flags, "digits")?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);

    // Data: pixels 0..16 scaled to 0..1; the split is stratified and seeded.
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng)?;
    println!(
        "digits: {} train, {} validation, {} test images of 8×8 pixels, 10 classes",
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );

    let model = build_model(&s, &mut rng)?;
    let optimizer = RefCell::new(build_optimizer(&s, model.named_parameters())?);
    let (mut first_epoch, mut step) = (0, 0u64);
    if let Some(path) = &s.resume {
        let checkpoint = Checkpoint::load(path)?;
        checkpoint.restore_model(&model.named_parameters())?;
        checkpoint.restore_optimizer(optimizer.borrow_mut().as_mut())?;
        rng = checkpoint.rng()?;
        first_epoch = checkpoint.epoch + 1;
        step = checkpoint.step;
        println!("resumed from {path} after epoch {}", checkpoint.epoch + 1);
    }
    let params = model.named_parameters();
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    println!(
        "model: 64 → {} → {} → 10 MLP, {n_params} parameters, {} lr {}, {} mode",
        s.hidden,
        s.hidden / 2,
        s.optimizer,
        s.lr,
        if s.compiled { "compiled" } else { "eager" }
    );
    // One training step, the same body in both modes: inputs [images, labels as i64].
    let mut train_step = compile_if(s.compiled, |io: &[Tensor]| -> AnyResult<Tensor> {
        let mut optimizer = optimizer.borrow_mut();
        optimizer.zero_grad();
        let loss = cross_entropy(&model.forward(&io[0])?, &io[1], Reduction::Mean)?;
        loss.backward()?;
        optimizer.step()?;
        Ok(loss)
    });

    let early = EarlyStopping::new(MetricMode::Min, s.patience).min_delta(1e-4).restore_best(true);
    let mut stopping = StoppingCriteria::new().max_epochs(s.epochs).early_stopping(early);
    let mut curves = LearningCurves::default();
    let bar = progress(s.epochs.saturating_sub(first_epoch), "training");
    let checkpoint_path = out.join("checkpoint.ggck");
    let mut reason = None;
    for epoch in first_epoch..s.epochs.max(first_epoch + 1) {
        // One pass over the training images in a random order.
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for batch in split.train.shuffled_batches(s.batch_size, false, &mut rng)? {
            let loss = train_step.call(&[batch.inputs.clone(), batch.label_tensor()?])?[0].item()?;
            graphgrad::optim::check_loss(loss, epoch, step)?;
            loss_sum += loss * batch.len() as f64;
            seen += batch.len();
            step += 1;
        }
        let (train_loss, train_acc, _) = evaluate_classifier(&model, &split.train)?;
        let (val_loss, val_acc, _) = evaluate_classifier(&model, &split.validation)?;
        curves.push(epoch, (train_loss, train_acc), (val_loss, val_acc));
        bar.set_message(format!(
            "epoch {:>3}: batch loss {:.4}, train loss {train_loss:.4}, validation loss {val_loss:.4}, accuracy {:.1}%",
            epoch + 1,
            loss_sum / seen.max(1) as f64,
            100.0 * val_acc
        ));
        bar.inc(1);
        // Early stopping may restore the best weights: save after the check, so the
        // checkpoint holds the model that is evaluated below.
        reason = stopping.end_epoch(epoch, train_loss, Some(val_loss), &model.named_parameters())?;
        Checkpoint::new(&model.named_parameters())
            .with_optimizer(optimizer.borrow().as_ref())
            .with_progress(epoch, step)
            .with_rng(&rng)
            .with_metadata("example", "digits")
            .save(&checkpoint_path)?;
        if reason.is_some() {
            break;
        }
    }
    bar.finish();
    if train_step.is_compiled() {
        // One program per batch shape (the last batch of an epoch may be smaller).
        println!("compiled {} program(s); the first one's passes:", train_step.trace_count());
        if let Some(first) = train_step.programs().next() {
            println!("{}", first.log());
        }
    }
    match reason {
        Some(StopReason::EarlyStopping { best, best_epoch }) => println!(
            "early stopping: validation loss stopped improving; restored the weights of epoch {} (loss {best:.4})",
            best_epoch + 1
        ),
        Some(other) => println!("stopped: {other:?}"),
        None => println!("stopped: epoch budget spent"),
    }

    // The test images were never used for training or model selection.
    let (test_loss, test_acc, predicted) = evaluate_classifier(&model, &split.test)?;
    let labels = split.test.labels().ok_or("digits has class labels")?;
    let matrix = ConfusionMatrix::from_predictions(&predicted, labels, 10)?;
    println!("\ntest set: loss {test_loss:.4}, accuracy {:.2}%\n", 100.0 * test_acc);
    println!("{}", matrix.report());
    println!("confusion matrix (rows: true digit, columns: predicted):\n{matrix}");

    let (loss_chart, accuracy) = curves.write(&out, "digits")?;
    println!(
        "wrote {}, {} and {} (resume with --resume {})",
        loss_chart.display(),
        accuracy.display(),
        checkpoint_path.display(),
        checkpoint_path.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("digits: {e}");
            ExitCode::FAILURE
        }
    }
}

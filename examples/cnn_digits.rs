//! Convolutions: a small CNN on the shipped UCI digits, viewed as 1×8×8 images.
//!
//! Conv2d(1→c, 3×3, padding 1) → ReLU → MaxPool2d(2×2) → Conv2d(c→2c, 3×3, padding 1) → ReLU
//! → Flatten → Linear(2c·4·4 → 10). The 1797 images are split into train / validation / test
//! (stratified, seeded); Adam trains on random mini-batches until the epoch budget is spent
//! or early stopping on the validation loss stops it (restoring the best weights); then the
//! test images, never used for training or model selection, give the accuracy, per-class and
//! macro precision and recall and the confusion matrix. Writes learning curves (train vs
//! validation loss and accuracy) and a checkpoint after every epoch; `--resume` continues from
//! one.
//!
//! ```text
//! cargo run --release --example cnn_digits
//! cargo run --release --example cnn_digits -- --epochs 40 --batch-size 32 --lr 0.002 --channels 8 --seed 1
//! cargo run --release --example cnn_digits -- --resume out/cnn_digits/checkpoint.ggck --epochs 60
//! cargo run --release --example cnn_digits -- --mode compiled
//! ```
//!
//! Writes `learning_curves.svg`, `accuracy.svg` and `checkpoint.ggck` to `out/cnn_digits` (or
//! `--out DIR`).

mod common;

use common::{evaluate_classifier, output_dir, progress, AnyResult, Flags, LearningCurves};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::Tensor;
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::loss::{cross_entropy, Reduction};
use graphgrad::nn::metrics::ConfusionMatrix;
use graphgrad::nn::{Conv2dConfig, Flatten, LinearConfig, MaxPool2d, Module, ReLU, Sequential};
use graphgrad::optim::{
    Adam, AdamConfig, Checkpoint, EarlyStopping, MetricMode, Optimizer, StopReason, StoppingCriteria,
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
    seed: u64,
    channels: usize,
    patience: u64,
    compiled: bool,
    resume: Option<String>,
}

impl Settings {
    fn from_flags(flags: &Flags) -> AnyResult<Settings> {
        let fast = common::fast_mode();
        Ok(Settings {
            epochs: flags.get("epochs", if fast { 1 } else { 60 })?,
            batch_size: flags.get("batch-size", 32)?,
            lr: flags.get("lr", 0.002)?,
            seed: flags.get("seed", 0)?,
            channels: flags.get("channels", 16)?,
            patience: flags.get("patience", 10)?,
            compiled: common::compiled_mode(flags)?,
            resume: flags.text("resume").map(str::to_string),
        })
    }
}

/// [1, 8, 8] → conv 3×3 → [c, 8, 8] → max-pool 2×2 → [c, 4, 4] → conv 3×3 → [2c, 4, 4] → 10.
fn build_model(s: &Settings, rng: &mut ChaCha8Rng) -> AnyResult<Sequential> {
    let c = s.channels;
    Ok(Sequential::new()
        .append(Conv2dConfig::new(1, c, (3, 3)).with_padding((1, 1)).init(rng)?)
        .append(ReLU)
        .append(MaxPool2d::new((2, 2)))
        .append(Conv2dConfig::new(c, 2 * c, (3, 3)).with_padding((1, 1)).init(rng)?)
        .append(ReLU)
        .append(Flatten::default())
        .append(LinearConfig::new(2 * c * 4 * 4, 10).init(rng)?))
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &["epochs", "batch-size", "lr", "seed", "channels", "patience", "mode", "resume", "out"],
        &[],
    )?;
    let s = Settings::from_flags(&flags)?;
    let out = output_dir(&flags, "cnn_digits")?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);

    // Data: pixels 0..16 scaled to 0..1; the split is stratified and seeded.
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    // The network sees each sample as a one-channel 8×8 image.
    let digits = digits.with_feature_shape(&[1, 8, 8])?;
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng)?;
    println!(
        "digits: {} train, {} validation, {} test images of 1×8×8 pixels, 10 classes",
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );

    let model = build_model(&s, &mut rng)?;
    let optimizer = RefCell::new(Adam::new(model.named_parameters(), AdamConfig::new(s.lr))?);
    let (mut first_epoch, mut step) = (0, 0u64);
    if let Some(path) = &s.resume {
        let checkpoint = Checkpoint::load(path)?;
        checkpoint.restore_model(&model.named_parameters())?;
        checkpoint.restore_optimizer(&mut *optimizer.borrow_mut())?;
        rng = checkpoint.rng()?;
        (first_epoch, step) = (checkpoint.epoch + 1, checkpoint.step);
        println!("resumed from {path} after epoch {}", checkpoint.epoch + 1);
    }
    let params = model.named_parameters();
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    let c = s.channels;
    println!(
        "model: conv 3×3 1→{c} → ReLU → max-pool 2×2 → conv 3×3 {c}→{} → ReLU → flatten {} → linear 10; \
         {n_params} parameters; Adam lr {}",
        2 * c,
        2 * c * 16,
        s.lr
    );

    // The training step, eager or compiled whole by `--mode`: inputs [images, labels as i64].
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
            .with_optimizer(&*optimizer.borrow())
            .with_progress(epoch, step)
            .with_rng(&rng)
            .with_metadata("example", "cnn_digits")
            .with_metadata("channels", c.to_string())
            .save(&checkpoint_path)?;
        if reason.is_some() {
            break;
        }
    }
    bar.finish();
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
    let report = matrix.report();
    println!(
        "\ntest set ({} images never seen in training): loss {test_loss:.4}, accuracy {:.2}%, \
         macro precision {:.4}, macro recall {:.4}\n",
        labels.len(),
        100.0 * test_acc,
        report.macro_avg.precision,
        report.macro_avg.recall
    );
    println!("{report}");
    println!("confusion matrix (rows: true digit, columns: predicted):\n{matrix}");

    let (loss_chart, accuracy) = curves.write(&out, "cnn_digits")?;
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
            eprintln!("cnn_digits: {e}");
            ExitCode::FAILURE
        }
    }
}

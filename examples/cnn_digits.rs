//! Convolutions: a small CNN on the shipped UCI digits, viewed as 1×8×8 images.
//!
//! Conv2d(1→c, 3×3, padding 1) → ReLU → MaxPool2d(2×2) → Conv2d(c→2c, 3×3, padding 1) → ReLU
//! → Flatten → Linear(2c·4·4 → 10). The 1797 images are split into train / validation / test
//! (stratified, seeded); the `Trainer` runs Adam on random mini-batches until the epoch budget
//! is spent or early stopping on the validation loss stops it (restoring the best weights);
//! then the test images, never used for training or model selection, give the accuracy,
//! per-class and macro precision and recall and the confusion matrix.
//!
//! ```text
//! cargo run --release --example cnn_digits
//! cargo run --release --example cnn_digits -- --epochs 40 --batch-size 32 --lr 0.002 --channels 8 --seed 1
//! cargo run --release --example cnn_digits -- --resume out/cnn_digits/checkpoints/best.ggtr --epochs 80
//! cargo run --release --example cnn_digits -- --mode compiled
//! ```
//!
//! Writes `metrics.jsonl`, TensorBoard events, `learning_curves`, `confusion_matrix` and
//! `test_confusion_matrix` (SVG and PNG) and `checkpoints/` to `out/cnn_digits` (or `--out DIR`).

mod common;

use common::{classifier_trainer, output_dir, report_test, AnyResult, Flags, Schedule};
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::{Conv2dConfig, Flatten, LinearConfig, MaxPool2d, Module, ReLU, Sequential};
use graphgrad::optim::{Adam, AdamConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;

/// [1, 8, 8] → conv 3×3 → [c, 8, 8] → max-pool 2×2 → [c, 4, 4] → conv 3×3 → [2c, 4, 4] → 10.
fn build_model(c: usize, rng: &mut ChaCha8Rng) -> AnyResult<Sequential> {
    Ok(Sequential::new()
        .append(Conv2dConfig::new(1, c, 3).with_padding(1).init(rng)?)
        .append(ReLU)
        .append(MaxPool2d::new(2))
        .append(Conv2dConfig::new(c, 2 * c, 3).with_padding(1).init(rng)?)
        .append(ReLU)
        .append(Flatten::default())
        .append(LinearConfig::new(2 * c * 4 * 4, 10).init(rng)?))
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &["epochs", "batch-size", "lr", "seed", "channels", "patience", "mode", "resume", "out"],
        &[],
    )?;
    let lr: f64 = flags.get("lr", 0.002)?;
    let c: usize = flags.get("channels", 16)?;
    let out = output_dir(&flags, "cnn_digits")?;
    let mut rng = ChaCha8Rng::seed_from_u64(flags.get("seed", 0)?);

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

    let model = build_model(c, &mut rng)?;
    let n_params: usize = model.named_parameters().iter().map(|(_, v)| v.numel()).sum();
    println!(
        "model: conv 3×3 1→{c} → ReLU → max-pool 2×2 → conv 3×3 {c}→{} → ReLU → flatten {} → linear 10; \
         {n_params} parameters; Adam lr {lr}",
        2 * c,
        2 * c * 16,
    );
    let optimizer = Adam::new(model.named_parameters(), AdamConfig::new(lr))?;
    let schedule =
        Schedule { epochs: if common::fast_mode() { 1 } else { 60 }, batch_size: 32, patience: 10 };
    let mut trainer = classifier_trainer(
        "cnn_digits",
        model,
        Box::new(optimizer),
        &flags,
        &out,
        schedule,
        &common::process_group(&flags)?,
    )?
    .rng(rng);
    trainer.fit(&split.train, Some(&split.validation))?;
    report_test(&trainer, "cnn_digits", &split.test, "image", &out, true)?;
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

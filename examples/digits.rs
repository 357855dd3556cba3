//! The main job: a multi-layer perceptron on the UCI handwritten digits shipped with graphgrad,
//! trained by the training library's `Trainer`.
//!
//! Splits the 1797 images into train / validation / test (stratified, seeded), trains on random
//! mini-batches until a stopping criterion says stop (epoch budget, or early stopping on the
//! validation loss, which restores the best weights), then evaluates once on the test images
//! the model never saw: accuracy, per-class and macro precision and recall, confusion matrix.
//! `--mode compiled` runs the very same training step (forward, cross-entropy on the integer
//! labels, backward, optimiser update, dropout included) as one traced, fused, memory-planned
//! program per batch shape. `--distributed` (in a build with the `mpi` feature, under
//! `mpirun`) trains data-parallel: each rank a replica and its share of every global batch of
//! `--batch-size` samples, the gradients averaged over the ranks, the same metrics; rank 0
//! prints and writes.
//!
//! Writes into `out/digits/`: `metrics.jsonl` (every value of every epoch), a TensorBoard event
//! file (`tensorboard --logdir out/digits`), `learning_curves` and `confusion_matrix`
//! (validation) and `test_confusion_matrix` as SVG and PNG, and `checkpoints/` (the last two
//! epochs and the best); `--resume` continues from any of them, its curves included.
//!
//! ```text
//! cargo run --release --example digits
//! cargo run --release --example digits -- --epochs 100 --batch-size 64 --lr 0.001 --optimizer adam
//! cargo run --release --example digits -- --epochs 20
//! cargo run --release --example digits -- --epochs 40 --resume out/digits/checkpoints/epoch-0020.ggtr
//! cargo run --release --example digits -- --mode compiled
//! cargo build --release --features mpi --example digits
//! mpirun --bind-to none -np 2 target/release/examples/digits --distributed
//! mpirun --bind-to none --hostfile hosts -np 4 target/release/examples/digits --distributed
//! ```

mod common;

use common::{classifier_trainer, output_dir, process_group, report_test, AnyResult, Flags, Schedule};
use graphgrad::distributed::{exit_code, ProcessGroup};
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::{DropoutConfig, LinearConfig, Module, ReLU, Sequential};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;
use std::sync::Arc;

fn run(flags: &Flags, group: Arc<dyn ProcessGroup>) -> AnyResult<()> {
    let lead = group.rank() == 0;
    let say = |line: String| {
        if lead {
            println!("{line}");
        }
    };
    let fast = common::fast_mode();
    let hidden: usize = flags.get("hidden", 128)?;
    let optimizer_name = flags.text("optimizer").unwrap_or("adam").to_string();
    // each optimiser's usual rate unless --lr says otherwise
    let lr: f64 = flags.get("lr", if optimizer_name == "sgd" { 0.05 } else { 0.001 })?;
    let dropout: f64 = flags.get("dropout", 0.2)?;
    let out = if lead { output_dir(flags, "digits")? } else { std::env::temp_dir() };
    let mut rng = ChaCha8Rng::seed_from_u64(flags.get("seed", 0)?);

    // Data: pixels 0..16 scaled to 0..1; the split is stratified and seeded.
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng)?;
    say(format!(
        "digits: {} train, {} validation, {} test images of 8×8 pixels, 10 classes",
        split.train.len(),
        split.validation.len(),
        split.test.len()
    ));
    // 64 → hidden → hidden/2 → 10 with ReLU and dropout, initialised at random.
    let model = Sequential::new()
        .append(LinearConfig::new(64, hidden).init(&mut rng)?)
        .append(ReLU)
        .append(DropoutConfig::new(dropout).init(&mut rng)?)
        .append(LinearConfig::new(hidden, hidden / 2).init(&mut rng)?)
        .append(ReLU)
        .append(LinearConfig::new(hidden / 2, 10).init(&mut rng)?);
    let n_params: usize = model.named_parameters().iter().map(|(_, v)| v.numel()).sum();
    say(format!(
        "model: 64 → {hidden} → {} → 10 MLP, {n_params} parameters, {optimizer_name} lr {lr}, {}",
        hidden / 2,
        match group.size() {
            1 => "one process".to_string(),
            n => format!("data-parallel over {n} ranks ({})", group.description()),
        }
    ));
    let optimizer: Box<dyn Optimizer> = match optimizer_name.as_str() {
        "adam" => Box::new(Adam::new(model.named_parameters(), AdamConfig::new(lr))?),
        "sgd" => Box::new(Sgd::new(model.named_parameters(), SgdConfig::new(lr).momentum(0.9))?),
        other => return Err(format!("--optimizer {other:?}: choose adam or sgd").into()),
    };
    let schedule = Schedule { epochs: if fast { 2 } else { 100 }, batch_size: 32, patience: 10 };
    let mut trainer = classifier_trainer("digits", model, optimizer, flags, &out, schedule, &group)?
        .accumulate_gradients(flags.get("accumulate", 1)?)
        .rng(rng);
    trainer.fit(&split.train, Some(&split.validation))?;
    report_test(&trainer, "digits", &split.test, "image", &out, lead)?;
    Ok(())
}

/// The flags `run` reads.
const FLAGS: [&str; 12] = [
    "epochs",
    "batch-size",
    "accumulate",
    "lr",
    "optimizer",
    "seed",
    "hidden",
    "patience",
    "dropout",
    "mode",
    "resume",
    "out",
];

fn main() -> ExitCode {
    let setup = Flags::parse(&FLAGS, &["distributed"]).and_then(|flags| Ok((process_group(&flags)?, flags)));
    let (group, flags) = match setup {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("digits: {e}");
            return ExitCode::FAILURE;
        }
    };
    // one rank's error ends the whole job, naming the rank
    exit_code(group.as_ref(), "digits", run(&flags, group.clone()))
}

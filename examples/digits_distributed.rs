//! The digits main job, data-parallel: every rank trains a replica of the MLP on its shard of
//! each epoch, and the gradients are averaged over the ranks (MPI) during backward.
//!
//! The data split, model, optimiser, early stopping and test metrics are those of the
//! `digits` example; `--batch-size` is the global batch, shared equally by the ranks. Rank 0's
//! parameters are broadcast at the start, so every replica starts and stays equal; every rank
//! evaluates the same (identical) model, so every rank takes the same early-stopping decision;
//! rank 0 alone prints, plots and writes the checkpoint, and `--resume` starts every rank from
//! rank 0's file. Each rank's dropout masks come from `rank_seed(seed, rank, epoch)` and the
//! shards from the seed and the epoch, so a resumed run continues bit-identically.
//!
//! ```text
//! cargo build --release --features mpi --example digits_distributed
//! mpirun --bind-to none -np 2 target/release/examples/digits_distributed --distributed
//! mpirun --bind-to none --hostfile hosts -np 4 target/release/examples/digits_distributed --distributed
//! cargo run --release --example digits_distributed            # one process, no MPI needed
//! ```

mod common;

use common::{evaluate_classifier, output_dir, progress, AnyResult, Flags, LearningCurves};
use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{grad, Flag, Generator, Tensor};
use graphgrad::distributed::{
    exit_code, load_checkpoint, rank_seed, save_checkpoint, DdpConfig, DistributedDataParallel,
    DistributedSampler, ProcessGroup, ReduceOp, SingleProcess,
};
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::loss::{cross_entropy, Reduction};
use graphgrad::nn::metrics::ConfusionMatrix;
use graphgrad::nn::{Linear, LinearConfig, Module, Visitor};
use graphgrad::optim::{
    Adam, AdamConfig, Checkpoint, EarlyStopping, MetricMode, Optimizer, Sgd, SgdConfig, StopReason,
    StoppingCriteria,
};
use graphgrad::train::progress::{LoopProgress, ProgressMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// 64 → hidden → hidden/2 → 10 with ReLU and dropout, named like `digits`'s `Sequential`
/// (`0.*`, `3.*`, `5.*`), so checkpoints move between the two examples. The dropout stream is
/// reseeded per rank and epoch.
struct Mlp {
    layers: [Linear; 3],
    dropout: f64,
    generator: Generator,
    training: Flag,
}

impl Mlp {
    fn new(hidden: usize, dropout: f64, rng: &mut ChaCha8Rng) -> AnyResult<Mlp> {
        Ok(Mlp {
            layers: [
                LinearConfig::new(64, hidden).init(rng)?,
                LinearConfig::new(hidden, hidden / 2).init(rng)?,
                LinearConfig::new(hidden / 2, 10).init(rng)?,
            ],
            dropout,
            generator: Generator::new(0),
            training: Flag::new(true),
        })
    }

    fn reseed_dropout(&self, seed: u64) {
        self.generator.set_position([seed as i64, 0]);
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> graphgrad::autodiff::Result<Tensor> {
        let h = self.layers[0].forward(x)?.relu();
        let h = h.dropout(self.dropout, self.training.get(), &self.generator)?;
        let h = self.layers[1].forward(&h)?.relu();
        self.layers[2].forward(&h)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for (name, layer) in ["0", "3", "5"].iter().zip(&self.layers) {
            v.child(name, layer);
        }
        v.mode(&self.training);
    }
}

/// The compiled step: inputs `[images, one-hot labels × loss weight]`, outputs the loss and
/// every parameter's gradient (in `named_parameters` order).
fn training_step(model: &Mlp, io: &[Tensor]) -> graphgrad::autodiff::Result<Vec<Tensor>> {
    let log_probs = model.forward(&io[0])?.log_softmax(-1)?;
    let loss = log_probs.mul(&io[1])?.sum(&[-1], false)?.mean_all()?.neg();
    let params: Vec<Tensor> = model.named_parameters().iter().map(|(_, v)| v.tensor().clone()).collect();
    let mut outputs = vec![loss.clone()];
    outputs.extend(grad(std::slice::from_ref(&loss), &params, false)?);
    Ok(outputs)
}

fn one_hot(labels: &[usize], weight: f64) -> AnyResult<Tensor> {
    let mut data = vec![0.0f32; labels.len() * 10];
    for (row, &label) in labels.iter().enumerate() {
        data[row * 10 + label] = weight as f32;
    }
    Ok(Tensor::from_vec(data, &[labels.len(), 10])?)
}

const FLAGS: [&str; 12] = [
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
    "timeout",
];

/// This process's group: the MPI job with `--distributed`, else one process.
fn process_group(flags: &Flags) -> AnyResult<Arc<dyn ProcessGroup>> {
    if !flags.switch("distributed") {
        return Ok(Arc::new(SingleProcess));
    }
    #[cfg(feature = "mpi")]
    {
        let timeout = std::time::Duration::from_secs_f64(flags.get("timeout", 600.0)?);
        let options = graphgrad::distributed::MpiOptions::default().timeout(timeout);
        Ok(graphgrad::distributed::MpiGroup::init(options)?)
    }
    #[cfg(not(feature = "mpi"))]
    Err("--distributed needs MPI: cargo build --release --features mpi --example digits_distributed".into())
}

fn run(flags: &Flags, group: Arc<dyn ProcessGroup>) -> AnyResult<()> {
    let (rank, ranks) = (group.rank(), group.size());
    let lead = rank == 0;
    let say = |line: String| {
        if lead {
            println!("{line}");
        }
    };
    let fast = common::fast_mode();
    let epochs: u64 = flags.get("epochs", if fast { 2 } else { 100 })?;
    let global_batch: usize = flags.get("batch-size", 32)?;
    let (lr, seed): (f64, u64) = (flags.get("lr", 0.001)?, flags.get("seed", 0)?);
    let (hidden, patience): (usize, u64) = (flags.get("hidden", 128)?, flags.get("patience", 10)?);
    let optimizer_name = flags.get("optimizer", "adam".to_string())?;
    let compiled = match flags.text("mode").unwrap_or("eager") {
        "eager" => false,
        "compiled" => true,
        other => return Err(format!("--mode {other:?}: choose eager or compiled").into()),
    };
    // A traced step would freeze one dropout mask into the program.
    let dropout = if compiled { 0.0 } else { flags.get("dropout", 0.2)? };
    if global_batch == 0 || !global_batch.is_multiple_of(ranks) {
        return Err(
            format!("--batch-size {global_batch} must be a positive multiple of the {ranks} ranks").into()
        );
    }
    let out = output_dir(flags, "digits_distributed")?;
    say(group.description());

    // Every rank draws the same split from the same seed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng)?;
    let sampler =
        DistributedSampler::for_group(split.train.len(), global_batch / ranks, group.as_ref())?.seed(seed);
    say(format!(
        "digits: {} train, {} validation, {} test images; {ranks} rank(s) × {} images per step, {} steps per epoch",
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        global_batch / ranks,
        sampler.steps_per_epoch()
    ));

    let model = Mlp::new(hidden, dropout, &mut rng)?;
    let ddp = DistributedDataParallel::new(model, group.clone(), DdpConfig::default())?;
    let params = ddp.named_parameters();
    let mut optimizer: Box<dyn Optimizer> = match optimizer_name.as_str() {
        "adam" => Box::new(Adam::new(params.clone(), AdamConfig::new(lr))?),
        "sgd" => Box::new(Sgd::new(params.clone(), SgdConfig::new(lr).momentum(0.9))?),
        other => return Err(format!("--optimizer {other:?}: choose adam or sgd").into()),
    };
    let (mut first_epoch, mut step) = (0, 0u64);
    if let Some(path) = flags.text("resume") {
        let checkpoint = load_checkpoint(group.as_ref(), path)?;
        checkpoint.restore_model(&params)?;
        checkpoint.restore_optimizer(optimizer.as_mut())?;
        (first_epoch, step) = (checkpoint.epoch + 1, checkpoint.step);
        say(format!("resumed every rank from rank 0's {path} after epoch {}", checkpoint.epoch + 1));
    }
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    say(format!(
        "model: 64 → {hidden} → {} → 10 MLP, {n_params} parameters in {} gradient bucket(s), {optimizer_name} lr {lr}, {} mode",
        hidden / 2,
        ddp.buckets().len(),
        if compiled { "compiled" } else { "eager" }
    ));
    let mut program = compiled.then(|| compile(|io: &[Tensor]| training_step(ddp.module(), io)));

    let early = EarlyStopping::new(MetricMode::Min, patience).min_delta(1e-4).restore_best(true);
    let mut stopping = StoppingCriteria::new().max_epochs(epochs).early_stopping(early);
    let mut curves = LearningCurves::default();
    let bar = if lead {
        progress(epochs.saturating_sub(first_epoch), "training")
    } else {
        LoopProgress::with_mode(0, "training", ProgressMode::Silent)
    };
    let checkpoint_path = out.join("checkpoint.ggck");
    let (mut reason, started, mut steps_run) = (None, Instant::now(), 0u64);
    for epoch in first_epoch..epochs.max(first_epoch + 1) {
        ddp.module().reseed_dropout(rank_seed(seed, rank, epoch));
        let mut sums = [0.0f64, 0.0]; // Σ loss · samples and samples, on this rank
        for batch in sampler.batches(epoch)? {
            let images = split.train.batch(&batch.indices)?;
            let labels = images.labels().ok_or("digits has class labels")?;
            optimizer.zero_grad();
            let loss = match &mut program {
                Some(program) => {
                    let outputs =
                        program.call(&[images.inputs.clone(), one_hot(labels, batch.loss_weight())?])?;
                    ddp.average_gradients(&outputs[1..])?;
                    outputs[0].item()? / batch.loss_weight()
                }
                None => {
                    let loss = cross_entropy(&ddp.forward(&images.inputs)?, labels, Reduction::Mean)?;
                    loss.mul_scalar(batch.loss_weight()).backward()?; // averaged over the ranks
                    loss.item()?
                }
            };
            graphgrad::optim::step_if_finite(optimizer.as_mut(), loss, epoch, step)?;
            sums[0] += loss * labels.len() as f64;
            sums[1] += labels.len() as f64;
            step += 1;
            steps_run += 1;
        }
        group.all_reduce(graphgrad::distributed::DataMut::F64(&mut sums), ReduceOp::Sum)?;
        // Every replica is the same model, so every rank computes the same metrics.
        let (train_loss, train_acc, _) = evaluate_classifier(&ddp, &split.train)?;
        let (val_loss, val_acc, _) = evaluate_classifier(&ddp, &split.validation)?;
        curves.push(epoch, (train_loss, train_acc), (val_loss, val_acc));
        bar.set_message(format!(
            "epoch {:>3}: batch loss {:.4}, train loss {train_loss:.4}, validation loss {val_loss:.4}, accuracy {:.1}%",
            epoch + 1,
            sums[0] / sums[1].max(1.0),
            100.0 * val_acc
        ));
        bar.inc(1);
        reason = stopping.end_epoch(epoch, train_loss, Some(val_loss), &params)?;
        save_checkpoint(group.as_ref(), &checkpoint_path, || {
            Checkpoint::new(&params)
                .with_optimizer(optimizer.as_ref())
                .with_progress(epoch, step)
                .with_metadata("example", "digits_distributed")
                .with_metadata("ranks", ranks.to_string())
                .with_metadata("seed", seed.to_string())
        })?;
        if reason.is_some() {
            break;
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let timeline = ddp.timeline();
    let last_back = 1e3 * timeline.buckets.iter().map(|b| b.2).fold(0.0, f64::max);
    say(format!(
        "{steps_run} steps in {seconds:.2} s (with evaluation and checkpoints: {:.0} steps/s on each of {ranks} rank(s))",
        steps_run as f64 / seconds
    ));
    say(match timeline.backward_end {
        Some(end) => format!(
            "last step: {} gradient bucket(s), the last averaged {last_back:.3} ms after the first gradient was \
             final; backward ended at {:.3} ms",
            timeline.buckets.len(),
            1e3 * end
        ),
        None => format!("last step: {} gradient bucket(s) averaged in {last_back:.3} ms", timeline.buckets.len()),
    });
    match reason {
        Some(StopReason::EarlyStopping { best, best_epoch }) => say(format!(
            "early stopping: validation loss stopped improving; restored the weights of epoch {} (loss {best:.4})",
            best_epoch + 1
        )),
        Some(other) => say(format!("stopped: {other:?}")),
        None => say("stopped: epoch budget spent".into()),
    }
    if !lead {
        return Ok(());
    }
    let (test_loss, test_acc, predicted) = evaluate_classifier(&ddp, &split.test)?;
    let labels = split.test.labels().ok_or("digits has class labels")?;
    let matrix = ConfusionMatrix::from_predictions(&predicted, labels, 10)?;
    println!("\ntest set: loss {test_loss:.4}, accuracy {:.2}%\n", 100.0 * test_acc);
    println!("{}", matrix.report());
    println!("confusion matrix (rows: true digit, columns: predicted):\n{matrix}");
    let (loss_chart, accuracy) = curves.write(&out, "digits_distributed")?;
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
    let flags = match Flags::parse(&FLAGS, &["distributed"]) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("digits_distributed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let group = match process_group(&flags) {
        Ok(group) => group,
        Err(e) => {
            eprintln!("digits_distributed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(&flags, group.clone());
    exit_code(group.as_ref(), "digits_distributed", result)
}

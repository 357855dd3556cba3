//! Save, load, resume: a resumed run is bit-identical to one that was never interrupted.
//!
//! Trains a small MLP (64 → hidden → 10, ReLU, dropout) on the shipped digits with Adam and a
//! cosine learning-rate schedule, on random mini-batches. Every random draw (the mini-batches
//! and the dropout masks) comes from one seeded `ChaCha8Rng`, which the checkpoint saves with
//! the model, the optimiser's moments, the schedule, the step counter and metadata:
//!
//! 1. run A trains N + M steps without stopping;
//! 2. run B trains N steps from the same seed, saves a `graphgrad::optim::Checkpoint`, then a
//!    freshly built model (other random weights) and optimiser load it and train M more;
//! 3. the parameters of A and B are compared bit for bit (max |difference| must be 0).
//!
//! Then it exports the weights to safetensors (`save_safetensors`), imports them into another
//! fresh model (`load_safetensors_into`) and compares; and it damages copies of the checkpoint
//! (a flipped payload byte, a flipped header byte, a truncated file) and shows each one being
//! rejected with its error message, as is a checkpoint loaded into a model of another shape.
//!
//! Dropout is applied with `Tensor::dropout` and the training RNG rather than an `nn::Dropout`
//! layer, because that layer keeps its own random stream, which a checkpoint does not hold.
//!
//! ```text
//! cargo run --release --example checkpoint
//! cargo run --release --example checkpoint -- --first 200 --more 200 --batch-size 32 --lr 0.003 --seed 0
//! ```
//!
//! Writes `checkpoint.ggck`, `model.safetensors`, the damaged copies and `loss.svg` (the loss
//! of both runs) to `out/checkpoint` (or `--out DIR`).

mod common;

use common::{output_dir, palette, progress, styled_chart, AnyResult, Flags, Line, Series, Style};
use graphgrad::autodiff::{no_grad, Generator, Tensor, Var};
use graphgrad::nn::data::{load_digits, Dataset};
use graphgrad::nn::loss::{cross_entropy, Reduction};
use graphgrad::nn::metrics::accuracy_from_logits;
use graphgrad::nn::{Linear, LinearConfig, Module, Visitor};
use graphgrad::optim::{
    load_safetensors_into, save_safetensors, Adam, AdamConfig, Checkpoint, CosineAnnealingLr, LrScheduler,
    Optimizer,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::process::ExitCode;

const DROPOUT: f64 = 0.2;

struct Settings {
    first: u64,
    more: u64,
    batch_size: usize,
    lr: f64,
    hidden: usize,
    seed: u64,
}

/// 64 → hidden → 10 with ReLU; dropout (training only) draws from the caller's RNG.
struct Mlp {
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    fn new(hidden: usize, rng: &mut ChaCha8Rng) -> AnyResult<Mlp> {
        Ok(Mlp {
            hidden: LinearConfig::new(64, hidden).init(rng)?,
            output: LinearConfig::new(hidden, 10).init(rng)?,
        })
    }

    fn forward_train(&self, x: &Tensor, generator: &Generator) -> AnyResult<Tensor> {
        let h = self.hidden.forward(x)?.relu().dropout(DROPOUT, true, generator)?;
        Ok(self.output.forward(&h)?)
    }
}

impl Module for Mlp {
    /// Evaluation: no dropout.
    fn forward(&self, x: &Tensor) -> graphgrad::autodiff::Result<Tensor> {
        self.output.forward(&self.hidden.forward(x)?.relu())
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.child("hidden", &self.hidden);
        v.child("output", &self.output);
    }
}

/// Everything that changes while training.
struct Run {
    model: Mlp,
    optimizer: Adam,
    schedule: LrScheduler<CosineAnnealingLr>,
    rng: ChaCha8Rng,
    step: u64,
}

impl Run {
    /// A model, optimiser and schedule initialised from `init_seed`; the training RNG from `seed`.
    fn new(s: &Settings, init_seed: u64) -> AnyResult<Run> {
        let model = Mlp::new(s.hidden, &mut ChaCha8Rng::seed_from_u64(init_seed))?;
        let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(s.lr))?;
        let schedule =
            LrScheduler::new(CosineAnnealingLr::new(s.first + s.more, s.lr * 0.05), &mut optimizer)?;
        Ok(Run { model, optimizer, schedule, rng: ChaCha8Rng::seed_from_u64(s.seed), step: 0 })
    }

    /// `steps` optimiser steps on random mini-batches; returns (step, loss) pairs.
    fn train(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        steps: u64,
        what: &str,
    ) -> AnyResult<Vec<(f64, f64)>> {
        let bar = progress(steps, what);
        let mut losses = Vec::new();
        for _ in 0..steps {
            let batch = data.random_batch(batch_size, &mut self.rng)?;
            let labels = batch.labels().ok_or("digits has class labels")?;
            // each step's dropout stream is seeded from the run's rng, which the checkpoint saves
            let logits = self.model.forward_train(&batch.inputs, &Generator::new(self.rng.gen()))?;
            let loss = cross_entropy(&logits, labels, Reduction::Mean)?;
            self.optimizer.zero_grad();
            loss.backward()?;
            self.optimizer.step()?;
            self.schedule.step(&mut self.optimizer)?;
            self.step += 1;
            losses.push((self.step as f64, loss.item()?));
            bar.set_message(format!("step {}, loss {:.4}", self.step, loss.item()?));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(losses)
    }

    fn checkpoint(&self, s: &Settings) -> Checkpoint {
        Checkpoint::new(&self.model.named_parameters())
            .with_optimizer(&self.optimizer)
            .with_schedule(&self.schedule)
            .with_rng(&self.rng)
            .with_progress(0, self.step)
            .with_metadata("example", "checkpoint")
            .with_metadata("model", format!("64-{}-10 MLP, dropout {DROPOUT}", s.hidden))
            .with_metadata("seed", s.seed.to_string())
    }

    /// Restores everything a checkpoint holds into this run.
    fn restore(&mut self, checkpoint: &Checkpoint) -> AnyResult<()> {
        checkpoint.restore_model(&self.model.named_parameters())?;
        checkpoint.restore_optimizer(&mut self.optimizer)?;
        checkpoint.restore_schedule(&mut self.schedule)?;
        self.rng = checkpoint.rng()?;
        self.step = checkpoint.step;
        Ok(())
    }
}

/// (max |a − b| over all parameters, number of elements whose bits differ, elements).
fn compare(a: &[(String, Var)], b: &[(String, Var)]) -> AnyResult<(f64, usize, usize)> {
    let (mut max_diff, mut differ, mut total) = (0.0f64, 0, 0);
    for ((name_a, va), (name_b, vb)) in a.iter().zip(b) {
        if name_a != name_b || va.shape() != vb.shape() {
            return Err(
                format!("parameters differ: {name_a} {:?} vs {name_b} {:?}", va.shape(), vb.shape()).into()
            );
        }
        for (x, y) in va.to_vec::<f32>()?.iter().zip(vb.to_vec::<f32>()?) {
            max_diff = max_diff.max((x - y).abs() as f64);
            differ += usize::from(x.to_bits() != y.to_bits());
            total += 1;
        }
    }
    Ok((max_diff, differ, total))
}

fn test_accuracy(model: &Mlp, data: &Dataset) -> AnyResult<f64> {
    no_grad(|| {
        let batch = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
        let labels = batch.labels().ok_or("digits has class labels")?;
        Ok(accuracy_from_logits(&model.forward(&batch.inputs)?, labels)?)
    })
}

/// Writes `bytes` to `path`, tries to load it as a checkpoint and returns the error message
/// (an error of the example when the damaged file is accepted).
fn expect_rejected(path: &Path, bytes: &[u8], damage: &str) -> AnyResult<()> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    match Checkpoint::load(path) {
        Ok(_) => Err(format!("a checkpoint with {damage} was accepted").into()),
        Err(e) => {
            println!("  {damage}: rejected\n    {e}");
            Ok(())
        }
    }
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["first", "more", "batch-size", "lr", "hidden", "seed", "out"], &[])?;
    let fast = common::fast_mode();
    let s = Settings {
        first: flags.get("first", if fast { 15 } else { 200 })?,
        more: flags.get("more", if fast { 15 } else { 200 })?,
        batch_size: flags.get("batch-size", 32)?,
        lr: flags.get("lr", 0.003)?,
        hidden: flags.get("hidden", 32)?,
        seed: flags.get("seed", 0)?,
    };
    let out = output_dir(&flags, "checkpoint")?;
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let mut split_rng = ChaCha8Rng::seed_from_u64(s.seed.wrapping_add(1));
    let split =
        digits.split(graphgrad::nn::data::SplitFractions { validation: 0.0, test: 0.2 }, &mut split_rng)?;
    let (n, m) = (s.first, s.more);
    println!(
        "digits: {} training, {} test images; MLP 64 → {} → 10, dropout {DROPOUT}, Adam lr {} with cosine decay, batches of {}",
        split.train.len(),
        split.test.len(),
        s.hidden,
        s.lr,
        s.batch_size
    );

    // A: N + M steps in one go.
    let mut a = Run::new(&s, s.seed)?;
    let loss_a = a.train(&split.train, s.batch_size, n + m, "run A")?;
    println!(
        "run A: {} steps uninterrupted, last loss {:.4}",
        a.step,
        loss_a.last().map_or(f64::NAN, |l| l.1)
    );

    // B: N steps, checkpoint, a fresh process-like restart, M more steps.
    let mut b = Run::new(&s, s.seed)?;
    let loss_b1 = b.train(&split.train, s.batch_size, n, "run B, part 1")?;
    let path = out.join("checkpoint.ggck");
    b.checkpoint(&s).save(&path)?;
    let size = std::fs::metadata(&path)?.len();
    println!("run B: {n} steps, saved {} ({size} bytes)", path.display());
    drop(b);

    let loaded = Checkpoint::load(&path)?;
    println!(
        "  loaded: step {}, {} tensors, optimizer {}, schedule {}, rng {}, metadata {:?}",
        loaded.step,
        loaded.model_state()?.len(),
        if loaded.optimizer.is_some() { "yes" } else { "no" },
        loaded.schedule.as_ref().map_or("none".to_string(), |sch| sch.kind.clone()),
        if loaded.rng.is_some() { "yes" } else { "no" },
        loaded.metadata
    );
    // Other initial weights, to show the checkpoint (not the seed) sets them.
    let mut resumed = Run::new(&s, s.seed.wrapping_add(1000))?;
    let (before, _, _) = compare(&resumed.model.named_parameters(), &a.model.named_parameters())?;
    resumed.restore(&loaded)?;
    let loss_b2 = resumed.train(&split.train, s.batch_size, m, "run B, part 2")?;
    println!(
        "  a freshly built model (max |Δ| to A {before:.3} before loading) resumed at step {n} and trained {m} more"
    );

    let (max_diff, differ, total) = compare(&a.model.named_parameters(), &resumed.model.named_parameters())?;
    let same_lr = a.optimizer.lrs() == resumed.optimizer.lrs();
    println!(
        "A ({} steps) vs B ({n} + {m} steps): max |difference| = {max_diff:e} over {total} parameters, \
         {differ} differ in any bit; learning rates equal: {same_lr}",
        n + m
    );
    if differ != 0 || !same_lr {
        return Err("the resumed run is not bit-identical to the uninterrupted one".into());
    }
    println!(
        "test accuracy: A {:.2}%, B {:.2}%",
        100.0 * test_accuracy(&a.model, &split.test)?,
        100.0 * test_accuracy(&resumed.model, &split.test)?
    );

    // safetensors: export, import into another fresh model.
    let st_path = out.join("model.safetensors");
    save_safetensors(&resumed.model.state_dict(), &st_path)?;
    let imported = Mlp::new(s.hidden, &mut ChaCha8Rng::seed_from_u64(s.seed.wrapping_add(2000)))?;
    load_safetensors_into(&imported.named_parameters(), &st_path)?;
    let (st_diff, st_differ, _) = compare(&imported.named_parameters(), &resumed.model.named_parameters())?;
    println!(
        "\nsafetensors: wrote {} ({} bytes, tensors {:?}); imported into a fresh model: max |difference| = {st_diff:e}, \
         test accuracy {:.2}%",
        st_path.display(),
        std::fs::metadata(&st_path)?.len(),
        resumed.model.named_parameters().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        100.0 * test_accuracy(&imported, &split.test)?
    );
    if st_differ != 0 {
        return Err("the safetensors round trip changed the weights".into());
    }

    // Damaged files are rejected, with a message that says what is wrong.
    println!("\ndamaged checkpoints:");
    let bytes = std::fs::read(&path)?;
    let mut flipped = bytes.clone();
    let middle = graphgrad::optim::HEADER_LEN + (bytes.len() - graphgrad::optim::HEADER_LEN) / 2;
    flipped[middle] ^= 0x01;
    expect_rejected(
        &out.join("flipped_payload.ggck"),
        &flipped,
        &format!("one bit flipped in byte {middle} (payload)"),
    )?;
    let mut header = bytes.clone();
    header[17] ^= 0x40;
    expect_rejected(
        &out.join("flipped_header.ggck"),
        &header,
        "one bit flipped in byte 17 (the length field)",
    )?;
    let cut = bytes.len() * 3 / 4;
    expect_rejected(
        &out.join("truncated.ggck"),
        &bytes[..cut],
        &format!("cut to {cut} of {} bytes", bytes.len()),
    )?;
    // A sound file into the wrong model: nothing is written, the error lists the mismatches.
    let wider = Mlp::new(s.hidden * 2, &mut ChaCha8Rng::seed_from_u64(0))?;
    match loaded.restore_model(&wider.named_parameters()) {
        Ok(()) => return Err("a checkpoint loaded into a model of another shape".into()),
        Err(e) => println!("  restored into a 64 → {} → 10 model: rejected\n    {e}", s.hidden * 2),
    }

    let curve = out.join("loss.svg");
    let mut resumed_curve = loss_b1;
    resumed_curve.extend(loss_b2);
    // B is drawn dashed over a wider A, so both stay visible where they coincide.
    styled_chart(
        &curve,
        "training loss: uninterrupted (A) and saved + resumed (B) runs coincide",
        "step",
        "cross-entropy (mini-batch)",
        &[
            Line {
                series: Series { label: "A: uninterrupted", points: loss_a },
                style: Style { color: palette(0), width: 4, dashed: false },
            },
            Line {
                series: Series {
                    label: "B: saved at the midpoint and resumed (dashed)",
                    points: resumed_curve,
                },
                style: Style { color: palette(1), width: 1, dashed: true },
            },
        ],
        &[],
    )?;
    println!(
        "\nwrote {}, {}, {} and the damaged copies in {}",
        path.display(),
        st_path.display(),
        curve.display(),
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checkpoint: {e}");
            ExitCode::FAILURE
        }
    }
}

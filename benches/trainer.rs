//! W2 through the training library: the same network, batch and optimiser as W2-mlp-train,
//! trained for whole epochs of random mini-batches by the plain loop a user writes and by
//! `Trainer::fit` (no validation, no logs, silent, no epoch-end evaluation of the training
//! set), reported as seconds per step. The two should be equal within noise: the trainer
//! adds a loss check, bookkeeping and `grad` in place of `backward` per step. The trainer's
//! compiled mode (`graphgrad-trainer-compiled`) runs the same epochs as one program per step.

use crate::{report, Timing};
use graphgrad::nn::data::Dataset;
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{Module, Reduction, Sequential};
use graphgrad::optim::{Optimizer, Sgd, SgdConfig};
use graphgrad::train::{CrossEntropy, Execution, ProgressMode, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const BATCH: usize = 128;
const BATCHES: usize = 20;
const EPOCHS: u64 = 5;

fn model() -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    crate::training::w2_network(&mut rng)
}

fn data() -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    let n = BATCH * BATCHES;
    let features = (0..n * 784).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let labels = (0..n).map(|_| rng.gen_range(0..10)).collect();
    Dataset::classification(features, &[784], labels).expect("data")
}

/// Seconds per step of `EPOCHS` epochs of the plain loop.
fn plain(data: &Dataset) -> f64 {
    let model = model();
    let mut opt = Sgd::new(model.named_parameters(), SgdConfig::new(0.01).momentum(0.9)).expect("config");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let start = Instant::now();
    for _ in 0..EPOCHS {
        for batch in data.shuffled_batches(BATCH, false, &mut rng).expect("batches") {
            opt.zero_grad();
            let logits = model.forward(&batch.inputs).expect("shapes");
            let loss =
                cross_entropy(&logits, batch.labels().expect("labels"), Reduction::Mean).expect("loss");
            loss.backward().expect("backward");
            opt.step().expect("step");
        }
    }
    start.elapsed().as_secs_f64() / (EPOCHS as usize * BATCHES) as f64
}

/// Seconds per step of `EPOCHS` epochs of `Trainer::fit`.
fn trainer(data: &Dataset, execution: Execution) -> f64 {
    let model = model();
    let opt = Sgd::new(model.named_parameters(), SgdConfig::new(0.01).momentum(0.9)).expect("config");
    let mut t = Trainer::new(model, opt, CrossEntropy)
        .epochs(EPOCHS)
        .batch_size(BATCH)
        .evaluate_training(false)
        .execution(execution)
        .progress(ProgressMode::Silent);
    let start = Instant::now();
    t.fit(data, None).expect("fit");
    start.elapsed().as_secs_f64() / (EPOCHS as usize * BATCHES) as f64
}

pub(crate) fn run(selected: &dyn Fn(&str) -> bool) {
    if !selected("W2-trainer") {
        return;
    }
    let data = data();
    plain(&data); // warm-up: buffer pool, thread pool
                  // Alternate the three, five times each, so drift on a shared machine hits all alike.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(plain(&data));
        b.push(trainer(&data, Execution::Eager));
        c.push(trainer(&data, Execution::Compiled));
    }
    for (framework, mut samples) in
        [("graphgrad-plain-loop", a), ("graphgrad-trainer", b), ("graphgrad-trainer-compiled", c)]
    {
        samples.sort_by(f64::total_cmp);
        let t = Timing { median_s: samples[samples.len() / 2], min_s: samples[0] };
        report("W2-trainer", framework, &format!("b{BATCH}"), &t, 1.0 / t.median_s, "steps/s");
    }
}

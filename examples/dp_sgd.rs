//! Differentially private SGD on the digits: per-sample gradients, clipped, noised.
//!
//! DP-SGD (Abadi et al., 2016) bounds each sample's influence on a step: every sample's
//! gradient is clipped to norm at most C, the clipped gradients are summed, Gaussian noise of
//! standard deviation σ·C is added, and the mean is the update. That needs one gradient per
//! sample, which `func::vmap(func::grad_argnums(loss, parameters))` gives in one batched pass: the loss is written
//! for one sample, as a function of the model's parameters through `functional_call`.
//!
//! The example checks the first batch's per-sample gradients against a plain loop of
//! single-sample backward passes and the clipped norms against C, then trains a 64→32→10 MLP
//! and reports its test accuracy (well above chance despite the noise).
//!
//! ```text
//! cargo run --release --example dp_sgd
//! cargo run --release --example dp_sgd -- --steps 800 --clip 1.0 --noise 1.0 --batch 64
//! ```
//!
//! Writes `dp_sgd.txt` (the checks and the accuracy) to `out/dp_sgd` (or `--out DIR`).

mod common;

use common::{fast_mode, output_dir, AnyResult, Flags};
use graphgrad::autodiff::{func, DType, Result, Tensor, Var};
use graphgrad::nn::data::{load_digits, SplitFractions};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{functional_call, LinearConfig, Module, ReLU, Reduction, Sequential};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::time::Instant;

/// Largest difference between two tensors' values.
fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn main() -> AnyResult<()> {
    let flags = Flags::parse(&["seed", "steps", "batch", "clip", "noise", "lr", "out"], &[])?;
    let seed: u64 = flags.get("seed", 0)?;
    let steps: usize = flags.get("steps", if fast_mode() { 60 } else { 600 })?;
    let batch: usize = flags.get("batch", 64)?;
    let clip: f64 = flags.get("clip", 1.0)?;
    let noise: f64 = flags.get("noise", 1.0)?;
    let lr: f64 = flags.get("lr", 0.5)?;
    let out = output_dir(&flags, "dp_sgd")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let split = digits.stratified_split(SplitFractions { validation: 0.0, test: 0.2 }, &mut rng)?;
    let model = Sequential::new()
        .append(LinearConfig::new(64, 32).init(&mut rng)?)
        .append(ReLU)
        .append(LinearConfig::new(32, 10).init(&mut rng)?);
    let named: Vec<(String, Var)> = model.named_parameters();
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let count = names.len();

    // one sample's loss: inputs [x [64], label [1], parameters...]
    let sample_loss = |v: &[Tensor]| -> Result<Tensor> {
        let given: Vec<(String, Tensor)> = names.iter().cloned().zip(v[2..].iter().cloned()).collect();
        let logits = functional_call(&model, &given, &v[0].unsqueeze(0)?)?;
        cross_entropy(&logits, &v[1], Reduction::Sum)
    };
    let sample_grads = func::grad_argnums(sample_loss, &(2..2 + count).collect::<Vec<_>>());
    let mut in_axes = vec![Some(0), Some(0)];
    in_axes.extend(std::iter::repeat_n(None, count));
    let per_sample = func::vmap(sample_grads, &in_axes, &vec![0; count]);
    let mut report = String::new();

    let start = Instant::now();
    for step in 0..steps {
        let b = split.train.random_batch(batch, &mut rng)?;
        let labels = b.labels().ok_or("digits are labelled")?.to_vec();
        let mut inputs = vec![b.inputs.clone(), Tensor::from_indices(&labels, &[batch, 1])?];
        inputs.extend(named.iter().map(|(_, v)| v.tensor().detach()));
        let grads = per_sample(&inputs)?; // each [batch, ...parameter shape]

        // every sample's gradient norm over all parameters, and its clipping factor
        let mut squares = Tensor::zeros(&[batch], DType::F32)?;
        for g in &grads {
            let axes: Vec<isize> = (1..g.rank() as isize).collect();
            squares = (squares + g.square().sum(&axes, false)?)?;
        }
        let norms = squares.sqrt();
        let factors = (clip / (&norms + 1e-12)).minimum_scalar(1.0);

        if step == 0 {
            // the checks: a loop of single-sample backward passes, and the clipped norms
            let mut worst: f64 = 0.0;
            for (i, &label) in labels.iter().enumerate() {
                model.parameters().iter().for_each(|p| p.zero_grad());
                let logits = model.forward(&b.inputs.narrow(0, i, 1)?)?;
                cross_entropy(&logits, &[label], Reduction::Sum)?.backward()?;
                for (g, p) in grads.iter().zip(model.parameters()) {
                    let mine = g.narrow(0, i, 1)?.squeeze(0)?;
                    worst = worst.max(max_difference(&mine, &p.grad().ok_or("a gradient")?));
                }
            }
            model.parameters().iter().for_each(|p| p.zero_grad());
            let clipped = (&norms * &factors)?.to_f64_vec();
            let largest = clipped.iter().copied().fold(0.0, f64::max);
            let norms = norms.to_f64_vec();
            writeln!(
                report,
                "per-sample gradients of {batch} samples: vmap(grad) vs a loop of backward passes, max difference \
                 {worst:.2e}; norms {:.3}..{:.3}, clipped to at most {largest:.6} (C = {clip})",
                norms.iter().copied().fold(f64::INFINITY, f64::min),
                norms.iter().copied().fold(0.0, f64::max),
            )?;
            if worst > 1e-5 || largest > clip * (1.0 + 1e-5) {
                return Err(format!("the per-sample gradients or their clipping are wrong:\n{report}").into());
            }
        }

        // clipped sum plus Gaussian noise σ·C, averaged; an SGD step
        for (g, (_, var)) in grads.iter().zip(&named) {
            let mut shape = vec![batch];
            shape.extend(std::iter::repeat_n(1, g.rank() - 1));
            let clipped_sum = (g * &factors.reshape(&shape)?)?.sum(&[0], false)?;
            let noisy = (clipped_sum + Tensor::randn(var.shape(), 0.0, noise * clip, DType::F32, &mut rng)?)?;
            var.set(&(var - noisy * (lr / batch as f64))?)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let test = split.test.batch(&(0..split.test.len()).collect::<Vec<_>>())?;
    let predicted = model.forward(&test.inputs)?.argmax(-1)?;
    let truth = test.labels().ok_or("digits are labelled")?;
    let accuracy = predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64;
    writeln!(
        report,
        "{steps} DP-SGD steps (batch {batch}, C {clip}, σ {noise}, lr {lr}) in {seconds:.2} s: test accuracy \
         {:.1}% on {} digits",
        100.0 * accuracy,
        truth.len()
    )?;
    print!("{report}");
    std::fs::write(out.join("dp_sgd.txt"), &report)?;
    let bound = if fast_mode() { 0.3 } else { 0.8 };
    if accuracy < bound {
        return Err(format!("test accuracy {accuracy:.3} is below {bound}").into());
    }
    Ok(())
}

//! Autoencoders on the shipped 8×8 digits: a dense one and a convolutional one (and, with
//! `--variational`, a variational one) learn to squeeze each 64-pixel image through a
//! 16-number code and rebuild it.
//!
//! The images are scaled to 0..1 and split into train / validation / test (seeded). Each model
//! is trained with Adam on the mean squared reconstruction error of random mini-batches; the
//! validation error is tracked per epoch (the loss curves), and the test images, never seen in
//! training, give the final reconstruction error. Writes a grid of test originals above their
//! reconstructions, and the loss curves.
//!
//! - dense: 64 → 32 → 16 → 32 → 64 (ReLU, sigmoid output)
//! - convolutional: 1×8×8 → 16×4×4 → 4×2×2 (stride-2 convolutions) and back with stride-2
//!   transposed convolutions: also a 16-number code
//! - variational (`--variational`): 64 → 64 → (μ, log σ²) of 16 → 64 → 64; trained on the
//!   pixels' binary cross-entropy plus `--beta` × the KL divergence of q(z|x) from N(0, I)
//!   (z = μ + σ·ε, the reparameterisation trick), and compared on the same squared error
//!   (decoding z = μ); also writes images decoded from random codes z ~ N(0, I).
//!
//! ```text
//! cargo run --release --example autoencoder
//! cargo run --release --example autoencoder -- --variational --epochs 80 --lr 0.002 --seed 3
//! ```
//! Flags: `--epochs`, `--batch-size`, `--lr`, `--seed`, `--beta` (VAE), `--variational`,
//! `--out DIR`.

mod common;

use common::{image_grid, line_chart, output_dir, progress, AnyResult, Flags, ImageRow, Series};
use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::data::{load_digits, Dataset, SplitFractions};
use graphgrad::nn::layers::{kl_divergence, OutputActivation, VaeOutput};
use graphgrad::nn::loss::{binary_cross_entropy, mse_loss};
use graphgrad::nn::{AutoencoderConfig, ConvAutoencoderConfig, Module, Reduction, Vae, VaeConfig};
use graphgrad::optim::{Adam, AdamConfig, Optimizer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;

/// How many test images the picture shows.
const SHOWN: usize = 12;

struct Settings {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    beta: f64,
    seed: u64,
    variational: bool,
}

/// Which way a model sees an image.
#[derive(Clone, Copy)]
enum Layout {
    /// `[batch, 64]`
    Flat,
    /// `[batch, 1, 8, 8]`
    Image,
}

/// One of the models: what it is called, how its input is shaped, and how it maps a batch of
/// images to (reconstruction, extra loss term).
struct Model<'a> {
    name: &'a str,
    layout: Layout,
    module: &'a dyn Module,
    /// For the VAE: its μ/log σ² pass, so the KL term can be added.
    vae: Option<&'a Vae>,
}

impl Model<'_> {
    /// The reconstruction of `x` `[batch, 64]` as `[batch, 64]` and the KL term (VAE only).
    fn reconstruct(&self, x: &Tensor) -> AnyResult<(Tensor, Option<Tensor>)> {
        let batch = x.shape()[0];
        if let Some(vae) = self.vae {
            let VaeOutput { reconstruction, mu, logvar, .. } = vae.forward_vae(x)?;
            return Ok((reconstruction, Some(kl_divergence(&mu, &logvar)?)));
        }
        let y = match self.layout {
            Layout::Flat => self.module.forward(x)?,
            Layout::Image => self.module.forward(&x.reshape(&[batch, 1, 8, 8])?)?.reshape(&[batch, 64])?,
        };
        Ok((y, None))
    }

    /// Mean squared error per pixel of the reconstructions of all of `data` (eval mode), and
    /// the reconstructions.
    fn evaluate(&self, data: &Dataset) -> AnyResult<(f64, Vec<f32>)> {
        self.module.set_training(false);
        let result = no_grad(|| -> AnyResult<_> {
            let x = data.batch(&(0..data.len()).collect::<Vec<_>>())?.inputs;
            let (y, _) = self.reconstruct(&x)?;
            Ok((mse_loss(&y, &x, Reduction::Mean)?.item()?, y.to_vec::<f32>()?))
        });
        self.module.set_training(true);
        result
    }
}

/// Trains `model`; returns the (epoch, train MSE) and (epoch, validation MSE) curves.
#[allow(clippy::type_complexity)]
fn train(
    model: &Model,
    s: &Settings,
    train_set: &Dataset,
    validation: &Dataset,
    rng: &mut ChaCha8Rng,
) -> AnyResult<(Vec<(f64, f64)>, Vec<(f64, f64)>)> {
    let params = model.module.named_parameters();
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    println!("\n{}: {n_params} parameters", model.name);
    let mut optimizer = Adam::new(params, AdamConfig::new(s.lr))?;
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    let bar = progress(s.epochs as u64, &format!("{:>13}", model.name));
    for epoch in 0..s.epochs {
        let (mut mse_sum, mut kl_sum, mut seen) = (0.0, 0.0, 0usize);
        for batch in train_set.shuffled_batches(s.batch_size, false, rng)? {
            let x = &batch.inputs;
            let (y, kl) = model.reconstruct(x)?;
            let mse = mse_loss(&y, x, Reduction::Mean)?;
            let loss = match &kl {
                // The VAE's objective per image (the negative evidence lower bound): the
                // pixels' binary cross-entropy (a Bernoulli likelihood) summed over the 64
                // pixels, plus β·KL(q(z|x) ‖ N(0, I)).
                Some(kl) => {
                    (binary_cross_entropy(&y, x, None, Reduction::Sum)? / batch.len() as f64 + kl * s.beta)?
                }
                None => mse.clone(),
            };
            optimizer.zero_grad();
            loss.backward()?;
            optimizer.step()?;
            mse_sum += mse.item()? * batch.len() as f64;
            if let Some(kl) = kl {
                kl_sum += kl.item()? * batch.len() as f64;
            }
            seen += batch.len();
        }
        let train_mse = mse_sum / seen.max(1) as f64;
        let (val_mse, _) = model.evaluate(validation)?;
        train_curve.push((epoch as f64 + 1.0, train_mse));
        val_curve.push((epoch as f64 + 1.0, val_mse));
        let kl_note = if model.vae.is_some() {
            format!(", KL {:.2}", kl_sum / seen.max(1) as f64)
        } else {
            String::new()
        };
        bar.set_message(format!(
            "epoch {:>3}: train MSE {train_mse:.4}{kl_note}, validation MSE {val_mse:.4}",
            epoch + 1
        ));
        bar.inc(1);
    }
    bar.finish();
    Ok((train_curve, val_curve))
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["epochs", "batch-size", "lr", "seed", "beta", "out"], &["variational"])?;
    let fast = common::fast_mode();
    let s = Settings {
        epochs: flags.get("epochs", if fast { 1 } else { 60 })?,
        batch_size: flags.get("batch-size", 32)?,
        lr: flags.get("lr", 0.003)?,
        beta: flags.get("beta", 1.0)?,
        seed: flags.get("seed", 0)?,
        variational: flags.switch("variational"),
    };
    let out = output_dir(&flags, "autoencoder")?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);

    // Pixels 0..16 scaled to 0..1: the targets of a sigmoid output.
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0);
    let split = digits.split(SplitFractions { validation: 0.1, test: 0.2 }, &mut rng)?;
    let (train_set, validation, test) = if fast {
        let first = |d: &Dataset, n: usize| d.subset(&(0..n.min(d.len())).collect::<Vec<_>>());
        (first(&split.train, 256)?, first(&split.validation, 64)?, first(&split.test, 64)?)
    } else {
        (split.train, split.validation, split.test)
    };
    println!(
        "digits: {} train, {} validation, {} test images of 8×8 pixels in 0..1",
        train_set.len(),
        validation.len(),
        test.len()
    );

    let dense = AutoencoderConfig::new(64, &[32], 16)
        .with_output_activation(OutputActivation::Sigmoid)
        .init(&mut rng)?;
    let conv = ConvAutoencoderConfig::new(1, &[16, 4])
        .with_output_activation(OutputActivation::Sigmoid)
        .init(&mut rng)?;
    let vae =
        VaeConfig::new(64, &[64], 16).with_output_activation(OutputActivation::Sigmoid).init(&mut rng)?;
    let code_check =
        no_grad(|| conv.encode(&Tensor::zeros(&[1, 1, 8, 8], graphgrad::autodiff::DType::F32)?))?;
    println!(
        "codes: dense 16 numbers, convolutional {:?} = {} numbers{}",
        &code_check.shape()[1..],
        code_check.numel(),
        if s.variational { ", variational 16 (μ) + 16 (log σ²)" } else { "" }
    );
    let mut models = vec![
        Model { name: "dense", layout: Layout::Flat, module: &dense, vae: None },
        Model { name: "convolutional", layout: Layout::Image, module: &conv, vae: None },
    ];
    if s.variational {
        models.push(Model { name: "variational", layout: Layout::Flat, module: &vae, vae: Some(&vae) });
    }

    let shown: Vec<usize> = (0..SHOWN.min(test.len())).collect();
    let pixels = |flat: &[f32], i: usize| flat[i * 64..(i + 1) * 64].to_vec();
    let originals: Vec<Vec<f32>> = shown.iter().map(|&i| pixels(test.features(), i)).collect();
    let mut grid_rows: Vec<(String, Vec<Vec<f32>>)> = vec![("original".to_string(), originals)];
    let mut curves = Vec::new();
    let mut results = Vec::new();
    for model in &models {
        let (train_curve, val_curve) = train(model, &s, &train_set, &validation, &mut rng)?;
        let (test_mse, reconstructions) = model.evaluate(&test)?;
        results.push((model.name, test_mse));
        grid_rows
            .push((model.name.to_string(), shown.iter().map(|&i| pixels(&reconstructions, i)).collect()));
        curves.push((format!("{} train", model.name), train_curve));
        curves.push((format!("{} validation", model.name), val_curve));
    }

    // A baseline to read the errors against: predicting every pixel's training mean.
    let mean_image: Vec<f64> = (0..64)
        .map(|p| {
            train_set.features().chunks(64).map(|img| f64::from(img[p])).sum::<f64>() / train_set.len() as f64
        })
        .collect();
    let baseline = test
        .features()
        .chunks(64)
        .flat_map(|img| img.iter().zip(&mean_image).map(|(&v, m)| (f64::from(v) - m).powi(2)))
        .sum::<f64>()
        / test.features().len() as f64;
    println!("\ntest reconstruction error (mean squared error per pixel, pixels in 0..1):");
    println!("  {:<16} {baseline:.4}", "mean image");
    for (name, mse) in &results {
        println!(
            "  {name:<16} {mse:.4}  (RMSE {:.3}, {:.1}% of the mean-image error)",
            mse.sqrt(),
            100.0 * mse / baseline
        );
    }

    let grid = out.join("reconstructions.svg");
    let rows: Vec<ImageRow> =
        grid_rows.iter().map(|(label, images)| ImageRow { label, images: images.clone() }).collect();
    image_grid(&grid, "test images (top) and their reconstructions", 8, 8, &rows, &[])?;
    let loss_chart = out.join("loss_curves.svg");
    let series: Vec<Series> =
        curves.iter().map(|(label, points)| Series { label, points: points.clone() }).collect();
    line_chart(&loss_chart, "autoencoders: reconstruction error", "epoch", "MSE per pixel", &series)?;
    let mut written = vec![grid.display().to_string(), loss_chart.display().to_string()];
    if s.variational {
        // New digits: decode codes drawn from the prior N(0, I).
        vae.set_training(false);
        let samples = no_grad(|| vae.sample(2 * SHOWN, &mut rng))?.to_vec::<f32>()?;
        let images: Vec<Vec<f32>> = samples.chunks(64).map(<[f32]>::to_vec).collect();
        let sampled = out.join("vae_samples.svg");
        image_grid(
            &sampled,
            "variational autoencoder: decoded z ~ N(0, I)",
            8,
            8,
            &[
                ImageRow { label: "samples", images: images[..SHOWN].to_vec() },
                ImageRow { label: "samples", images: images[SHOWN..].to_vec() },
            ],
            &[],
        )?;
        written.push(sampled.display().to_string());
    }
    println!("\nwrote {}", written.join(", "));
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoencoder: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Under- and over-fitting, as the course shows them: networks of growing width trained on the
//! same few noisy points, with their training and validation error side by side.
//!
//! The data (seeded): y = sin(6x) + 0.3·x + N(0, 0.3²) noise; 30 training points, one x
//! uniform in each of 30 equal cells of [−1, 1] (few, so a large network can memorise their
//! noise, and without wide gaps, so between them it interpolates), and 400 validation points
//! with x uniform in [−1, 1]. The models: MLPs 1 → w → tanh → w → tanh → 1 for widths
//! w = 1, 2, 3, 4, 6, 8, 16, 32, 64, 128, trained alike (full-batch Adam, lr 0.01, 6 000
//! steps, no regularisation) to minimise the training MSE; every error is the mean over 5
//! data sets and initialisations (one alone is noisy: a single wild swing between two points
//! moves the validation error of one network a lot).
//!
//! What to see: the narrowest network cannot bend enough (under-fitting: training and
//! validation error both high, close together); width 2 follows the curve (the lowest
//! validation error); wider ones pass through the noisy training points (over-fitting:
//! training error far below the noise variance 0.09, validation error well above the best).
//! The noise variance is the floor no model can beat on fresh data, drawn dashed.
//!
//! ```text
//! cargo run --release --example fitting
//! cargo run --release --example fitting -- --points 30 --steps 6000 --noise 0.3 --lr 0.01 --repeats 5 --seed 0
//! ```
//!
//! Writes `fitting_regimes.svg` (left: the data and the fits of the narrowest network, the one
//! with the lowest validation error and the widest; right: final training and validation MSE against width) and
//! `learning_curves.svg` (training and validation MSE per step of the smallest and the largest
//! network) to `out/fitting` (or `--out DIR`).

mod common;

use common::{palette, panels, tick, AnyResult, Flags, Line, Panel, Series, Style};
use graphgrad::autodiff::{no_grad, DType, Tensor};
use graphgrad::nn::loss::mse_loss;
use graphgrad::nn::{LinearConfig, Module, Reduction, Sequential, Tanh};
use graphgrad::optim::{Adam, AdamConfig, Optimizer};
use graphgrad::train::plot::RGBColor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;

/// The curve the data is drawn around.
fn truth(x: f64) -> f64 {
    (6.0 * x).sin() + 0.3 * x
}

/// `n` points (x, y) with y = truth(x) + N(0, noise²), as `[n, 1]` tensors: x uniform in
/// [−1, 1], or when `spread`, one x uniform in each of n equal cells of [−1, 1] (training
/// points without wide gaps, so what a network does between them is interpolation).
fn sample(n: usize, noise: f64, spread: bool, rng: &mut ChaCha8Rng) -> AnyResult<(Tensor, Tensor)> {
    let u = Tensor::rand(&[n, 1], 0.0, 1.0, DType::F32, rng)?.to_f64_vec();
    let xs: Vec<f32> = u
        .iter()
        .enumerate()
        .map(|(i, &u)| if spread { -1.0 + 2.0 * (i as f64 + u) / n as f64 } else { 2.0 * u - 1.0 } as f32)
        .collect();
    let x = Tensor::from_vec(xs, &[n, 1])?;
    let eps = Tensor::randn(&[n, 1], 0.0, noise, DType::F32, rng)?;
    let clean: Vec<f32> = x.to_f64_vec().iter().map(|&v| truth(v) as f32).collect();
    let y = (Tensor::from_vec(clean, &[n, 1])? + &eps)?;
    Ok((x, y))
}

/// Mean squared error of `model` on (x, y), without recording gradients.
fn mse(model: &dyn Module, x: &Tensor, y: &Tensor) -> AnyResult<f64> {
    Ok(no_grad(|| mse_loss(&model.forward(x)?, y, Reduction::Mean))?.item()?)
}

/// One trained network and what it did.
struct Trained {
    width: usize,
    model: Sequential,
    /// (step, training MSE) and (step, validation MSE), every `record_every` steps.
    train_curve: Vec<(f64, f64)>,
    val_curve: Vec<(f64, f64)>,
}

/// Trains 1 → w → tanh → w → tanh → 1 on (x, y) for `steps` full-batch Adam steps.
fn train(width: usize, data: &[&Tensor; 4], steps: usize, lr: f64, seed: u64) -> AnyResult<Trained> {
    let [x, y, val_x, val_y] = *data;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let model = Sequential::new()
        .append(LinearConfig::new(1, width).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(width, width).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(width, 1).init(&mut rng)?);
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(lr))?;
    let record_every = (steps / 100).max(1);
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    for step in 0..=steps {
        if step % record_every == 0 || step == steps {
            train_curve.push((step as f64, mse(&model, x, y)?));
            val_curve.push((step as f64, mse(&model, val_x, val_y)?));
        }
        if step == steps {
            break;
        }
        let loss = mse_loss(&model.forward(x)?, y, Reduction::Mean)?;
        optimizer.zero_grad();
        loss.backward()?;
        optimizer.step()?;
    }
    Ok(Trained { width, model, train_curve, val_curve })
}

/// Tick labels of an axis in log₂ units: the power of two itself.
fn power_of_two(v: &f64) -> String {
    tick(&2f64.powf(*v))
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["points", "steps", "noise", "lr", "repeats", "seed", "out"], &[])?;
    let fast = common::fast_mode();
    let points: usize = flags.get("points", 30)?;
    let steps: usize = flags.get("steps", if fast { 300 } else { 6000 })?;
    let repeats: u64 = flags.get("repeats", if fast { 1 } else { 5 })?;
    let noise: f64 = flags.get("noise", 0.3)?;
    let lr: f64 = flags.get("lr", 0.01)?;
    let seed: u64 = flags.get("seed", 0)?;
    if points < 2 {
        return Err("--points: need at least 2 training points".into());
    }
    let out = common::output_dir(&flags, "fitting")?;
    let widths: &[usize] = if fast { &[1, 8, 64] } else { &[1, 2, 3, 4, 6, 8, 16, 32, 64, 128] };

    // One data set per repeat (seed, seed + 1, ...); the first is the one drawn.
    let mut sets = Vec::new();
    for r in 0..repeats.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed + r);
        let (x, y) = sample(points, noise, true, &mut rng)?;
        let (val_x, val_y) = sample(400, noise, false, &mut rng)?;
        sets.push([x, y, val_x, val_y]);
    }
    let floor = noise * noise;
    println!(
        "data: {points} training points (one in each of {points} equal cells of [−1, 1]) and 400 validation points, \
         y = sin(6x) + 0.3·x + N(0, {noise}²); the noise variance {floor:.3} is the best error possible \
         on fresh data"
    );
    println!(
        "models: 1 → w → tanh → w → tanh → 1, full-batch Adam lr {lr}, {steps} steps; errors are means over \
         {} data sets and initialisations\n",
        sets.len()
    );
    println!("{:>6}  {:>10}  {:>12}  {:>14}", "width", "parameters", "train MSE", "validation MSE");
    let (mut trained, mut means) = (Vec::new(), Vec::new());
    for &w in widths {
        let (mut tr, mut va) = (0.0, 0.0);
        for (r, set) in sets.iter().enumerate() {
            let t = train(w, &[&set[0], &set[1], &set[2], &set[3]], steps, lr, seed + 100 + r as u64)?;
            tr += t.train_curve[t.train_curve.len() - 1].1 / sets.len() as f64;
            va += t.val_curve[t.val_curve.len() - 1].1 / sets.len() as f64;
            if r == 0 {
                trained.push(t);
            }
        }
        let params: usize =
            trained[trained.len() - 1].model.named_parameters().iter().map(|(_, v)| v.numel()).sum();
        println!("{w:>6}  {params:>10}  {tr:>12.4}  {va:>14.4}");
        means.push((w, tr, va));
    }
    let best = means.iter().min_by(|a, b| a.2.total_cmp(&b.2)).map_or(1, |m| m.0);
    println!(
        "\nlowest validation error at width {best}; narrower networks under-fit (both errors high), \
         wider ones over-fit (training error below the noise variance, validation error above the best)"
    );
    let [x, y, _, _] = &sets[0];

    // Left panel: data and three fits. Right panel: error against width.
    let grid: Vec<f64> = (0..=200).map(|i| -1.0 + 2.0 * f64::from(i) / 200.0).collect();
    let grid_x = Tensor::from_vec(grid.iter().map(|&v| v as f32).collect(), &[grid.len(), 1])?;
    let best_index = widths.iter().position(|&w| w == best).unwrap_or(trained.len() / 2);
    let shown = [0, best_index, trained.len() - 1];
    let labels: Vec<String> = shown.iter().map(|&i| format!("width {}", trained[i].width)).collect();
    let mut fits = vec![Line {
        series: Series {
            label: "truth sin(6x) + 0.3·x",
            points: grid.iter().map(|&v| (v, truth(v))).collect(),
        },
        style: Style { color: RGBColor(0, 0, 0), width: 2, dashed: true },
    }];
    for (k, &i) in shown.iter().enumerate() {
        let predicted = no_grad(|| trained[i].model.forward(&grid_x))?.to_f64_vec();
        fits.push(Line {
            series: Series { label: &labels[k], points: grid.iter().copied().zip(predicted).collect() },
            style: Style { color: palette([0, 2, 3][k]), width: 2, dashed: false },
        });
    }
    let train_points: Vec<(f64, f64)> = x.to_f64_vec().into_iter().zip(y.to_f64_vec()).collect();
    let data = [Series { label: "training points", points: train_points }];
    let log_w = |w: usize| (w as f64).log2();
    let errors = [
        Line {
            series: Series {
                label: "training MSE",
                points: means.iter().map(|&(w, tr, _)| (log_w(w), tr)).collect(),
            },
            style: Style { color: palette(0), width: 3, dashed: false },
        },
        Line {
            series: Series {
                label: "validation MSE",
                points: means.iter().map(|&(w, _, va)| (log_w(w), va)).collect(),
            },
            style: Style { color: palette(1), width: 3, dashed: false },
        },
        Line {
            series: Series {
                label: "noise variance (best possible)",
                points: vec![(0.0, floor), (log_w(widths[widths.len() - 1]), floor)],
            },
            style: Style { color: RGBColor(0, 0, 0), width: 1, dashed: true },
        },
    ];
    let regimes = out.join("fitting_regimes.svg");
    panels(
        &regimes,
        &format!("under- and over-fitting: the same {points} noisy points, networks of growing width"),
        &[
            Panel {
                title: "the fits: too stiff, about right, following the noise",
                x_label: "x",
                y_label: "y",
                lines: &fits,
                points: &data,
                x_ticks: tick,
                y_range: None,
            },
            Panel {
                title: "mean error after training: under-fitting left, over-fitting right",
                x_label: "width w (log scale)",
                y_label: "mean squared error",
                lines: &errors,
                points: &[],
                x_ticks: power_of_two,
                y_range: None,
            },
        ],
    )?;

    // Learning curves of the smallest and the largest network, side by side.
    let curve_lines = |t: &Trained| {
        [
            Line {
                series: Series { label: "training MSE", points: t.train_curve.clone() },
                style: Style { color: palette(0), width: 2, dashed: false },
            },
            Line {
                series: Series { label: "validation MSE", points: t.val_curve.clone() },
                style: Style { color: palette(1), width: 2, dashed: false },
            },
        ]
    };
    let (small, large) = (&trained[0], &trained[trained.len() - 1]);
    let (small_lines, large_lines) = (curve_lines(small), curve_lines(large));
    let small_title = format!("width {}: both errors stay high (under-fitting)", small.width);
    let large_title =
        format!("width {}: training error keeps falling, validation rises (over-fitting)", large.width);
    // one y scale for both, so "high" and "low" compare across the panels
    let top = small_lines
        .iter()
        .chain(&large_lines)
        .flat_map(|l| l.series.points.iter())
        .fold(0.0f64, |m, p| m.max(p.1));
    let shared = Some((0.0, 1.04 * top));
    let curves = out.join("learning_curves.svg");
    panels(
        &curves,
        "training and validation error during training",
        &[
            Panel {
                title: &small_title,
                x_label: "step",
                y_label: "mean squared error",
                lines: &small_lines,
                points: &[],
                x_ticks: tick,
                y_range: shared,
            },
            Panel {
                title: &large_title,
                x_label: "step",
                y_label: "mean squared error",
                lines: &large_lines,
                points: &[],
                x_ticks: tick,
                y_range: shared,
            },
        ],
    )?;
    println!("\nwrote {} and {}", regimes.display(), curves.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fitting: {e}");
            ExitCode::FAILURE
        }
    }
}

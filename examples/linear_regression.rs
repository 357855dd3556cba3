//! The course's first slide: fit a line y = a·x + b by plain gradient descent, with the
//! gradients from autodiff checked against their closed form at every step.
//!
//! Model and loss: two parameters (`Var`s) a and b, and
//! L(a, b) = 1/(2n)·Σᵢ (yᵢ* − (a·xᵢ + b))², minimised from a = 0.58, b = 0.25 with
//! w ← w − γ·∂L/∂w, γ = 0.01. At every step the example compares autodiff's ∂L/∂a and ∂L/∂b
//! with ∂L/∂a = 1/n·Σ(a·xᵢ + b − yᵢ*)·xᵢ and ∂L/∂b = 1/n·Σ(a·xᵢ + b − yᵢ*) and stops with an
//! error if they differ by more than 1e-9 relative (f64).
//!
//! The data: n = 100 points with x uniform in [−5, 12] and yᵢ* = 3.15·xᵢ + 0.5 + N(0, 0.5²)
//! noise (seeded). The range was chosen (by simulating the two-parameter descent) so the
//! first ten steps behave like the course's slide (a: 0.58, 1.50, 2.10, 2.48, 2.73, 2.89,
//! 2.99, 3.06, 3.10, 3.13; b: 0.25 ... 0.50). What sets the shape is the Hessian of L,
//! [[E x², E x], [E x, 1]]: with E x² ≈ 36 its steep direction shrinks by a factor ≈ 0.63 per
//! step at γ = 0.01, so a climbs fast and decelerates towards ≈ 3.2; with E x / E x² ≈ 0.1
//! that direction is nearly pure a, so b only creeps up towards ≈ 0.5 (a range like [0, 10]
//! makes b overshoot to ≈ 0.6 first; [0, 2] is so flat that a needs hundreds of steps). The
//! shallow direction (mostly b) then converges over a few hundred steps to the least-squares
//! line, which the example also computes exactly for comparison.
//!
//! ```text
//! cargo run --release --example linear_regression
//! cargo run --release --example linear_regression -- --steps 3000 --lr 0.01 --points 100 --noise 0.5 --seed 0
//! ```
//!
//! Writes `fit.svg` (the points and the successive fitted lines) and `loss.svg` (the loss
//! curve, as the excess over the least-squares loss on a log scale) to `out/linear_regression` (or `--out DIR`).

mod common;

use common::{line_chart, lines_and_points, output_dir, AnyResult, Flags, Series};
use graphgrad::autodiff::{no_grad, DType, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;

/// The line the data is generated around, and the x range.
const TRUE_A: f64 = 3.15;
const TRUE_B: f64 = 0.5;
const X_RANGE: (f64, f64) = (-5.0, 12.0);
/// Largest accepted difference between autodiff and the closed form, relative.
const TOLERANCE: f64 = 1e-9;

/// L = 1/(2n)·Σ(yᵢ* − (a·xᵢ + b))², built from tensor ops so autodiff records it.
fn loss(x: &Tensor, y: &Tensor, a: &Var, b: &Var) -> AnyResult<Tensor> {
    let prediction = x.mul(a)?.add(b)?;
    Ok(y.sub(&prediction)?.square().mean_all()?.mul_scalar(0.5))
}

/// The closed-form gradient (∂L/∂a, ∂L/∂b), and the mean absolute size of the summed terms
/// of each (the scale the rounding error of a sum of n terms is relative to).
fn closed_form_gradient(x: &[f64], y: &[f64], a: f64, b: f64) -> ([f64; 2], [f64; 2]) {
    let n = x.len() as f64;
    let (mut ga, mut gb, mut sa, mut sb) = (0.0, 0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let r = a * xi + b - yi;
        ga += r * xi;
        gb += r;
        sa += (r * xi).abs();
        sb += r.abs();
    }
    ([ga / n, gb / n], [sa / n, sb / n])
}

/// The exact least-squares line (normal equations), for comparison with where descent goes.
fn least_squares(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(xi, yi)| (xi - mx) * (yi - my)).sum();
    let sxx: f64 = x.iter().map(|xi| (xi - mx) * (xi - mx)).sum();
    let a = sxy / sxx;
    (a, my - a * mx)
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(&["steps", "lr", "points", "noise", "seed", "out"], &[])?;
    let fast = common::fast_mode();
    let steps: usize = flags.get("steps", if fast { 300 } else { 1500 })?;
    let lr: f64 = flags.get("lr", 0.01)?;
    let n: usize = flags.get("points", 100)?;
    let noise: f64 = flags.get("noise", 0.5)?;
    let seed: u64 = flags.get("seed", 0)?;
    if n < 2 {
        return Err("--points: need at least 2 points".into());
    }
    let out = output_dir(&flags, "linear_regression")?;

    // Data around the true line, seeded.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Tensor::rand(&[n], X_RANGE.0, X_RANGE.1, DType::F64, &mut rng);
    let eps = Tensor::randn(&[n], 0.0, noise, DType::F64, &mut rng);
    let y = x.mul_scalar(TRUE_A).add_scalar(TRUE_B).add(&eps)?;
    let (xs, ys) = (x.to_f64_vec(), y.to_f64_vec());
    let (ls_a, ls_b) = least_squares(&xs, &ys);
    println!(
        "data: {n} points, x uniform in [{}, {}], y* = {TRUE_A}·x + {TRUE_B} + N(0, {noise}²) (seed {seed})",
        X_RANGE.0, X_RANGE.1
    );
    println!("least-squares line (exact minimiser of L): a = {ls_a:.4}, b = {ls_b:.4}");
    println!("gradient descent from a = 0.58, b = 0.25 with γ = {lr}, {steps} steps\n");

    let a = Var::new("a", &Tensor::scalar(0.58f64));
    let b = Var::new("b", &Tensor::scalar(0.25f64));
    println!("{:>6}  {:>8}  {:>8}  {:>12}  {:>11}  {:>11}", "step", "a", "b", "L", "∂L/∂a", "∂L/∂b");
    let mut loss_curve = Vec::with_capacity(steps + 1);
    let mut fitted = Vec::new(); // (step, a, b) of the lines drawn
    let mut worst_rel: f64 = 0.0;
    let print_every = (steps / 12).max(1);
    for step in 0..=steps {
        let l = loss(&x, &y, &a, &b)?;
        a.zero_grad();
        b.zero_grad();
        l.backward()?;
        let ga = a.grad().ok_or("a has no gradient after backward")?;
        let gb = b.grad().ok_or("b has no gradient after backward")?;
        let (av, bv, lv) = (a.item()?, b.item()?, l.item()?);

        // autodiff against the closed form, every step.
        let (closed, scale) = closed_form_gradient(&xs, &ys, av, bv);
        for (name, auto, exact, s) in
            [("∂L/∂a", ga.item()?, closed[0], scale[0]), ("∂L/∂b", gb.item()?, closed[1], scale[1])]
        {
            let rel = (auto - exact).abs() / exact.abs().max(s).max(f64::MIN_POSITIVE);
            worst_rel = worst_rel.max(rel);
            if rel.is_nan() || rel > TOLERANCE {
                return Err(format!(
                    "step {step}: autodiff {name} = {auto:e} but the closed form gives {exact:e} \
                     (relative difference {rel:.2e} > {TOLERANCE:e})"
                )
                .into());
            }
        }

        loss_curve.push((step as f64, lv));
        let shown = step < 10 || step % print_every == 0 || step == steps;
        if shown {
            println!(
                "{step:>6}  {av:>8.4}  {bv:>8.4}  {lv:>12.6}  {:>11.3e}  {:>11.3e}",
                ga.item()?,
                gb.item()?
            );
            if step < 10 || step == steps || step % (print_every * 4) == 0 {
                fitted.push((step, av, bv));
            }
        }
        if step == steps {
            break;
        }
        // w ← w − γ·∂L/∂w (no graph is recorded for the update itself).
        no_grad(|| -> AnyResult<()> {
            a.set(&a.sub(&ga.mul_scalar(lr))?)?;
            b.set(&b.sub(&gb.mul_scalar(lr))?)?;
            Ok(())
        })?;
    }
    let (fa, fb) = (a.item()?, b.item()?);
    println!(
        "\nafter {steps} steps: a = {fa:.4}, b = {fb:.4}; least squares: a = {ls_a:.4}, b = {ls_b:.4} \
         (|Δa| = {:.1e}, |Δb| = {:.1e})",
        (fa - ls_a).abs(),
        (fb - ls_b).abs()
    );
    println!(
        "gradients checked at all {} steps: autodiff matches the closed form, worst relative difference {worst_rel:.1e}",
        steps + 1
    );

    // Pictures: the points with the successive lines, and the loss.
    let (x0, x1) = X_RANGE;
    let labels: Vec<String> = fitted.iter().map(|(s, _, _)| format!("step {s}")).collect();
    let mut lines: Vec<Series> = fitted
        .iter()
        .zip(&labels)
        .map(|(&(s, fa, fb), label)| Series {
            label: if s < 3 || s == steps { label } else { "" },
            points: vec![(x0, fa * x0 + fb), (x1, fa * x1 + fb)],
        })
        .collect();
    let true_label = format!("true line {TRUE_A}·x + {TRUE_B}");
    lines.push(Series {
        label: &true_label,
        points: vec![(x0, TRUE_A * x0 + TRUE_B), (x1, TRUE_A * x1 + TRUE_B)],
    });
    let data = Series { label: "data", points: xs.iter().copied().zip(ys.iter().copied()).collect() };
    let fit_path = out.join("fit.svg");
    lines_and_points(
        &fit_path,
        "y = a·x + b: the fitted line after successive gradient steps",
        "x",
        "y",
        &lines,
        &[data],
    )?;
    // L levels off at the least-squares loss L*: the excess L − L* on a log scale shows both
    // phases, a fast drop (the steep direction, mostly a) then a slow geometric decay (mostly b).
    let best = loss(&x, &y, &Var::new("a*", &Tensor::scalar(ls_a)), &Var::new("b*", &Tensor::scalar(ls_b)))?
        .item()?;
    let excess: Vec<(f64, f64)> =
        loss_curve.iter().filter(|(_, l)| *l > best).map(|&(s, l)| (s, (l - best).log10())).collect();
    let loss_path = out.join("loss.svg");
    line_chart(
        &loss_path,
        &format!("L − L*, L* = {best:.4} the least-squares loss: fast drop (a), then slow decay (b)"),
        "step",
        "log₁₀(L − L*)",
        &[Series { label: "log₁₀(L − L*)", points: excess }],
    )?;
    println!("wrote {} and {}", fit_path.display(), loss_path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linear_regression: {e}");
            ExitCode::FAILURE
        }
    }
}

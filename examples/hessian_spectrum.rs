//! The largest Hessian eigenvalues of a small trained network, two ways.
//!
//! A 2→6→1 tanh network (25 parameters, f64) is fitted to y = sin(x₁) + x₂²/2 by gradient
//! descent. Its loss is written as a function of one flat parameter vector θ, so
//! `func::hessian` gives the whole 25×25 Hessian (forward-over-reverse), whose eigenvalues a
//! Jacobi eigen-decomposition computes. Independently, power iteration with deflation on
//! `func::hvp` (one Hessian-vector product per iteration, the Hessian never formed) finds the
//! eigenvalues of largest magnitude; the example checks they agree.
//!
//! ```text
//! cargo run --release --example hessian_spectrum
//! cargo run --release --example hessian_spectrum -- --top 4 --steps 3000
//! ```
//!
//! Writes `spectrum.txt` (both sets of eigenvalues) to `out/hessian_spectrum` (or `--out DIR`).

mod common;

use common::{fast_mode, output_dir, AnyResult, Flags};
use graphgrad::autodiff::{func, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;

const IN: usize = 2;
const HIDDEN: usize = 6;

/// The number of parameters: w1 [2, 6], b1 [6], w2 [6, 1], b2 [1].
const PARAMS: usize = IN * HIDDEN + HIDDEN + HIDDEN + 1;

/// Mean squared error of the network with flat parameters `theta` on `(x, y)`.
fn loss(theta: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let w1 = theta.narrow(0, 0, IN * HIDDEN)?.reshape(&[IN, HIDDEN])?;
    let b1 = theta.narrow(0, IN * HIDDEN, HIDDEN)?;
    let w2 = theta.narrow(0, IN * HIDDEN + HIDDEN, HIDDEN)?.reshape(&[HIDDEN, 1])?;
    let b2 = theta.narrow(0, PARAMS - 1, 1)?;
    let prediction = ((x.matmul(&w1)? + &b1)?.tanh().matmul(&w2)? + &b2)?;
    Ok(prediction.sub(y)?.square().mean_all())
}

/// Eigenvalues of the symmetric `n`×`n` matrix `a` (row-major) by cyclic Jacobi rotations.
fn jacobi_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-26 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                // the rotation that zeroes a[p][q]
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    a.mul(b)?.sum_all().item()
}

/// The `top` eigenvalues of largest magnitude of the Hessian at `theta`, by power iteration
/// on Hessian-vector products, deflating each one found.
fn power_iteration(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    theta: &Tensor,
    top: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f64>> {
    let mut found: Vec<(f64, Tensor)> = Vec::new();
    for _ in 0..top {
        let mut v =
            Tensor::from_vec((0..PARAMS).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>(), &[PARAMS])?;
        let mut lambda = 0.0;
        for _ in 0..5000 {
            v = &v / dot(&v, &v)?.sqrt();
            let mut hv = func::hvp(f, std::slice::from_ref(theta), std::slice::from_ref(&v))?.remove(0);
            // deflate: H − Σ λᵢ uᵢuᵢᵀ
            for (l, u) in &found {
                hv = (hv - u * (l * dot(u, &v)?))?;
            }
            let next = dot(&v, &hv)?;
            let converged = (next - lambda).abs() <= 1e-13 * next.abs();
            lambda = next;
            v = hv;
            if converged {
                break;
            }
        }
        found.push((lambda, &v / dot(&v, &v)?.sqrt()));
    }
    Ok(found.into_iter().map(|(l, _)| l).collect())
}

fn main() -> AnyResult<()> {
    let flags = Flags::parse(&["seed", "steps", "top", "out"], &[])?;
    let seed: u64 = flags.get("seed", 0)?;
    let steps: usize = flags.get("steps", if fast_mode() { 300 } else { 2000 })?;
    let top: usize = flags.get("top", 3)?;
    let out = output_dir(&flags, "hessian_spectrum")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // data: y = sin(x₁) + x₂²/2 on [−2, 2]²
    let n = 64;
    let xs: Vec<f64> = (0..n * IN).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let ys: Vec<f64> = xs.chunks(2).map(|p| p[0].sin() + 0.5 * p[1] * p[1]).collect();
    let (x, y) = (Tensor::from_vec(xs, &[n, IN])?, Tensor::from_vec(ys, &[n, 1])?);
    let f = |v: &[Tensor]| loss(&v[0], &x, &y);

    // train by gradient descent on θ
    let mut theta =
        Tensor::from_vec((0..PARAMS).map(|_| rng.gen_range(-0.7..0.7)).collect::<Vec<f64>>(), &[PARAMS])?;
    let gradient = func::grad(f);
    let first = f(std::slice::from_ref(&theta))?.item()?;
    for _ in 0..steps {
        let g = gradient(std::slice::from_ref(&theta))?.remove(0);
        theta = (theta - g * 0.1)?.detach();
    }
    let last = f(std::slice::from_ref(&theta))?.item()?;
    println!("trained {steps} steps: loss {first:.4} -> {last:.4}");
    if last >= first {
        return Err(format!("training did not lower the loss ({first} -> {last})").into());
    }

    // dense Hessian and its eigenvalues
    let h = func::hessian(f)(std::slice::from_ref(&theta))?;
    let entries = h.to_f64_vec();
    let asymmetry = (0..PARAMS)
        .flat_map(|i| (0..PARAMS).map(move |j| (i, j)))
        .map(|(i, j)| (entries[i * PARAMS + j] - entries[j * PARAMS + i]).abs())
        .fold(0.0, f64::max);
    let mut dense = jacobi_eigenvalues(entries, PARAMS);
    dense.sort_by(|a, b| b.abs().total_cmp(&a.abs()));

    // power iteration on Hessian-vector products
    let iterated = power_iteration(&f, &theta, top, &mut rng)?;
    let mut report = format!("Hessian of the loss in {PARAMS} parameters (asymmetry {asymmetry:.1e})\n");
    let mut worst: f64 = 0.0;
    for (k, (&p, &d)) in iterated.iter().zip(&dense).enumerate() {
        let rel = (p - d).abs() / d.abs();
        worst = worst.max(rel);
        writeln!(report, "λ{} power iteration {p:.10} dense {d:.10} relative difference {rel:.1e}", k + 1)?;
    }
    print!("{report}");
    std::fs::write(out.join("spectrum.txt"), &report)?;
    if worst > 1e-6 || asymmetry > 1e-10 {
        return Err(
            format!("power iteration and the dense Hessian disagree (worst relative {worst:.1e})").into()
        );
    }
    println!("power iteration on hvp matches the dense Hessian's eigenvalues (worst relative {worst:.1e})");
    Ok(())
}

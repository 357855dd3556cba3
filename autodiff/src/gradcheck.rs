//! Numerical derivative checks in f64: central finite differences against autodiff.
//!
//! `gradcheck` (reverse mode): a non-scalar output is reduced with a fixed pseudo-random
//! cotangent `v`, so the check compares the vector-Jacobian product vᵀJ (every input element)
//! with `(L(x + ε) − L(x − ε)) / 2ε` where `L = Σ v ⊙ f(x)`. `jvpcheck` (forward mode) compares
//! the Jacobian-vector product J·t along fixed pseudo-random tangents `t` (every output
//! element) with `(f(x + εt) − f(x − εt)) / 2ε`.

use crate::{func, grad, Error, Result, Tensor};
use graphgrad_ops::DType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Step and tolerances of a check: an element passes when
/// `|analytic − numeric| ≤ atol + rtol·|numeric|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-3 }
    }
}

/// L = Σ v ⊙ out, with v fixed by a seed.
fn project(out: &Tensor) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x9e3779b97f4a7c15);
    let v: Vec<f64> = (0..out.numel()).map(|_| rng.gen_range(0.5..1.5)).collect();
    Ok(out.mul(&Tensor::from_vec(v, out.shape())?)?.sum_all())
}

/// Checks the gradients of `f` at `inputs` (all f64) and returns the worst mismatch as
/// [`Error::GradcheckFailed`] (input, element index, analytic and numeric values).
///
/// ```
/// use graphgrad_autodiff::{gradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], &[3])?;
/// gradcheck(|xs| Ok(xs[0].tanh().mul(&xs[0])?), &[x], GradcheckOptions::default())?;
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor], options: GradcheckOptions) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let GradcheckOptions { eps, atol, rtol } = options;
    if !(eps.is_finite() && eps > 0.0 && atol.is_finite() && atol >= 0.0 && rtol.is_finite() && rtol >= 0.0) {
        crate::bail!(
            "gradcheck",
            "eps must be finite and positive and atol, rtol finite and non-negative, got eps {eps:?}, \
             atol {atol:?}, rtol {rtol:?}"
        );
    }
    for (i, x) in inputs.iter().enumerate() {
        if x.dtype() != DType::F64 {
            crate::bail!("gradcheck", "input {i} is {}, gradcheck runs in f64", x.dtype());
        }
    }
    let leaves: Vec<Tensor> = inputs.iter().map(Tensor::requires_grad_).collect();
    let loss = project(&f(&leaves)?)?;
    let analytic: Vec<Vec<f64>> = if loss.requires_grad() {
        grad(&[loss], &leaves, false)?.iter().map(Tensor::to_f64_vec).collect()
    } else {
        leaves.iter().map(|x| vec![0.0; x.numel()]).collect()
    };

    let mut worst: Option<Error> = None;
    let mut worst_excess = 0.0;
    for (i, x) in inputs.iter().enumerate() {
        let base = x.to_f64_vec();
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut values = base.clone();
                values[j] += delta;
                // Inputs stay differentiable: `f` may itself take gradients (gradgradcheck).
                let mut args = leaves.clone();
                args[i] = Tensor::from_vec(values, x.shape())?.requires_grad_();
                project(&f(&args)?)?.item()
            };
            let numeric = (at(options.eps)? - at(-options.eps)?) / (2.0 * options.eps);
            let a = analytic[i][j];
            let excess = (a - numeric).abs() - (options.atol + options.rtol * numeric.abs());
            let bad = excess > 0.0 || a.is_nan() != numeric.is_nan();
            if bad && (worst.is_none() || excess > worst_excess) {
                worst_excess = excess;
                worst = Some(Error::GradcheckFailed { input: i, index: j, analytic: a, numeric, excess });
            }
        }
    }
    worst.map_or(Ok(()), Err)
}

/// Checks second derivatives: [`gradcheck`] of the function `x ↦ ∇ₓ Σ v ⊙ f(x)` (built with
/// `create_graph`), with every input's gradient flattened and concatenated.
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor], options: GradcheckOptions) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let first_order = |xs: &[Tensor]| -> Result<Tensor> {
        let loss = project(&f(xs)?)?;
        let grads = if loss.requires_grad() {
            grad(&[loss], xs, true)?
        } else {
            xs.iter().map(|x| Tensor::zeros(x.shape(), x.dtype())).collect::<Result<_>>()?
        };
        let flat = grads.iter().map(|g| g.reshape(&[g.numel()])).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    };
    gradcheck(first_order, inputs, options)
}

/// Fixed pseudo-random values in ±[0.5, 1.5) of `x`'s shape: a tangent direction.
fn direction(x: &Tensor, seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..x.numel())
        .map(|_| rng.gen_range(0.5..1.5) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_vec(v, x.shape())
}

/// Checks the forward-mode tangents of `f` at `inputs` (all f64): along a fixed pseudo-random
/// tangent of each input alone and of all inputs together, [`func::jvp`]'s `J·t` against
/// `(f(x + εt) − f(x − εt)) / 2ε` at every output element; the worst mismatch is
/// [`Error::JvpcheckFailed`].
///
/// ```
/// use graphgrad_autodiff::{jvpcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], &[3])?;
/// jvpcheck(|xs| Ok(xs[0].tanh().mul(&xs[0])?), &[x], GradcheckOptions::default())?;
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn jvpcheck<F>(f: F, inputs: &[Tensor], options: GradcheckOptions) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    for (i, x) in inputs.iter().enumerate() {
        if x.dtype() != DType::F64 {
            crate::bail!("jvpcheck", "input {i} is {}, jvpcheck runs in f64", x.dtype());
        }
    }
    let directions: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| direction(x, 0x51ed_270b + i as u64))
        .collect::<Result<_>>()?;
    let mut worst: Option<Error> = None;
    let mut worst_excess = 0.0;
    // each input alone, then all together (`None`)
    let cases = (0..inputs.len()).map(Some).chain((inputs.len() > 1).then_some(None));
    for case in cases {
        let tangents: Vec<Tensor> = inputs
            .iter()
            .zip(&directions)
            .enumerate()
            .map(|(i, (x, d))| {
                if case.is_none_or(|c| c == i) {
                    Ok(d.clone())
                } else {
                    Tensor::zeros(x.shape(), x.dtype())
                }
            })
            .collect::<Result<_>>()?;
        let (_, pushed) = func::jvp(|xs| Ok(vec![f(xs)?]), inputs, &tangents)?;
        let forward = pushed[0].to_f64_vec();
        let at = |scale: f64| -> Result<Vec<f64>> {
            let moved: Vec<Tensor> = inputs
                .iter()
                .zip(&tangents)
                .map(|(x, t)| x.add(&t.mul_scalar(scale)))
                .collect::<Result<_>>()?;
            Ok(f(&moved)?.to_f64_vec())
        };
        let (plus, minus) = (at(options.eps)?, at(-options.eps)?);
        for (j, (&a, (p, m))) in forward.iter().zip(plus.iter().zip(&minus)).enumerate() {
            let numeric = (p - m) / (2.0 * options.eps);
            let excess = (a - numeric).abs() - (options.atol + options.rtol * numeric.abs());
            let bad = excess > 0.0 || a.is_nan() != numeric.is_nan();
            if bad && (worst.is_none() || excess > worst_excess) {
                worst_excess = excess;
                worst = Some(Error::JvpcheckFailed { input: case, index: j, tangent: a, numeric, excess });
            }
        }
    }
    worst.map_or(Ok(()), Err)
}

//! Dense Jacobians and Hessians, and Hessian-vector products, from one recording of the
//! function each: [`jacrev`] pulls back one basis cotangent per output element, [`jacfwd`]
//! pushes forward one basis tangent per input element.

use super::{grad, jvp, push_forward, vjp};
use crate::buffer::Buffer;
use crate::{DType, Result, Tensor};
use graphgrad_ops::Shape;

/// The `k`-th basis tensor of `shape`: one at flat index `k`, zeros elsewhere.
fn basis(shape: &[usize], dtype: DType, k: usize) -> Result<Tensor> {
    let mut values = vec![0.0; graphgrad_ops::numel(shape)];
    values[k] = 1.0;
    Tensor::leaf(Buffer::from_f64(dtype, &values), shape, false)
}

/// `a`'s shape followed by `b`'s: the shape of ∂a/∂b.
fn joined(a: &[usize], b: &[usize]) -> Shape {
    a.iter().chain(b).copied().collect()
}

/// The function computing the Jacobian of `f`'s output with respect to each input, by reverse
/// mode: one pullback per output element, so cheaper than [`jacfwd`] when the output has fewer
/// elements than the inputs. Each Jacobian has the output's shape followed by the input's.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // f(x) = x ⊙ x: J = diag(2x)
/// let jac = func::jacrev(|v: &[Tensor]| Ok(v[0].square()));
/// let x = Tensor::from_vec(vec![1.0f64, 3.0], &[2])?;
/// assert_eq!(jac(&[x])?[0].to_vec::<f64>()?, [2.0, 0.0, 0.0, 6.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn jacrev<F>(f: F) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    move |inputs: &[Tensor]| {
        let (outputs, pullback) = vjp(|xs| Ok(vec![f(xs)?]), inputs)?;
        let y = &outputs[0];
        let mut rows: Vec<Vec<Tensor>> = vec![Vec::new(); inputs.len()];
        for k in 0..y.numel() {
            let cotangents = pullback.call(&[basis(y.shape(), y.dtype(), k)?])?;
            for (row, g) in rows.iter_mut().zip(cotangents) {
                row.push(g);
            }
        }
        inputs.iter().zip(rows).map(|(x, row)| stacked(row, true, y.shape(), x)).collect()
    }
}

/// The function computing the Jacobian of `f`'s output with respect to each input, by forward
/// mode: one tangent pass per input element over one recording of `f`, so cheaper than
/// [`jacrev`] when the inputs have fewer elements than the output. Each Jacobian has the
/// output's shape followed by the input's.
pub fn jacfwd<F>(f: F) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    move |inputs: &[Tensor]| {
        let y = crate::mode::recording(|| f(inputs))?;
        inputs.iter().map(|x| columns(&y, x)).collect()
    }
}

/// ∂y/∂x by forward mode over the graph already recorded from `x` to `y`.
fn columns(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let mut cols = Vec::with_capacity(x.numel());
    for k in 0..x.numel() {
        let seed = (x.clone(), basis(x.shape(), x.dtype(), k)?);
        let t = push_forward(std::slice::from_ref(y), &[seed])?.remove(0);
        cols.push(t.map_or_else(|| Tensor::zeros(y.shape(), y.dtype()), Ok)?);
    }
    stacked(cols, false, y.shape(), x)
}

/// Slices of ∂y/∂x, rows (one per output element) or columns (one per input element), laid
/// out as `y.shape ++ x.shape` (zeros when there are none).
fn stacked(parts: Vec<Tensor>, rows: bool, y: &[usize], x: &Tensor) -> Result<Tensor> {
    let shape = joined(y, x.shape());
    if parts.is_empty() {
        return Tensor::zeros(&shape, x.dtype());
    }
    let parts: Vec<Tensor> = parts.iter().map(|p| p.reshape(&[p.numel()])).collect::<Result<_>>()?;
    Tensor::stack(&parts, if rows { 0 } else { 1 })?.reshape(&shape)
}

/// The function computing the Hessian of the scalar `f` with respect to its first input (the
/// others held fixed; `torch.func.hessian`'s default), of shape `x.shape ++ x.shape`:
/// forward-over-reverse, the gradient recorded once and one tangent pass over it per element
/// of `x`.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // f(x) = x₀²·x₁: H = [[2x₁, 2x₀], [2x₀, 0]]
/// let h = func::hessian(|v: &[Tensor]| {
///     let (a, b) = (v[0].narrow(0, 0, 1)?, v[0].narrow(0, 1, 1)?);
///     Ok(a.square().mul(&b)?.sum_all())
/// });
/// let x = Tensor::from_vec(vec![3.0f64, 2.0], &[2])?;
/// assert_eq!(h(&[x])?.to_vec::<f64>()?, [4.0, 6.0, 6.0, 0.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn hessian<F>(f: F) -> impl Fn(&[Tensor]) -> Result<Tensor>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let gradient = grad(f);
    move |inputs: &[Tensor]| {
        let Some(x) = inputs.first() else { crate::bail!("hessian", "needs at least one input") };
        let g = crate::mode::recording(|| gradient(inputs))?.remove(0);
        columns(&g, x)
    }
}

/// The Hessian of the scalar `f` at `primals` times `tangents` (one per primal, of its shape),
/// one result per primal: `jvp` of `grad` (forward-over-reverse), about the cost of two or
/// three gradients, without forming the Hessian.
///
/// ```
/// use graphgrad_autodiff::{func, Tensor};
/// // f(x) = Σ x³: H = diag(6x), H·v = 6x ⊙ v
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
/// let v = Tensor::from_vec(vec![1.0f64, -1.0], &[2])?;
/// let hv = func::hvp(|t: &[Tensor]| Ok(t[0].pow_scalar(3.0).sum_all()), &[x], &[v])?;
/// assert_eq!(hv[0].to_vec::<f64>()?, [6.0, -12.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn hvp<F>(f: F, primals: &[Tensor], tangents: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    Ok(jvp(grad(f), primals, tangents)?.1)
}

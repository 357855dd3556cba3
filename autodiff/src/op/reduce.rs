//! Reductions over axes: sum, mean, max, min, logsumexp (and var, argmax built on them).
//!
//! Backward: the output gradient is reshaped to the keepdim shape and broadcast back; max/min
//! share it evenly among tied maxima; logsumexp weights it by softmax.

use super::movement::normalize_axis;
use super::{Arg, InputGrads, Op};
use crate::buffer::{with_dtype, Elem};
use crate::{Result, Tensor};
use graphgrad_ops::reduce::{self, ReduceOp};
use graphgrad_ops::Shape;
use smallvec::smallvec;

/// The reduced shape: `axes` (sorted, distinct) dropped, or kept as size 1 with `keepdim`.
pub(super) fn infer(axes: &[usize], keepdim: bool, x: &[usize]) -> Result<Shape> {
    if axes.iter().any(|&a| a >= x.len()) || axes.windows(2).any(|w| w[0] >= w[1]) {
        crate::bail!("reduce", "axes {axes:?} are not sorted, distinct axes of shape {x:?}");
    }
    Ok(if keepdim {
        keepdim_shape(x, axes)
    } else {
        x.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &s)| s).collect()
    })
}

pub(super) fn forward<T: Elem>(op: ReduceOp, axes: &[usize], ins: &[Arg<'_>], out: &mut [T]) {
    reduce::reduce(op, ins[0].data::<T>(), ins[0].shape, axes, out)
}

/// The shape `x` has with `axes` kept as size 1.
fn keepdim_shape(x: &[usize], axes: &[usize]) -> Shape {
    x.iter().enumerate().map(|(d, &s)| if axes.contains(&d) { 1 } else { s }).collect()
}

pub(super) fn vjp(op: ReduceOp, axes: &[usize], node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let x = &node.inputs()[0];
    let kept = keepdim_shape(x.shape(), axes);
    let g = g.reshape(&kept)?;
    let count = axes.iter().map(|&a| x.shape()[a]).product::<usize>() as f64;
    let grad = match op {
        // d/dx Σx = 1
        ReduceOp::Sum => g.expand(x.shape())?,
        // d/dx mean x = 1/n
        ReduceOp::Mean => g.mul_scalar(1.0 / count).expand(x.shape())?,
        // d/dx max x = [x = max] / #ties
        ReduceOp::Max | ReduceOp::Min => {
            let y = node.reshape(&kept)?;
            let mask = x.eq(&y)?;
            let ties = mask.reduce(ReduceOp::Sum, axes, true)?;
            mask.mul(&g.div(&ties)?)?
        }
        // d/dx log Σ e^x = softmax(x)
        ReduceOp::LogSumExp => x.sub(&node.reshape(&kept)?)?.exp().mul(&g)?,
    };
    Ok(smallvec![Some(grad)])
}

/// The tangent of a reduction: sums and means are linear; max/min pass their winners'
/// tangents (the mean over ties); logsumexp weights by softmax.
pub(super) fn jvp(op: ReduceOp, axes: &[usize], keepdim: bool, node: &Tensor, t: &Tensor) -> Result<Tensor> {
    let x = &node.inputs()[0];
    let kept = keepdim_shape(x.shape(), axes);
    match op {
        // d Σx = Σ dx, d mean x = mean dx
        ReduceOp::Sum | ReduceOp::Mean => t.reduce(op, axes, keepdim),
        // d max x = Σ [x = max]·dx / #ties
        ReduceOp::Max | ReduceOp::Min => {
            let mask = x.eq(&node.reshape(&kept)?)?;
            let ties = mask.reduce(ReduceOp::Sum, axes, true)?;
            t.mul(&mask)?.reduce(ReduceOp::Sum, axes, true)?.div(&ties)?.reshape(node.shape())
        }
        // d log Σ e^x = Σ softmax(x)·dx
        ReduceOp::LogSumExp => {
            x.sub(&node.reshape(&kept)?)?.exp().mul(t)?.reduce(ReduceOp::Sum, axes, keepdim)
        }
    }
}

impl Tensor {
    /// Reduces over `axes` (sorted, distinct, in range: the public wrappers check).
    pub(crate) fn reduce(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        Tensor::record(Op::Reduce { op, axes: axes.into(), keepdim }, &[self])
    }

    fn reduce_axes(&self, op: ReduceOp, name: &'static str, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut resolved: Shape =
            axes.iter().map(|&a| normalize_axis(name, a, self.shape())).collect::<Result<_>>()?;
        resolved.sort_unstable();
        if resolved.windows(2).any(|w| w[0] == w[1]) {
            crate::bail!(name, "axis listed twice in {axes:?}");
        }
        if matches!(op, ReduceOp::Max | ReduceOp::Min) && resolved.iter().any(|&a| self.shape()[a] == 0) {
            crate::bail!(name, "cannot reduce an empty axis of shape {:?}", self.shape());
        }
        self.reduce(op, &resolved, keepdim)
    }

    /// Sum over `axes` (negative axes count from the end).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::Sum, "sum", axes, keepdim)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::Mean, "mean", axes, keepdim)
    }

    /// Maximum over `axes`.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::Max, "max", axes, keepdim)
    }

    /// Minimum over `axes`.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::Min, "min", axes, keepdim)
    }

    /// log Σ e^x over `axes`, computed stably.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(ReduceOp::LogSumExp, "logsumexp", axes, keepdim)
    }

    /// Variance over `axes`; `unbiased` divides by n − 1 (Bessel), else by n.
    pub fn var(&self, axes: &[isize], keepdim: bool, unbiased: bool) -> Result<Tensor> {
        let mean = self.mean(axes, true)?;
        let squares = self.sub(&mean)?.square();
        let n: usize = squares.numel() / mean.numel().max(1);
        if unbiased && n < 2 {
            crate::bail!(
                "var",
                "unbiased variance needs at least 2 elements per group, shape {:?}",
                self.shape()
            );
        }
        let divisor = if unbiased { n - 1 } else { n } as f64;
        Ok(squares.sum(axes, keepdim)?.mul_scalar(1.0 / divisor))
    }

    /// Sum of all elements (a scalar; 0 for an empty tensor). It cannot fail, so it returns
    /// a `Tensor`; an integer tensor is converted to f32 first, as the unary ops do.
    pub fn sum_all(&self) -> Tensor {
        self.reduce_all(ReduceOp::Sum)
    }

    /// Mean of all elements (a scalar; NaN for an empty tensor). It cannot fail, so it
    /// returns a `Tensor`; an integer tensor is converted to f32 first, as the unary ops do.
    pub fn mean_all(&self) -> Tensor {
        self.reduce_all(ReduceOp::Mean)
    }

    /// Sum or mean over every axis: the axes are in range and the output is one element.
    fn reduce_all(&self, op: ReduceOp) -> Tensor {
        let x = if self.dtype().is_float() { self.clone() } else { self.to_dtype(crate::DType::F32) };
        let axes: Shape = (0..x.rank()).collect();
        Tensor::record_total(Op::Reduce { op, axes, keepdim: false }, &[&x])
    }

    /// Index of the largest value along `axis` (first on ties), for each position of the other
    /// axes in row-major order.
    pub fn argmax(&self, axis: isize) -> Result<Vec<usize>> {
        let a = normalize_axis("argmax", axis, self.shape())?;
        if self.shape()[a] == 0 {
            crate::bail!("argmax", "axis {axis} of shape {:?} is empty", self.shape());
        }
        let mut out = vec![0usize; self.numel() / self.shape()[a]];
        let buffer = self.read();
        with_dtype!(self.dtype(), T => {
            reduce::argmax(crate::buffer::typed::<T>(&buffer), self.shape(), a, &mut out)
        });
        Ok(out)
    }
}

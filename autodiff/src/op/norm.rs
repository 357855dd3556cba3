//! Normalising ops: softmax, log-softmax and layer norm, plus dropout.
//!
//! Each runs a fused kernel forward, and its backward is one more fused op:
//! softmax: dx = y ⊙ (g − Σ g⊙y); log-softmax: dx = g − e^y Σ g;
//! layer norm: dx = rstd·(g − mean g − x̂·mean(g⊙x̂)).
//! Those backward ops have VJPs written with tensor ops, so everything differentiates again.

use super::movement::normalize_axis;
use super::{Arg, Arity, InputGrads, Op, Operand};
use crate::buffer::Elem;
use crate::{Error, Result, Tensor};
use graphgrad_ops::facts::fact::DIFFERENTIABLE;
use graphgrad_ops::{norm, numel, op_facts, softmax, split_at_axis, Shape};
use smallvec::smallvec;

/// Normalising ops, each a fused kernel, and their fused backward ops.
#[derive(Clone, Debug, PartialEq)]
pub enum NormOp {
    /// Softmax along an axis.
    Softmax {
        /// The axis.
        axis: usize,
    },
    /// Log-softmax along an axis.
    LogSoftmax {
        /// The axis.
        axis: usize,
    },
    /// Normalisation over the last `cols` elements (no affine part).
    LayerNorm {
        /// Elements per normalised group.
        cols: usize,
        /// Added to the variance.
        eps: f64,
    },
    /// Softmax's backward in one pass, `y ⊙ (g − Σ g⊙y)` along `axis`; inputs (y, g).
    SoftmaxBackward {
        /// The axis.
        axis: usize,
    },
    /// Log-softmax's backward in one pass, `g − e^y·Σ g` along `axis`; inputs (y, g).
    LogSoftmaxBackward {
        /// The axis.
        axis: usize,
    },
    /// Layer norm's backward in one pass, `rstd·(g − mean g − x̂·mean(g⊙x̂))` over the last
    /// `cols` elements; inputs (x, g).
    LayerNormBackward {
        /// Elements per normalised group.
        cols: usize,
        /// Added to the variance.
        eps: f64,
    },
}

op_facts! { NormOp;
    Softmax { axis: 0 } => "softmax", DIFFERENTIABLE;
    LogSoftmax { axis: 0 } => "log_softmax", DIFFERENTIABLE;
    LayerNorm { cols: 1, eps: 1e-5 } => "layer_norm", DIFFERENTIABLE;
    SoftmaxBackward { axis: 0 } => "softmax_backward", DIFFERENTIABLE;
    LogSoftmaxBackward { axis: 0 } => "log_softmax_backward", DIFFERENTIABLE;
    LayerNormBackward { cols: 1, eps: 1e-5 } => "layer_norm_backward", DIFFERENTIABLE;
}

impl NormOp {
    pub(super) fn arity(&self) -> Arity {
        match self {
            NormOp::Softmax { .. } | NormOp::LogSoftmax { .. } | NormOp::LayerNorm { .. } => {
                Arity::Exactly(1)
            }
            NormOp::SoftmaxBackward { .. }
            | NormOp::LogSoftmaxBackward { .. }
            | NormOp::LayerNormBackward { .. } => Arity::Exactly(2),
        }
    }

    /// The output has the first operand's shape; the backward ops' two operands agree.
    pub(super) fn infer(&self, ins: &[Operand<'_>]) -> Result<Shape> {
        let name = self.name();
        let x = ins[0].shape;
        if let Some(other) = ins.get(1).filter(|g| g.shape != x) {
            return Err(Error::ShapeMismatch { op: name, lhs: x.to_vec(), rhs: other.shape.to_vec() });
        }
        match self {
            NormOp::Softmax { axis }
            | NormOp::LogSoftmax { axis }
            | NormOp::SoftmaxBackward { axis }
            | NormOp::LogSoftmaxBackward { axis } => {
                if *axis >= x.len() {
                    return Err(Error::AxisOutOfRange { op: name, axis: *axis as isize, shape: x.to_vec() });
                }
            }
            NormOp::LayerNorm { cols, .. } | NormOp::LayerNormBackward { cols, .. } => {
                if *cols == 0 || !numel(x).is_multiple_of(*cols) {
                    crate::bail!(name, "groups of {cols} elements do not tile shape {x:?}");
                }
            }
        }
        Ok(x.into())
    }

    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        let x = ins[0];
        match self {
            NormOp::Softmax { axis } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                softmax::softmax(x.data::<T>(), outer, len, inner, out)
            }
            NormOp::LogSoftmax { axis } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                softmax::log_softmax(x.data::<T>(), outer, len, inner, out)
            }
            NormOp::LayerNorm { cols, eps } => {
                let rows = numel(shape) / cols;
                let (mut mean, mut rstd) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
                let eps = T::from_f64(*eps);
                norm::layer_norm(x.data::<T>(), rows, *cols, None, None, eps, out, &mut mean, &mut rstd)
            }
            NormOp::SoftmaxBackward { axis } => {
                let (outer, len, inner) = split_at_axis(shape, *axis);
                softmax::softmax_backward(x.data::<T>(), ins[1].data::<T>(), outer, len, inner, out)
            }
            NormOp::LogSoftmaxBackward { axis } => {
                let (outer, len, inner) = split_at_axis(shape, *axis);
                softmax::log_softmax_backward(x.data::<T>(), ins[1].data::<T>(), outer, len, inner, out)
            }
            NormOp::LayerNormBackward { cols, eps } => {
                let rows = numel(shape) / cols;
                let (mut mean, mut rstd) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
                let (x, g, eps) = (x.data::<T>(), ins[1].data::<T>(), T::from_f64(*eps));
                // The statistics again (the normalised values land in `out`, overwritten next).
                norm::layer_norm(x, rows, *cols, None, None, eps, out, &mut mean, &mut rstd);
                norm::layer_norm_backward(g, x, &mean, &rstd, None, rows, *cols, out, None, None)
            }
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let inputs = node.inputs();
        let x = &inputs[0];
        let sum = |t: &Tensor, axis: usize| t.sum(&[axis as isize], true);
        let grads = match *self {
            NormOp::Softmax { axis } => {
                smallvec![Some(fused_backward(NormOp::SoftmaxBackward { axis }, node, g)?)]
            }
            NormOp::LogSoftmax { axis } => {
                smallvec![Some(fused_backward(NormOp::LogSoftmaxBackward { axis }, node, g)?)]
            }
            NormOp::LayerNorm { cols, eps } => {
                smallvec![Some(fused_backward(NormOp::LayerNormBackward { cols, eps }, x, g)?)]
            }
            // dx = y ⊙ (gy − r), r = Σ gy⊙y: the map gy → dx is the op itself (symmetric), and
            // d⟨g, dx⟩/dy = g ⊙ (gy − r) − gy·Σ g⊙y
            NormOp::SoftmaxBackward { axis } => {
                let (y, gy) = (x, &inputs[1]);
                let r = sum(&gy.mul(y)?, axis)?;
                let s = sum(&g.mul(y)?, axis)?;
                let dy = g.mul(&gy.sub(&r)?)?.sub(&gy.mul(&s)?)?;
                smallvec![Some(dy), Some(fused_backward(NormOp::SoftmaxBackward { axis }, y, g)?)]
            }
            // dx = gy − e^y Σ gy: d⟨g, dx⟩/dgy = g − Σ g⊙e^y, d⟨g, dx⟩/dy = −g ⊙ e^y Σ gy
            NormOp::LogSoftmaxBackward { axis } => {
                let (y, gy) = (x, &inputs[1]);
                let e = y.exp();
                let dy = g.mul(&e)?.mul(&sum(gy, axis)?)?.neg();
                let dgy = g.sub(&sum(&g.mul(&e)?, axis)?)?;
                smallvec![Some(dy), Some(dgy)]
            }
            // dx = r·P(gy) with P(u) = u − ū − x̂·mean(u⊙x̂), an orthogonal projection, so
            // d⟨g, dx⟩/dgy = r·P(g), the op itself. With c_u = mean(u⊙x̂):
            // d⟨g, dx⟩/dx = r²·(x̂·(3·c_gy·c_g − mean(g⊙gy) + ḡ·ḡy) − c_g·(gy − ḡy) − c_gy·(g − ḡ))
            NormOp::LayerNormBackward { cols, eps } => {
                let dx = layer_norm_backward_dx(x, &inputs[1], g, cols, eps)?;
                smallvec![Some(dx), Some(fused_backward(NormOp::LayerNormBackward { cols, eps }, x, g)?)]
            }
        };
        Ok(grads)
    }
}

/// d⟨g, LayerNormBackward(x, gy)⟩/dx (see the VJP). That op is the gradient in x of
/// ⟨gy, layer_norm(x)⟩, so its Jacobian in x is a Hessian, symmetric: this is also its JVP in x
/// for the tangent `g`.
fn layer_norm_backward_dx(x: &Tensor, gy: &Tensor, g: &Tensor, cols: usize, eps: f64) -> Result<Tensor> {
    let rows = x.numel().checked_div(cols).unwrap_or(0);
    let flat = |t: &Tensor| t.reshape(&[rows, cols]);
    let mean = |t: &Tensor| t.mean(&[-1], true);
    let (x2, gy2, g2) = (flat(x)?, flat(gy)?, flat(g)?);
    let centered = x2.sub(&mean(&x2)?)?;
    let var_eps = mean(&centered.square())?.add_scalar(eps);
    let x_hat = centered.mul(&var_eps.pow_scalar(-0.5))?;
    let (gy_bar, g_bar) = (mean(&gy2)?, mean(&g2)?);
    let (c_gy, c_g) = (mean(&gy2.mul(&x_hat)?)?, mean(&g2.mul(&x_hat)?)?);
    let coeff = c_gy.mul(&c_g)?.mul_scalar(3.0).sub(&mean(&g2.mul(&gy2)?)?)?.add(&g_bar.mul(&gy_bar)?)?;
    let inner = x_hat.mul(&coeff)?.sub(&c_g.mul(&gy2.sub(&gy_bar)?)?)?.sub(&c_gy.mul(&g2.sub(&g_bar)?)?)?;
    let dx = var_eps.recip().mul(&inner)?.reshape(x.shape())?;
    Ok(dx)
}

impl NormOp {
    /// Tangents: softmax's and layer norm's Jacobians are symmetric, so their tangents are
    /// their fused backward ops applied to the input's tangent; the backward ops are bilinear
    /// in (saved value, gradient) up to the terms written out here.
    pub(super) fn jvp(&self, node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let inputs = node.inputs();
        let x = &inputs[0];
        let sum = |t: &Tensor, axis: usize| t.sum(&[axis as isize], true);
        let add = |a: Option<Tensor>, b: Option<Tensor>| -> Result<Option<Tensor>> {
            Ok(match (a, b) {
                (Some(a), Some(b)) => Some(a.add(&b)?),
                (a, b) => a.or(b),
            })
        };
        let (tx, tg) = (t[0].as_ref(), t.get(1).and_then(Option::as_ref));
        match *self {
            // d softmax = y ⊙ (dx − Σ y⊙dx)
            NormOp::Softmax { axis } => {
                tx.map(|tx| fused_backward(NormOp::SoftmaxBackward { axis }, node, tx)).transpose()
            }
            // d log_softmax = dx − Σ e^y⊙dx
            NormOp::LogSoftmax { axis } => tx.map(|tx| tx.sub(&sum(&node.exp().mul(tx)?, axis)?)).transpose(),
            // d x̂ = rstd·(dx − mean dx − x̂·mean(dx⊙x̂))
            NormOp::LayerNorm { cols, eps } => {
                tx.map(|tx| fused_backward(NormOp::LayerNormBackward { cols, eps }, x, tx)).transpose()
            }
            // d[y ⊙ (gy − Σ gy⊙y)] = dy ⊙ (gy − r) + y ⊙ (dgy − Σ dgy⊙y) − y·Σ gy⊙dy
            NormOp::SoftmaxBackward { axis } => {
                let (y, gy) = (x, &inputs[1]);
                let from_y = tx
                    .map(|ty| {
                        let r = sum(&gy.mul(y)?, axis)?;
                        ty.mul(&gy.sub(&r)?)?.sub(&y.mul(&sum(&gy.mul(ty)?, axis)?)?)
                    })
                    .transpose()?;
                let from_g =
                    tg.map(|tg| fused_backward(NormOp::SoftmaxBackward { axis }, y, tg)).transpose()?;
                add(from_y, from_g)
            }
            // d[gy − e^y Σ gy] = dgy − e^y Σ dgy − e^y⊙dy·Σ gy
            NormOp::LogSoftmaxBackward { axis } => {
                let (y, gy) = (x, &inputs[1]);
                let from_y =
                    tx.map(|ty| Ok::<_, Error>(y.exp().mul(ty)?.mul(&sum(gy, axis)?)?.neg())).transpose()?;
                let from_g =
                    tg.map(|tg| fused_backward(NormOp::LogSoftmaxBackward { axis }, y, tg)).transpose()?;
                add(from_y, from_g)
            }
            // linear in gy; in x, the symmetric Hessian of ⟨gy, layer_norm(x)⟩
            NormOp::LayerNormBackward { cols, eps } => {
                let gy = &inputs[1];
                let from_x = tx.map(|tx| layer_norm_backward_dx(x, gy, tx, cols, eps)).transpose()?;
                let from_g = tg
                    .map(|tg| fused_backward(NormOp::LayerNormBackward { cols, eps }, x, tg))
                    .transpose()?;
                add(from_x, from_g)
            }
        }
    }
}

/// Records a fused backward op on (saved tensor, incoming gradient), of the gradient's shape.
fn fused_backward(op: NormOp, saved: &Tensor, g: &Tensor) -> Result<Tensor> {
    Tensor::record(Op::Norm(op), &[saved, g])
}

impl Tensor {
    /// e^x / Σ e^x along `axis`, computed stably.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        let axis = normalize_axis("softmax", axis, self.shape())?;
        Tensor::record(Op::Norm(NormOp::Softmax { axis }), &[self])
    }

    /// x − log Σ e^x along `axis`, computed stably.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let axis = normalize_axis("log_softmax", axis, self.shape())?;
        Tensor::record(Op::Norm(NormOp::LogSoftmax { axis }), &[self])
    }

    /// Layer normalisation over the trailing `normalized_shape` dimensions (biased variance,
    /// `eps` added to it), then `· weight + bias` when given (both of `normalized_shape`).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let k = normalized_shape.len();
        if k == 0 || k > self.rank() || &self.shape()[self.rank() - k..] != normalized_shape {
            return Err(Error::ShapeMismatch {
                op: "layer_norm",
                lhs: self.shape().into(),
                rhs: normalized_shape.into(),
            });
        }
        if eps.is_nan() || eps < 0.0 {
            crate::bail!("layer_norm", "eps must be non-negative, got {eps}");
        }
        for p in [weight, bias].into_iter().flatten() {
            if p.shape() != normalized_shape {
                return Err(Error::ShapeMismatch {
                    op: "layer_norm",
                    lhs: normalized_shape.into(),
                    rhs: p.shape().into(),
                });
            }
        }
        let op = NormOp::LayerNorm { cols: numel(normalized_shape), eps };
        crate::reported_as("layer_norm", || {
            let mut y = Tensor::record(Op::Norm(op), &[self])?;
            if let Some(w) = weight {
                y = y.mul(w)?;
            }
            if let Some(b) = bias {
                y = y.add(b)?;
            }
            Ok(y)
        })
    }

    /// Inverted dropout: in training, zeroes each element with probability `p` and scales the
    /// rest by 1/(1−p); the identity when `training` is false. The mask keeps an element where
    /// a uniform sample from `generator` is at least `p`; inside a compiled step the
    /// generator's state is program state, so every call draws a new mask.
    pub fn dropout(&self, p: f64, training: bool, generator: &crate::Generator) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            crate::bail!("dropout", "probability must be in [0, 1], got {p}");
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        if p == 1.0 {
            return Ok(self.mul_scalar(0.0));
        }
        let keep = generator.uniform(self.shape(), self.dtype())?.ge_scalar(p).mul_scalar(1.0 / (1.0 - p));
        self.mul(&keep)
    }
}

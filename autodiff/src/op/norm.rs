//! Normalising ops: softmax, log-softmax and layer norm (fused kernels forward), plus dropout.
//!
//! Backward rules are written with tensor ops (so they differentiate again):
//! softmax: dx = y ⊙ (g − Σ g⊙y); log-softmax: dx = g − e^y Σ g;
//! layer norm (x̂ = y): dx = rstd·(g − mean g − x̂·mean(g⊙x̂)).

use super::movement::normalize_axis;
use super::{Arg, InputGrads, Op};
use crate::buffer::{compute, Buffer};
use crate::{Error, Result, Tensor};
use graphgrad_ops::{norm, numel, random, softmax, split_at_axis, Element, Shape};
use rand_chacha::ChaCha8Rng;
use smallvec::smallvec;

pub(super) fn forward(op: &Op, inputs: &[Arg<'_>], shape: &Shape) -> Buffer {
    let x = inputs[0];
    compute!(x.buf.dtype(), numel(shape), |T, out| {
        match op {
            Op::Softmax { axis } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                softmax::softmax(x.data::<T>(), outer, len, inner, &mut out)
            }
            Op::LogSoftmax { axis } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                softmax::log_softmax(x.data::<T>(), outer, len, inner, &mut out)
            }
            Op::LayerNorm { cols, eps } => {
                let rows = numel(shape).checked_div(*cols).unwrap_or(0);
                let (mut mean, mut rstd) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
                let eps = T::from_f64(*eps);
                norm::layer_norm(x.data::<T>(), rows, *cols, None, None, eps, &mut out, &mut mean, &mut rstd)
            }
            _ => unreachable!("internal invariant: {op} is not a normalising op"),
        }
    })
}

pub(super) fn vjp(node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let x = &node.inputs()[0];
    let y = node;
    let grad = match *node.op() {
        // dx = y ⊙ (g − Σ g⊙y)
        Op::Softmax { axis } => {
            let dot = g.mul(y)?.sum(&[axis as isize], true)?;
            y.mul(&g.sub(&dot)?)?
        }
        // dx = g − e^y Σ g
        Op::LogSoftmax { axis } => g.sub(&y.exp().mul(&g.sum(&[axis as isize], true)?)?)?,
        // dx = rstd·(g − mean g − x̂·mean(g⊙x̂)), rstd recomputed from x so it differentiates
        Op::LayerNorm { cols, eps } => {
            let rows = x.numel().checked_div(cols).unwrap_or(0);
            let x2 = x.reshape(&[rows, cols])?;
            let centered = x2.sub(&x2.mean(&[-1], true)?)?;
            let rstd = centered.square().mean(&[-1], true)?.add_scalar(eps).pow_scalar(-0.5);
            let (g2, y2) = (g.reshape(&[rows, cols])?, y.reshape(&[rows, cols])?);
            let projection = y2.mul(&g2.mul(&y2)?.mean(&[-1], true)?)?;
            let inner = g2.sub(&g2.mean(&[-1], true)?)?.sub(&projection)?;
            rstd.mul(&inner)?.reshape(x.shape())?
        }
        ref other => unreachable!("internal invariant: {other} is not a normalising op"),
    };
    Ok(smallvec![Some(grad)])
}

impl Tensor {
    /// e^x / Σ e^x along `axis`, computed stably.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        let axis = normalize_axis("softmax", axis, self.shape())?;
        Ok(Tensor::record(Op::Softmax { axis }, &[self], self.shape().into()))
    }

    /// x − log Σ e^x along `axis`, computed stably.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let axis = normalize_axis("log_softmax", axis, self.shape())?;
        Ok(Tensor::record(Op::LogSoftmax { axis }, &[self], self.shape().into()))
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
        let op = Op::LayerNorm { cols: numel(normalized_shape), eps };
        let mut y = Tensor::record(op, &[self], self.shape().into());
        if let Some(w) = weight {
            y = y.mul(w)?;
        }
        if let Some(b) = bias {
            y = y.add(b)?;
        }
        Ok(y)
    }

    /// Inverted dropout: in training, zeroes each element with probability `p` and scales the
    /// rest by 1/(1−p); the identity when `training` is false. Inside a step traced by
    /// `compile`, training-mode dropout is an error (the mask would be frozen into the trace).
    pub fn dropout(&self, p: f64, training: bool, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            crate::bail!("dropout", "probability must be in [0, 1], got {p}");
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        if crate::mode::tracing() {
            // The mask would be a constant of the trace, reused by every replay.
            crate::bail!(
                "dropout",
                "a compiled step cannot use training-mode dropout (p = {p}): its random mask would be \
                 frozen into the trace; run the step eagerly or with dropout in eval mode"
            );
        }
        if p == 1.0 {
            return Ok(self.mul_scalar(0.0));
        }
        let mask = crate::buffer::with_dtype!(self.dtype(), T => {
            let mut keep = vec![T::ZERO; self.numel()];
            random::fill_bernoulli(rng, &mut keep, 1.0 - p);
            let scale = T::from_f64(1.0 / (1.0 - p));
            keep.iter_mut().for_each(|v| *v *= scale);
            Tensor::from_vec(keep, self.shape())?
        });
        self.mul(&mask)
    }
}

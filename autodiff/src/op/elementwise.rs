//! Elementwise ops: unary maps, broadcasting binary arithmetic and comparisons, `where`.
//!
//! Shape rule: NumPy broadcasting. Backward: the local derivative times `g`, summed back to
//! each input's shape (`sum_to_shape`) where the input was broadcast.

use super::movement::sum_to_shape;
use super::{Arg, InputGrads, Op, Operand};
use crate::buffer::Elem;
use crate::{DType, Error, Result, Tensor};
use graphgrad_ops::binary::{self, BinaryOp};
use graphgrad_ops::unary::{self, UnaryOp};
use graphgrad_ops::{broadcast_shapes, Shape};
use smallvec::smallvec;
use std::f64::consts::PI;

/// NumPy broadcasting of every operand (binary ops and `where`).
pub(super) fn infer_broadcast(op: &'static str, ins: &[Operand<'_>]) -> Result<Shape> {
    let mut shape = Shape::from_slice(ins[0].shape);
    for v in &ins[1..] {
        if v.shape == shape.as_slice() {
            continue;
        }
        shape = broadcast_shapes(&shape, v.shape).ok_or_else(|| Error::ShapeMismatch {
            op,
            lhs: shape.to_vec(),
            rhs: v.shape.to_vec(),
        })?;
    }
    Ok(shape)
}

pub(super) fn unary_forward<T: Elem>(op: UnaryOp, ins: &[Arg<'_>], out: &mut [T]) {
    unary::unary(op, ins[0].data::<T>(), out)
}

pub(super) fn binary_forward<T: Elem>(op: BinaryOp, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
    let (x, y) = (ins[0], ins[1]);
    binary::binary(op, x.data::<T>(), x.shape, y.data::<T>(), y.shape, out, shape)
}

pub(super) fn where_forward<T: Elem>(ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
    let (c, a, b) = (ins[0], ins[1], ins[2]);
    binary::where_select(c.data::<T>(), c.shape, a.data::<T>(), a.shape, b.data::<T>(), b.shape, out, shape)
}

/// d/da where(c, a, b) = [c], d/db = [!c]; the condition gets none.
pub(super) fn where_vjp(inputs: &[Tensor], g: &Tensor) -> Result<InputGrads> {
    let (cond, a, b) = (&inputs[0], &inputs[1], &inputs[2]);
    let zero = Tensor::scalar_of(0.0, g.dtype());
    let ga = Tensor::where_(cond, g, &zero)?;
    let gb = Tensor::where_(cond, &zero, g)?;
    Ok(smallvec![None, Some(sum_to_shape(&ga, a.shape())?), Some(sum_to_shape(&gb, b.shape())?)])
}

pub(super) fn unary_vjp(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        // d/dx -x = -1
        UnaryOp::Neg => Ok(g.neg()),
        // d/dx |x| = sign(x)
        UnaryOp::Abs => g.mul(&x.sign()),
        // sign is piecewise constant (and never recorded)
        UnaryOp::Sign => Ok(g.mul_scalar(0.0)),
        // d/dx e^x = e^x
        UnaryOp::Exp => g.mul(y),
        // d/dx ln x = 1/x
        UnaryOp::Log => g.div(x),
        // d/dx √x = 1/(2√x)
        UnaryOp::Sqrt => Ok(g.div(y)?.mul_scalar(0.5)),
        // d/dx 1/x = -1/x²
        UnaryOp::Recip => Ok(g.mul(&y.square())?.neg()),
        // d/dx x² = 2x
        UnaryOp::Square => Ok(g.mul(x)?.mul_scalar(2.0)),
        // d/dx relu(x) = [x > 0] = [relu(x) > 0] (NaN and −0 alike): read from the output, so
        // the input need not be kept for the backward pass (and a compiled matmul or
        // convolution can apply the relu in its epilogue)
        UnaryOp::Relu => g.mul(&y.gt_scalar(0.0)),
        // d/dx σ(x) = σ(x)(1 − σ(x))
        UnaryOp::Sigmoid => g.mul(&y.unary(UnaryOp::SigmoidGrad)),
        // d/dy y(1 − y) = 1 − 2y
        UnaryOp::SigmoidGrad => g.mul(&x.mul_scalar(-2.0).add_scalar(1.0)),
        // d/dx tanh x = 1 − tanh² x
        UnaryOp::Tanh => g.mul(&y.unary(UnaryOp::TanhGrad)),
        // d/dy (1 − y²) = −2y
        UnaryOp::TanhGrad => g.mul(&x.mul_scalar(-2.0)),
        // d/dx xΦ(x) = Φ(x) + x·φ(x), one fused pass
        UnaryOp::Gelu => g.mul(&x.unary(UnaryOp::GeluGrad)),
        // d/dx (Φ(x) + x·φ(x)) = 2φ(x) + x·φ'(x) = φ(x)·(2 − x²)
        UnaryOp::GeluGrad => {
            let pdf = x.square().mul_scalar(-0.5).exp().mul_scalar(1.0 / (2.0 * PI).sqrt());
            g.mul(&pdf.mul(&x.square().neg().add_scalar(2.0))?)
        }
        // d/dx erf x = 2/√π · e^{−x²}
        UnaryOp::Erf => g.mul(&x.square().neg().exp().mul_scalar(2.0 / PI.sqrt())),
        // d/dx ln(1 + e^x) = σ(x)
        UnaryOp::Softplus => g.mul(&x.sigmoid()),
        // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x)))
        UnaryOp::Silu => {
            let s = x.sigmoid();
            g.mul(&s.mul(&x.mul(&s.neg().add_scalar(1.0))?.add_scalar(1.0))?)
        }
        // d/dx ln σ(x) = 1 − σ(x) = σ(−x)
        UnaryOp::LogSigmoid => g.mul(&x.neg().sigmoid()),
        // d/dx leaky_relu(x) = 1 for x > 0, slope otherwise
        UnaryOp::LeakyRelu(slope) => g.mul(&x.gt_scalar(0.0).mul_scalar(1.0 - slope).add_scalar(slope)),
        // d/dx elu(x) = 1 for x > 0, elu(x) + α otherwise
        UnaryOp::Elu(alpha) => {
            let negative_side = g.mul(&y.add_scalar(alpha))?;
            Tensor::where_(&x.gt_scalar(0.0), g, &negative_side)
        }
        // d/dx (x + c) = 1
        UnaryOp::AddScalar(_) => Ok(g.clone()),
        // d/dx c·x = c
        UnaryOp::MulScalar(c) => Ok(g.mul_scalar(c)),
        // d/dx x^p = p·x^{p−1}; 0 for p = 0, also at x = 0 (PyTorch's convention, not 0·∞)
        UnaryOp::PowScalar(0.0) => Ok(g.mul_scalar(0.0)),
        UnaryOp::PowScalar(p) => g.mul(&x.pow_scalar(p - 1.0).mul_scalar(p)),
        // d/dx clamp(x) = [min < x < max]: 0 at the bounds, as PyTorch's clamp and hardtanh
        UnaryOp::Clamp { min, max } => g.mul(&x.gt_scalar(min).mul(&x.lt_scalar(max))?),
    }
}

pub(super) fn binary_vjp(op: BinaryOp, a: &Tensor, b: &Tensor, y: &Tensor, g: &Tensor) -> Result<InputGrads> {
    // Each closure is evaluated only for an input that wants a gradient.
    let (ga, gb): (Option<Tensor>, Option<Tensor>) = match op {
        // d(a + b) = da + db
        BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
        // d(a − b) = da − db
        BinaryOp::Sub => (Some(g.clone()), Some(g.neg())),
        // d(a·b) = b·da + a·db
        BinaryOp::Mul => (
            a.requires_grad().then(|| g.mul(b)).transpose()?,
            b.requires_grad().then(|| g.mul(a)).transpose()?,
        ),
        // d(a/b) = da/b − (a/b)·db/b
        BinaryOp::Div => (
            a.requires_grad().then(|| g.div(b)).transpose()?,
            b.requires_grad().then(|| g.mul(y)?.div(b).map(|t| t.neg())).transpose()?,
        ),
        // d(a^b) = b·a^{b−1}·da + a^b·ln a·db (see `pow_partials` for a = 0 and b = 0)
        BinaryOp::Pow => (
            a.requires_grad().then(|| g.mul(&pow_partial_base(a, b)?)).transpose()?,
            b.requires_grad().then(|| g.mul(&pow_partial_exponent(a, b, y)?)).transpose()?,
        ),
        // The larger input takes the gradient; ties split it evenly.
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let wins = if op == BinaryOp::Maximum { a.gt(b)? } else { a.lt(b)? };
            let share_a = wins.add(&a.eq(b)?.mul_scalar(0.5))?;
            let ga = g.mul(&share_a)?;
            let gb = g.mul(&share_a.neg().add_scalar(1.0))?;
            (Some(ga), Some(gb))
        }
        // comparisons are piecewise constant (and never recorded with a gradient)
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (None, None)
        }
    };
    let reduce = |grad: Option<Tensor>, input: &Tensor| -> Result<Option<Tensor>> {
        match grad {
            Some(grad) if input.requires_grad() => Ok(Some(sum_to_shape(&grad, input.shape())?)),
            _ => Ok(None),
        }
    };
    Ok(smallvec![reduce(ga, a)?, reduce(gb, b)?])
}

// The partial derivatives of y = a^b, with PyTorch's values where the formulas give 0·∞ or
// NaN: ∂y/∂a = 0 where b = 0 (a^0 is constant, even at a = 0), and ∂y/∂b = 0 where a = 0 and
// b ≥ 0 (PyTorch's pow_backward_exponent). The branch not taken is computed on a stand-in
// operand (1), so its value, and its derivative in a second-order gradient, stay finite.

/// ∂(a^b)/∂a = b·a^{b−1}, 0 where b = 0.
fn pow_partial_base(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let zero_exponent = b.eq_scalar(0.0);
    let one = Tensor::scalar_of(1.0, a.dtype());
    let base = Tensor::where_(&zero_exponent, &one, a)?;
    let partial = base.pow(&b.add_scalar(-1.0))?.mul(b)?;
    Tensor::where_(&zero_exponent, &Tensor::scalar_of(0.0, a.dtype()), &partial)
}

/// ∂(a^b)/∂b = a^b·ln a, 0 where a = 0 and b ≥ 0.
fn pow_partial_exponent(a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Tensor> {
    let zero_base = a.eq_scalar(0.0).mul(&b.ge_scalar(0.0))?;
    let one = Tensor::scalar_of(1.0, a.dtype());
    let log_base = Tensor::where_(&zero_base, &one, a)?.log();
    Tensor::where_(&zero_base, &Tensor::scalar_of(0.0, a.dtype()), &y.mul(&log_base)?)
}

/// Elementwise maps have a diagonal Jacobian: the tangent is the local derivative times the
/// input's tangent, which is what the VJP computes for `g = t`.
pub(super) fn unary_jvp(op: UnaryOp, x: &Tensor, y: &Tensor, t: &Tensor) -> Result<Tensor> {
    unary_vjp(op, x, y, t)
}

/// The tangent of `a ∘ b`: each input's local derivative times its tangent (broadcast to the
/// output), summed.
pub(super) fn binary_jvp(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    ta: Option<&Tensor>,
    tb: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let (da, db): (Option<Tensor>, Option<Tensor>) = match op {
        // d(a ± b) = da ± db
        BinaryOp::Add => (ta.cloned(), tb.cloned()),
        BinaryOp::Sub => (ta.cloned(), tb.map(Tensor::neg)),
        // d(a·b) = b·da + a·db
        BinaryOp::Mul => (ta.map(|t| t.mul(b)).transpose()?, tb.map(|t| a.mul(t)).transpose()?),
        // d(a/b) = da/b − (a/b)·db/b
        BinaryOp::Div => (
            ta.map(|t| t.div(b)).transpose()?,
            tb.map(|t| Ok::<_, Error>(y.mul(t)?.div(b)?.neg())).transpose()?,
        ),
        // d(a^b) = b·a^{b−1}·da + a^b·ln a·db
        BinaryOp::Pow => (
            ta.map(|t| t.mul(&pow_partial_base(a, b)?)).transpose()?,
            tb.map(|t| t.mul(&pow_partial_exponent(a, b, y)?)).transpose()?,
        ),
        // the larger input's tangent; ties take the mean
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let wins = if op == BinaryOp::Maximum { a.gt(b)? } else { a.lt(b)? };
            let share_a = wins.add(&a.eq(b)?.mul_scalar(0.5))?;
            (
                ta.map(|t| t.mul(&share_a)).transpose()?,
                tb.map(|t| t.mul(&share_a.neg().add_scalar(1.0))).transpose()?,
            )
        }
        // piecewise constant
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (None, None)
        }
    };
    let sum = match (da, db) {
        (Some(x), Some(z)) => x.add(&z)?,
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return Ok(None),
    };
    Ok(Some(sum.expand(y.shape())?))
}

/// d where(c, a, b) = where(c, da, db).
pub(super) fn where_jvp(inputs: &[Tensor], y: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    if t[1].is_none() && t[2].is_none() {
        return Ok(None);
    }
    let zero = Tensor::full(&[], 0.0, y.dtype())?;
    let (ta, tb) = (t[1].as_ref().unwrap_or(&zero), t[2].as_ref().unwrap_or(&zero));
    Ok(Some(Tensor::where_(&inputs[0], ta, tb)?.expand(y.shape())?))
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Tensor {
                    self.unary($op)
                }
            )*
        }
    };
}

unary_methods! {
    /// −x
    neg => UnaryOp::Neg;
    /// |x|
    abs => UnaryOp::Abs;
    /// −1, 0 or 1 (no gradient).
    sign => UnaryOp::Sign;
    /// e^x
    exp => UnaryOp::Exp;
    /// Natural logarithm.
    log => UnaryOp::Log;
    /// Square root.
    sqrt => UnaryOp::Sqrt;
    /// 1/x
    recip => UnaryOp::Recip;
    /// x²
    square => UnaryOp::Square;
    /// max(x, 0)
    relu => UnaryOp::Relu;
    /// 1 / (1 + e^−x)
    sigmoid => UnaryOp::Sigmoid;
    /// Hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// x·Φ(x), the exact (erf) GELU.
    gelu => UnaryOp::Gelu;
    /// The error function.
    erf => UnaryOp::Erf;
    /// ln(1 + e^x)
    softplus => UnaryOp::Softplus;
    /// x·σ(x), the SiLU (swish).
    silu => UnaryOp::Silu;
    /// ln σ(x), computed stably.
    log_sigmoid => UnaryOp::LogSigmoid;
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident, $scalar:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self, other: &Tensor) -> Result<Tensor> {
                    self.binary($op, other)
                }

                $(#[$doc])*
                /// (`other` a scalar.)
                pub fn $scalar(&self, other: f64) -> Tensor {
                    self.with_scalar($op, other, false)
                }
            )*
        }
    };
}

binary_methods! {
    /// max(a, b) elementwise, broadcasting.
    maximum, maximum_scalar => BinaryOp::Maximum;
    /// min(a, b) elementwise, broadcasting.
    minimum, minimum_scalar => BinaryOp::Minimum;
    /// 1.0 where a == b, else 0.0 (no gradient).
    eq, eq_scalar => BinaryOp::Eq;
    /// 1.0 where a != b, else 0.0 (no gradient).
    ne, ne_scalar => BinaryOp::Ne;
    /// 1.0 where a < b, else 0.0 (no gradient).
    lt, lt_scalar => BinaryOp::Lt;
    /// 1.0 where a <= b, else 0.0 (no gradient).
    le, le_scalar => BinaryOp::Le;
    /// 1.0 where a > b, else 0.0 (no gradient).
    gt, gt_scalar => BinaryOp::Gt;
    /// 1.0 where a >= b, else 0.0 (no gradient).
    ge, ge_scalar => BinaryOp::Ge;
}

impl Tensor {
    /// Applies an elementwise function. An integer tensor is converted to f32 first (as
    /// PyTorch promotes integers to its default float type).
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        Tensor::record_total(Op::Unary(op), &[&self.float_or_f32()])
    }

    /// `op(self, c)`, or `op(c, self)` with `scalar_first`: a binary op whose other operand is
    /// a scalar of this tensor's type, which broadcasts to any shape, so it cannot fail.
    pub(crate) fn with_scalar(&self, op: BinaryOp, c: f64, scalar_first: bool) -> Tensor {
        let x = self.float_or_f32();
        let c = Tensor::scalar_of(c, x.dtype());
        let operands = if scalar_first { [&c, &x] } else { [&x, &c] };
        Tensor::record_total(Op::Binary(op), &operands)
    }

    /// This tensor, converted to f32 when it holds integers.
    fn float_or_f32(&self) -> Tensor {
        if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(DType::F32)
        }
    }

    /// Applies an elementwise function of two broadcast operands.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        Tensor::record(Op::Binary(op), &[self, other])
    }

    /// a + b, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, other)
    }

    /// a − b, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, other)
    }

    /// a · b elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, other)
    }

    /// a ^ b elementwise, broadcasting.
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Pow, other)
    }

    /// a / b elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, other)
    }

    /// x + c
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::AddScalar(c))
    }

    /// x · c
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::MulScalar(c))
    }

    /// x − c
    pub fn sub_scalar(&self, c: f64) -> Tensor {
        self.add_scalar(-c)
    }

    /// x / c (a true division, as PyTorch's `x / c`, not a product with 1/c).
    pub fn div_scalar(&self, c: f64) -> Tensor {
        self.with_scalar(BinaryOp::Div, c, false)
    }

    /// c − x
    pub fn rsub_scalar(&self, c: f64) -> Tensor {
        self.with_scalar(BinaryOp::Sub, c, true)
    }

    /// c / x
    pub fn rdiv_scalar(&self, c: f64) -> Tensor {
        self.with_scalar(BinaryOp::Div, c, true)
    }

    /// x ^ p
    pub fn pow_scalar(&self, p: f64) -> Tensor {
        self.unary(UnaryOp::PowScalar(p))
    }

    /// x for x > 0, `slope`·x otherwise.
    pub fn leaky_relu(&self, slope: f64) -> Tensor {
        self.unary(UnaryOp::LeakyRelu(slope))
    }

    /// x for x > 0, `alpha`·(e^x − 1) otherwise.
    pub fn elu(&self, alpha: f64) -> Tensor {
        self.unary(UnaryOp::Elu(alpha))
    }

    /// Values limited to `[min, max]` (errors when min > max). The gradient is PyTorch's: 1
    /// strictly inside the bounds, 0 at and beyond them.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min > max || min.is_nan() || max.is_nan() {
            crate::bail!("clamp", "min {min:?} must not exceed max {max:?}");
        }
        Ok(self.unary(UnaryOp::Clamp { min, max }))
    }

    /// [`clamp`](Self::clamp) under PyTorch's other name for it (`F.hardtanh`).
    pub fn hardtanh(&self, min: f64, max: f64) -> Result<Tensor> {
        crate::error::reported_as("hardtanh", || self.clamp(min, max))
    }

    /// `cond != 0 ? a : b` elementwise, all three broadcast together (like `torch.where`).
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Tensor::record(Op::Where, &[cond, a, b])
    }

    /// `value` where `mask != 0`, else `self` (like `masked_fill`).
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let fill = Tensor::scalar_of(value, self.dtype());
        Tensor::where_(mask, &fill, self).map_err(|e| e.called_as("masked_fill"))
    }
}

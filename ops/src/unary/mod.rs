//! Elementwise unary maps: the [`UnaryOp`] enum (scalar definition, PyTorch-style names) and
//! the [`unary`] / [`unary_inplace`] kernels.
//!
//! The kernels match on the op once per chunk and run a tight loop: plain arithmetic is written
//! so LLVM vectorises it; exp/log/tanh/sigmoid/erf/gelu/softplus/elu go through the SIMD
//! kernels of [`crate::math`]. f32 is computed in f32 and f64 in f64. Above a size threshold
//! the slice is cut into fixed-size chunks run on rayon; no element's result depends on the
//! chunking, so the output is bit-identical for any thread count.

use crate::facts::fact::{DIFFERENTIABLE, NONE, TRANSCENDENTAL};
use crate::{math, op_facts, Element};
use rayon::prelude::*;
use std::fmt;

/// An elementwise function of one input. Parameters are stored as `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// -1, 0 or 1
    Sign,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// 1/x
    Recip,
    /// x²
    Square,
    /// max(x, 0)
    Relu,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// x·(1 − x): the sigmoid's derivative written in its output, one pass in its backward.
    SigmoidGrad,
    /// tanh x
    Tanh,
    /// 1 − x²: tanh's derivative written in its output, one pass in its backward.
    TanhGrad,
    /// x·Φ(x) = 0.5·x·(1 + erf(x/√2))
    Gelu,
    /// Φ(x) + x·φ(x), the derivative of [`UnaryOp::Gelu`] (Φ, φ: the standard normal cdf and
    /// density): one pass in GELU's backward.
    GeluGrad,
    /// The error function.
    Erf,
    /// ln(1 + e^x), computed stably.
    Softplus,
    /// x·σ(x) (SiLU, swish).
    Silu,
    /// ln σ(x) = −softplus(−x), computed stably.
    LogSigmoid,
    /// x for x > 0, slope·x otherwise.
    LeakyRelu(f64),
    /// x for x > 0, alpha·(e^x − 1) otherwise.
    Elu(f64),
    /// x + c
    AddScalar(f64),
    /// x · c
    MulScalar(f64),
    /// x^p
    PowScalar(f64),
    /// min(max(x, min), max); its gradient is PyTorch's: 1 strictly inside the bounds, 0 at
    /// and beyond them (so it is also `hardtanh`).
    Clamp {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
}

op_facts! { UnaryOp;
    Neg => "neg", DIFFERENTIABLE;
    Abs => "abs", DIFFERENTIABLE;
    Sign => "sign", NONE;
    Exp => "exp", DIFFERENTIABLE | TRANSCENDENTAL;
    Log => "log", DIFFERENTIABLE | TRANSCENDENTAL;
    Sqrt => "sqrt", DIFFERENTIABLE;
    Recip => "recip", DIFFERENTIABLE;
    Square => "square", DIFFERENTIABLE;
    Relu => "relu", DIFFERENTIABLE;
    Sigmoid => "sigmoid", DIFFERENTIABLE | TRANSCENDENTAL;
    SigmoidGrad => "sigmoid_grad", DIFFERENTIABLE;
    Tanh => "tanh", DIFFERENTIABLE | TRANSCENDENTAL;
    TanhGrad => "tanh_grad", DIFFERENTIABLE;
    Gelu => "gelu", DIFFERENTIABLE | TRANSCENDENTAL;
    GeluGrad => "gelu_grad", DIFFERENTIABLE | TRANSCENDENTAL;
    Erf => "erf", DIFFERENTIABLE | TRANSCENDENTAL;
    Softplus => "softplus", DIFFERENTIABLE | TRANSCENDENTAL;
    Silu => "silu", DIFFERENTIABLE | TRANSCENDENTAL;
    LogSigmoid => "log_sigmoid", DIFFERENTIABLE | TRANSCENDENTAL;
    LeakyRelu(0.01) => "leaky_relu", DIFFERENTIABLE;
    Elu(1.5) => "elu", DIFFERENTIABLE | TRANSCENDENTAL;
    AddScalar(2.5) => "add_scalar", DIFFERENTIABLE;
    MulScalar(-3.0) => "mul_scalar", DIFFERENTIABLE;
    PowScalar(1.5) => "pow_scalar", DIFFERENTIABLE | TRANSCENDENTAL;
    Clamp { min: -0.5, max: 0.75 } => "clamp", DIFFERENTIABLE;
}

impl UnaryOp {
    /// The scalar definition, in f64: the reference the kernels are tested against and what
    /// constant folding uses. NaN propagates through every op (as in PyTorch), including
    /// `Relu`, `Sign` and `Clamp`.
    pub fn apply_f64(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Square => x * x,
            UnaryOp::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::SigmoidGrad => x * (1.0 - x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::TanhGrad => 1.0 - x * x,
            UnaryOp::Gelu => 0.5 * x * (1.0 + math::erf_f64(x / std::f64::consts::SQRT_2)),
            UnaryOp::GeluGrad => {
                let x_pdf = if x.is_infinite() { 0.0 } else { x * (-0.5 * x * x).exp() };
                0.5 * (1.0 + math::erf_f64(x / std::f64::consts::SQRT_2))
                    + x_pdf / (2.0 * std::f64::consts::PI).sqrt()
            }
            UnaryOp::Erf => math::erf_f64(x),
            UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Silu => x / (1.0 + (-x).exp()),
            UnaryOp::LogSigmoid => x.min(0.0) - (-x.abs()).exp().ln_1p(),
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            UnaryOp::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            UnaryOp::AddScalar(c) => x + c,
            UnaryOp::MulScalar(c) => x * c,
            UnaryOp::PowScalar(p) => x.powf(p),
            UnaryOp::Clamp { min, max } => clamp(x, min, max),
        }
    }

    /// Whether the op carries a gradient (comparisons' and `sign`'s outputs do not).
    pub const fn is_differentiable(self) -> bool {
        self.facts() & DIFFERENTIABLE != 0
    }

    /// True for the ops that run a vectorised transcendental kernel (worth threads sooner).
    fn is_transcendental(self) -> bool {
        self.facts() & TRANSCENDENTAL != 0
    }
}

/// `min(max(x, lo), hi)` that keeps NaN (`hi` wins when `lo > hi`, as in PyTorch).
#[inline(always)]
fn clamp<T: Element>(x: T, lo: T, hi: T) -> T {
    let t = if x < lo { lo } else { x };
    if t > hi {
        hi
    } else {
        t
    }
}

impl fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnaryOp::LeakyRelu(c) | UnaryOp::Elu(c) | UnaryOp::PowScalar(c) => {
                write!(f, "{}({c})", self.name())
            }
            UnaryOp::AddScalar(c) => write!(f, "add({c})"),
            UnaryOp::MulScalar(c) => write!(f, "mul({c})"),
            UnaryOp::Clamp { min, max } => {
                write!(f, "{}({min}, {max})", self.name())
            }
            other => f.write_str(other.name()),
        }
    }
}

/// Elements per parallel task (fixed, so the partition never depends on the thread count).
const CHUNK: usize = 1 << 13;
/// Below this many elements cheap ops stay on the calling thread.
const PAR_MIN_CHEAP: usize = 1 << 16;
/// Below this many elements transcendental ops stay on the calling thread.
const PAR_MIN_TRANSCENDENTAL: usize = 1 << 14;

/// `out[i] = op(x[i])`.
pub fn unary<T: Element>(op: UnaryOp, x: &[T], out: &mut [T]) {
    assert_eq!(x.len(), out.len(), "internal invariant: unary {op} input and output lengths differ");
    if x.len() >= par_min(op) {
        x.par_chunks(CHUNK)
            .zip(out.par_chunks_mut(CHUNK))
            .for_each(|(x, out)| apply(op, Io::OutOfPlace(x, out)));
    } else {
        apply(op, Io::OutOfPlace(x, out));
    }
}

/// `x[i] = op(x[i])`.
pub fn unary_inplace<T: Element>(op: UnaryOp, x: &mut [T]) {
    if x.len() >= par_min(op) {
        x.par_chunks_mut(CHUNK).for_each(|x| apply(op, Io::InPlace(x)));
    } else {
        apply(op, Io::InPlace(x));
    }
}

fn par_min(op: UnaryOp) -> usize {
    if op.is_transcendental() {
        PAR_MIN_TRANSCENDENTAL
    } else {
        PAR_MIN_CHEAP
    }
}

/// Where a kernel reads and writes: one match on the op serves both entry points.
enum Io<'a, T> {
    OutOfPlace(&'a [T], &'a mut [T]),
    InPlace(&'a mut [T]),
}

impl<T: Element> Io<'_, T> {
    /// Runs a scalar function over every element (inlined per op, so the loop vectorises).
    #[inline(always)]
    fn map(self, f: impl Fn(T) -> T) {
        match self {
            Io::OutOfPlace(x, out) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = f(v);
                }
            }
            Io::InPlace(x) => {
                for v in x.iter_mut() {
                    *v = f(*v);
                }
            }
        }
    }

    /// Runs one of the `math` slice kernels.
    fn math(self, out_of_place: fn(&[T], &mut [T]), in_place: fn(&mut [T])) {
        match self {
            Io::OutOfPlace(x, out) => out_of_place(x, out),
            Io::InPlace(x) => in_place(x),
        }
    }
}

/// The serial kernel for one chunk.
fn apply<T: Element>(op: UnaryOp, io: Io<'_, T>) {
    let (zero, one) = (T::ZERO, T::ONE);
    match op {
        UnaryOp::Neg => io.map(|v| -v),
        UnaryOp::Abs => io.map(|v| v.abs()),
        UnaryOp::Sign => io.map(|v| {
            if v > zero {
                one
            } else if v < zero {
                -one
            } else {
                v
            }
        }),
        UnaryOp::Exp => io.math(math::exp, math::exp_inplace),
        UnaryOp::Log => io.math(math::ln, math::ln_inplace),
        UnaryOp::Sqrt => io.map(|v| v.sqrt()),
        UnaryOp::Recip => io.map(|v| one / v),
        UnaryOp::Square => io.map(|v| v * v),
        UnaryOp::Relu => io.map(|v| if v < zero { zero } else { v }),
        UnaryOp::Sigmoid => io.math(math::sigmoid, math::sigmoid_inplace),
        UnaryOp::SigmoidGrad => io.map(|v| v * (one - v)),
        UnaryOp::Tanh => io.math(math::tanh, math::tanh_inplace),
        UnaryOp::TanhGrad => io.map(|v| one - v * v),
        UnaryOp::Gelu => io.math(math::gelu, math::gelu_inplace),
        UnaryOp::GeluGrad => io.math(math::gelu_grad, math::gelu_grad_inplace),
        UnaryOp::Erf => io.math(math::erf, math::erf_inplace),
        UnaryOp::Softplus => io.math(math::softplus, math::softplus_inplace),
        UnaryOp::Silu => io.math(math::silu, math::silu_inplace),
        UnaryOp::LogSigmoid => io.math(math::log_sigmoid, math::log_sigmoid_inplace),
        UnaryOp::LeakyRelu(s) => {
            let s = T::from_f64(s);
            io.map(|v| if v > zero { v } else { s * v })
        }
        UnaryOp::Elu(a) => elu(T::from_f64(a), io),
        UnaryOp::AddScalar(c) => {
            let c = T::from_f64(c);
            io.map(|v| v + c)
        }
        UnaryOp::MulScalar(c) => {
            let c = T::from_f64(c);
            io.map(|v| v * c)
        }
        UnaryOp::PowScalar(p) => pow_scalar(p, io),
        UnaryOp::Clamp { min, max } => {
            let (lo, hi) = (T::from_f64(min), T::from_f64(max));
            io.map(|v| clamp(v, lo, hi))
        }
    }
}

/// `x > 0 ? x : a·expm1(x)`: the vectorised expm1 first, then a select pass (in place it
/// goes through a stack buffer, since the select needs the input).
fn elu<T: Element>(a: T, io: Io<'_, T>) {
    let select = |x: &[T], em: &mut [T]| {
        for (o, &v) in em.iter_mut().zip(x) {
            *o = if v > T::ZERO { v } else { a * *o };
        }
    };
    match io {
        Io::OutOfPlace(x, out) => {
            math::exp_m1(x, out);
            select(x, out);
        }
        Io::InPlace(x) => {
            let mut buf = [T::ZERO; 512];
            for chunk in x.chunks_mut(buf.len()) {
                let em = &mut buf[..chunk.len()];
                math::exp_m1(chunk, em);
                select(chunk, em);
                chunk.copy_from_slice(em);
            }
        }
    }
}

/// `x^p` with exact shortcuts for the common exponents; they agree with `powf` bit for bit,
/// special values included (`pow(−0, ½) = +0`, `pow(−inf, ½) = +inf`, `pow(NaN, 0) = 1`).
fn pow_scalar<T: Element>(p: f64, io: Io<'_, T>) {
    let (zero, one) = (T::ZERO, T::ONE);
    match p {
        0.0 => io.map(|_| one),
        1.0 => io.map(|v| v),
        2.0 => io.map(|v| v * v),
        3.0 => io.map(|v| v * v * v),
        -1.0 => io.map(|v| one / v),
        0.5 => io.map(|v| if v == T::NEG_INFINITY { T::INFINITY } else { v.sqrt() + zero }),
        _ => {
            let p = T::from_f64(p);
            io.map(|v| v.powf(p))
        }
    }
}

#[cfg(test)]
mod tests;

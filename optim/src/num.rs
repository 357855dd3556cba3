//! The arithmetic update rules are written in, once for both modes: plain numbers, element by
//! element, in an eager step; whole tensors inside a compiled step, where the rule's ops are
//! traced, fused into one kernel per parameter and replayed at every call.

use graphgrad_autodiff::{Elem, Tensor};

/// Numbers an [`UpdateRule`](crate::UpdateRule) computes with: runs of elements of a parameter
/// in an eager step, `f64` for its per-step coefficients, and [`Tensor`] (a whole parameter, or a
/// rank-0 coefficient) in a compiled step.
pub trait Num: Clone {
    /// `self + other`
    fn add(&self, other: &Self) -> Self;
    /// `self − other`
    fn sub(&self, other: &Self) -> Self;
    /// `self · other`
    fn mul(&self, other: &Self) -> Self;
    /// `self / other`
    fn div(&self, other: &Self) -> Self;
    /// `max(self, other)`
    fn max(&self, other: &Self) -> Self;
    /// `√self`
    fn sqrt(&self) -> Self;
    /// `self · c`
    fn scale(&self, c: f64) -> Self;
    /// `self + c`
    fn shift(&self, c: f64) -> Self;
    /// `base^self` (a decay raised to the step count).
    fn exp_of(&self, base: f64) -> Self;
}

/// Elements an eager update computes at a time.
pub(crate) const LANES: usize = 16;

/// A run of consecutive elements: each op is a loop over the lanes, which the compiler turns
/// into vector instructions, and a rule's branches on its configuration are taken once per run.
// Aligned to a cache line: moved whole between the rule's ops, a run stays in vector
// registers more often (Adam 0.45 → 0.41 ms, RMSprop 0.36 → 0.33 ms per 1M-element step).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub(crate) struct Lanes<T>(pub(crate) [T; LANES]);

impl<T: Elem> Lanes<T> {
    /// The first `values.len()` lanes from `values`, the rest zero.
    #[inline(always)]
    pub(crate) fn load(values: &[T]) -> Lanes<T> {
        if let Ok(full) = <[T; LANES]>::try_from(values) {
            return Lanes(full);
        }
        let mut lanes = [T::ZERO; LANES];
        lanes[..values.len()].copy_from_slice(values);
        Lanes(lanes)
    }

    /// Writes the first `out.len()` lanes.
    #[inline(always)]
    pub(crate) fn store(&self, out: &mut [T]) {
        match <&mut [T; LANES]>::try_from(&mut *out) {
            Ok(full) => *full = self.0,
            Err(_) => {
                let n = out.len();
                out.copy_from_slice(&self.0[..n]);
            }
        }
    }

    #[inline(always)]
    fn map(&self, f: impl Fn(T) -> T) -> Lanes<T> {
        Lanes(std::array::from_fn(|i| f(self.0[i])))
    }

    #[inline(always)]
    fn zip(&self, other: &Lanes<T>, f: impl Fn(T, T) -> T) -> Lanes<T> {
        Lanes(std::array::from_fn(|i| f(self.0[i], other.0[i])))
    }
}

impl<T: Elem> Num for Lanes<T> {
    #[inline(always)]
    fn add(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a - b)
    }
    #[inline(always)]
    fn mul(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a * b)
    }
    #[inline(always)]
    fn div(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a / b)
    }
    #[inline(always)]
    fn max(&self, other: &Self) -> Self {
        self.zip(other, |a, b| if a >= b || b.is_nan() { a } else { b })
    }
    #[inline(always)]
    fn sqrt(&self) -> Self {
        self.map(|a| a.sqrt())
    }
    #[inline(always)]
    fn scale(&self, c: f64) -> Self {
        let c = T::from_f64(c);
        self.map(|a| a * c)
    }
    #[inline(always)]
    fn shift(&self, c: f64) -> Self {
        let c = T::from_f64(c);
        self.map(|a| a + c)
    }
    fn exp_of(&self, base: f64) -> Self {
        self.map(|t| T::from_f64(base.powf(t.to_f64())))
    }
}

/// Plain f64 arithmetic: the per-step coefficients of an eager update.
impl Num for f64 {
    fn add(&self, other: &f64) -> f64 {
        self + other
    }
    fn sub(&self, other: &f64) -> f64 {
        self - other
    }
    fn mul(&self, other: &f64) -> f64 {
        self * other
    }
    fn div(&self, other: &f64) -> f64 {
        self / other
    }
    fn max(&self, other: &f64) -> f64 {
        f64::max(*self, *other)
    }
    fn sqrt(&self) -> f64 {
        f64::sqrt(*self)
    }
    fn scale(&self, c: f64) -> f64 {
        self * c
    }
    fn shift(&self, c: f64) -> f64 {
        self + c
    }
    fn exp_of(&self, base: f64) -> f64 {
        base.powf(*self)
    }
}

/// Tensor arithmetic on operands of one shape, or one of rank 0: shapes always broadcast, so
/// the ops cannot fail.
impl Num for Tensor {
    fn add(&self, other: &Tensor) -> Tensor {
        Tensor::add(self, other).expect("internal invariant: update operands broadcast")
    }
    fn sub(&self, other: &Tensor) -> Tensor {
        Tensor::sub(self, other).expect("internal invariant: update operands broadcast")
    }
    fn mul(&self, other: &Tensor) -> Tensor {
        Tensor::mul(self, other).expect("internal invariant: update operands broadcast")
    }
    fn div(&self, other: &Tensor) -> Tensor {
        Tensor::div(self, other).expect("internal invariant: update operands broadcast")
    }
    fn max(&self, other: &Tensor) -> Tensor {
        self.maximum(other).expect("internal invariant: update operands broadcast")
    }
    fn sqrt(&self) -> Tensor {
        Tensor::sqrt(self)
    }
    fn scale(&self, c: f64) -> Tensor {
        self.mul_scalar(c)
    }
    fn shift(&self, c: f64) -> Tensor {
        self.add_scalar(c)
    }
    fn exp_of(&self, base: f64) -> Tensor {
        // base^t = e^(t·ln base); base 0 gives e^(−∞) = 0, as powf does for t ≥ 1
        self.mul_scalar(base.ln()).exp()
    }
}

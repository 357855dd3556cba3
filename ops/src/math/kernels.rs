//! The math kernels, written once against [`Lanes`] and instantiated for scalars (portable
//! path) and AVX2 packs.
//!
//! Every kernel maps one pack to one pack with no cross-lane dependence, so a value's result
//! does not depend on its position in a slice. Coefficients come from [`Params`]; they are
//! near-minimax fits (Lawson-reweighted least squares in 50-digit arithmetic) whose fitting
//! error lies below the type's rounding error.

use super::lanes::{poly, Lanes, Params};
use std::f64::consts::{FRAC_1_SQRT_2, LOG2_E, SQRT_2};

/// `2/√π`, the leading coefficient of erf's series.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
/// `1/√(2π)`, the standard normal density at 0.
pub(crate) const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Splits `x` (already clamped) as `x = k·ln2 + r`, `|r| <= ln2/2`; returns `(k, expm1(r))`.
#[inline(always)]
fn reduce_exp<V: Lanes>(x: V) -> (V, V) {
    let k = x.mul(V::splat(LOG2_E)).round();
    let r = k.fma(V::splat(-V::Elem::LN2_HI), x);
    let r = k.fma(V::splat(-V::Elem::LN2_LO), r);
    let q = poly(r, V::Elem::EXPM1_Q);
    (k, r.mul(r).fma(q, r))
}

/// `2^k` as two factors, so `k` may run over the whole range of results including subnormals
/// (each half stays a normal power of two).
#[inline(always)]
fn split_pow2<V: Lanes>(k: V) -> (V, V) {
    let k1 = k.mul(V::splat(0.5)).round();
    (V::pow2i(k1), V::pow2i(k.sub(k1)))
}

/// `e^x`: `2^k·(1 + expm1(r))`. Overflows to inf, underflows through subnormals to 0.
#[inline(always)]
pub(crate) fn exp<V: Lanes>(x: V) -> V {
    let xc = x.max(V::splat(V::Elem::EXP_LO)).min(V::splat(V::Elem::EXP_HI));
    let (k, em) = reduce_exp(xc);
    let (s1, s2) = split_pow2(k);
    let y = em.add(V::splat(1.0)).mul(s1).mul(s2);
    V::select(x.is_nan(), x, y)
}

/// `e^x` where the result is a normal number: [`exp`]'s value without its clamps, special
/// cases and split power of two (erf's tail, `e^(−a²)` with `a` at most the saturation point).
#[inline(always)]
pub(crate) fn exp_normal<V: Lanes>(x: V) -> V {
    let (k, em) = reduce_exp(x);
    em.add(V::splat(1.0)).mul(V::pow2i(k))
}

/// `e^x − 1`, accurate near 0: `2^k·expm1(r) + (2^k − 1)`. From `k > 60` on the `− 1` is
/// below rounding in both types and `2^k` alone may overflow, so there it is `e^x`'s formula.
#[inline(always)]
pub(crate) fn exp_m1<V: Lanes>(x: V) -> V {
    let xc = x.max(V::splat(V::Elem::EXPM1_LO)).min(V::splat(V::Elem::EXP_HI));
    let (k, em) = reduce_exp(xc);
    let one = V::splat(1.0);
    let (s1, s2) = split_pow2(k);
    let big = k.gt(V::splat(60.0));
    let s = V::pow2i(k.min(V::splat(60.0)));
    let y = V::select(big, em.add(one).mul(s1).mul(s2), em.fma(s, s.sub(one)));
    // x = ±0 keeps its sign; NaN propagates.
    V::select(V::or(x.eq(V::splat(0.0)), x.is_nan()), x, y)
}

/// `ln x`: `x = m·2^e` with `m ∈ [√½, √2)`, `ln m = 2s + s·s²·R(s²)` where `s = (m−1)/(m+1)`.
/// `ln 0 = −inf`, `ln x = NaN` for `x < 0`, `ln inf = inf`.
#[inline(always)]
pub(crate) fn ln<V: Lanes>(x: V) -> V {
    let p = V::Elem::SUBNORMAL_SCALE_LOG2;
    let tiny = x.lt(V::splat(V::Elem::MIN_NORMAL));
    let xs = V::select(tiny, x.mul(V::pow2i(V::splat(p))), x);
    let (e, m) = xs.frexp();
    let e = V::select(tiny, e.sub(V::splat(p)), e);
    let big = m.gt(V::splat(SQRT_2));
    let m = V::select(big, m.mul(V::splat(0.5)), m);
    let e = V::select(big, e.add(V::splat(1.0)), e);
    let f = m.sub(V::splat(1.0));
    let s = f.div(m.add(V::splat(1.0)));
    let z = s.mul(s);
    let t = s.mul(z).fma(poly(z, V::Elem::LN_R), s.add(s));
    let y = e.fma(V::splat(V::Elem::LN2_HI), e.fma(V::splat(V::Elem::LN2_LO), t));
    let zero = V::splat(0.0);
    let y = V::select(x.eq(V::splat(f64::INFINITY)), x, y);
    let y = V::select(x.eq(zero), V::splat(f64::NEG_INFINITY), y);
    let y = V::select(x.lt(zero), V::splat(f64::NAN), y);
    V::select(x.is_nan(), x, y)
}

/// `ln(1 + x)`: `ln u − ((u − 1) − x)/u` with `u = 1 + x` (the quotient corrects the rounding
/// of `u` to first order).
#[inline(always)]
pub(crate) fn ln_1p<V: Lanes>(x: V) -> V {
    let one = V::splat(1.0);
    let u = x.add(one);
    let c = u.sub(one).sub(x).div(u);
    let edge = V::or(u.eq(V::splat(0.0)), u.eq(V::splat(f64::INFINITY)));
    let y = ln(u).sub(V::select(edge, V::splat(0.0), c));
    V::select(x.eq(V::splat(0.0)), x, y)
}

/// `tanh x = sign(x)·em/(em + 2)` with `em = expm1(2|x|)`; saturates to ±1.
///
/// `expm1` is `exp_m1`'s formula on its finite, non-negative, unsaturated range only
/// (`2|x| <= 2·TANH_SAT`, so `2^k` is one normal power of two): the same values without its
/// clamps and special cases.
#[inline(always)]
pub(crate) fn tanh<V: Lanes>(x: V) -> V {
    let a = x.abs().min(V::splat(V::Elem::TANH_SAT));
    let (k, em) = reduce_exp(a.add(a));
    let s = V::pow2i(k);
    let em = em.fma(s, s.sub(V::splat(1.0)));
    let t = em.div(em.add(V::splat(2.0))).copysign(x);
    V::select(x.is_nan(), x, t)
}

/// `σ(x) = 1/(1 + e^−x)`, evaluated as `e/(1 + e)` with `e = e^x` for `x < 0` so that it keeps
/// full relative accuracy where it is tiny.
#[inline(always)]
pub(crate) fn sigmoid<V: Lanes>(x: V) -> V {
    let e = exp(V::splat(0.0).sub(x.abs()));
    let s = V::splat(1.0).div(V::splat(1.0).add(e));
    V::select(x.lt(V::splat(0.0)), e.mul(s), s)
}

/// erf: `x·(2/√π + x²·P(x²))` for `|x| < 1`; `±(1 − e^(−x²)·G(|x| − 1))` up to the saturation
/// point, ±1 beyond.
#[inline(always)]
pub(crate) fn erf<V: Lanes>(x: V) -> V {
    let a = x.abs();
    let one = V::splat(1.0);
    let z = x.mul(x);
    let small = x.mul(z.fma(poly(z, V::Elem::ERF_SMALL), V::splat(TWO_OVER_SQRT_PI)));
    let is_small = a.lt(one);
    // The tail costs an exp: skip it when no lane needs it (most activations are small).
    let far = V::or(a.gt(one), a.eq(one));
    if !V::any(V::or(far, x.is_nan())) {
        return small;
    }
    let at = a.min(V::splat(V::Elem::ERF_SAT));
    let g = poly(at.sub(one), V::Elem::ERF_TAIL);
    let tail = one.sub(exp_normal(V::splat(0.0).sub(at.mul(at))).mul(g)).copysign(x);
    let y = V::select(is_small, small, tail);
    V::select(x.is_nan(), x, y)
}

/// GELU, exact form: `x·Φ(x) = ½·x·(1 + erf(x/√2))`.
#[inline(always)]
pub(crate) fn gelu<V: Lanes>(x: V) -> V {
    let e = erf(x.mul(V::splat(FRAC_1_SQRT_2)));
    x.mul(V::splat(0.5)).mul(V::splat(1.0).add(e))
}

/// GELU's derivative: `Φ(x) + x·φ(x) = ½·(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π)`. The `x·φ(x)`
/// term is 0 from |x| = 40 on (so ±∞ give 1 and 0, not ∞·0).
#[inline(always)]
pub(crate) fn gelu_grad<V: Lanes>(x: V) -> V {
    let half = V::splat(0.5);
    let cdf = half.mul(V::splat(1.0).add(erf(x.mul(V::splat(FRAC_1_SQRT_2)))));
    let xc = x.max(V::splat(-40.0)).min(V::splat(40.0));
    let pdf = exp(V::splat(0.0).sub(half.mul(xc.mul(xc)))).mul(V::splat(FRAC_1_SQRT_2PI));
    let y = xc.fma(pdf, cdf);
    V::select(x.is_nan(), x, y)
}

/// `ln(1 + e^x)`, stable: `max(x, 0) + ln(1 + e^−|x|)`.
#[inline(always)]
pub(crate) fn softplus<V: Lanes>(x: V) -> V {
    let zero = V::splat(0.0);
    let e = exp(zero.sub(x.abs()));
    let y = x.max(zero).add(ln_1p(e));
    V::select(x.is_nan(), x, y)
}

/// SiLU (swish), `x·σ(x)`.
#[inline(always)]
pub(crate) fn silu<V: Lanes>(x: V) -> V {
    x.mul(sigmoid(x))
}

/// `ln σ(x) = min(x, 0) − ln(1 + e^−|x|)`, stable at both ends.
#[inline(always)]
pub(crate) fn log_sigmoid<V: Lanes>(x: V) -> V {
    let zero = V::splat(0.0);
    let y = x.min(zero).sub(ln_1p(exp(zero.sub(x.abs()))));
    V::select(x.is_nan(), x, y)
}

//! Seeded random fills: uniform, normal (Box–Muller) and Bernoulli, drawn from
//! `rand_chacha::ChaCha8Rng`.
//!
//! Reproducibility: every value is a fixed function of the raw ChaCha8 words (whose stream is
//! stable across crate versions), consumed sequentially, so the same seed (or the same
//! serialised RNG state) gives the same values on every run and machine. Fills run on one
//! thread: a single stream has one order. Values are computed in f64 and rounded once.

use crate::{DType, Element};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use std::f64::consts::TAU;

/// 2⁻⁵³: a 53-bit integer times this is uniform on [0, 1).
const SCALE_53: f64 = 1.0 / (1u64 << 53) as f64;

/// Uniform on [0, 1) with 53 random bits (one word).
#[inline]
fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * SCALE_53
}

/// The largest value of `T` below `h`.
fn next_below<T: Element>(h: T) -> T {
    match T::DTYPE {
        DType::F32 => {
            let h = h.to_f64() as f32;
            let b = h.to_bits();
            let down = if h == 0.0 {
                0x8000_0001
            } else if h > 0.0 {
                b - 1
            } else {
                b + 1
            };
            T::from_f64(f32::from_bits(down) as f64)
        }
        DType::F64 => {
            let h = h.to_f64();
            let b = h.to_bits();
            let down = if h == 0.0 {
                0x8000_0000_0000_0001
            } else if h > 0.0 {
                b - 1
            } else {
                b + 1
            };
            T::from_f64(f64::from_bits(down))
        }
        DType::I64 => unreachable!("Element is sealed to f32 and f64"),
    }
}

/// Fills `out` uniformly on [low, high): f32 from 24 random bits of one 32-bit word, f64
/// from 53 bits of one 64-bit word. A value that rounds up to `high` is moved to the largest
/// value below it. `low == high` fills with `low`.
pub fn fill_uniform<T: Element>(rng: &mut ChaCha8Rng, out: &mut [T], low: T, high: T) {
    assert!(
        low <= high && low.is_finite() && high.is_finite(),
        "internal invariant: uniform bounds {low}..{high}"
    );
    let (lo, span) = (low.to_f64(), high.to_f64() - low.to_f64());
    let below = if low < high { next_below(high) } else { low };
    for o in out.iter_mut() {
        let u = match T::DTYPE {
            DType::F32 => (rng.next_u32() >> 8) as f64 * (1.0 / (1u32 << 24) as f64),
            DType::F64 | DType::I64 => unit_f64(rng),
        };
        let v = T::from_f64(lo + span * u);
        *o = if v >= high { below } else { v };
    }
}

/// Fills `out` with normal samples of the given mean and standard deviation (Box–Muller:
/// two words give two samples; an odd tail uses the first of a pair).
pub fn fill_normal<T: Element>(rng: &mut ChaCha8Rng, out: &mut [T], mean: T, std: T) {
    assert!(std.to_f64() >= 0.0, "internal invariant: normal std {std} must be >= 0");
    let (mu, sigma) = (mean.to_f64(), std.to_f64());
    for pair in out.chunks_mut(2) {
        // u1 in (0, 1] keeps ln finite.
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 * SCALE_53;
        let theta = TAU * unit_f64(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        pair[0] = T::from_f64(mu + sigma * r * theta.cos());
        if let Some(second) = pair.get_mut(1) {
            *second = T::from_f64(mu + sigma * r * theta.sin());
        }
    }
}

/// Fills `out` with 1.0 with probability `p`, else 0.0 (one 32-bit word each; `p` is
/// resolved to 2⁻³²).
pub fn fill_bernoulli<T: Element>(rng: &mut ChaCha8Rng, out: &mut [T], p: f64) {
    assert!((0.0..=1.0).contains(&p), "internal invariant: bernoulli p {p} outside [0, 1]");
    for o in out.iter_mut() {
        let u = rng.next_u32() as f64 * (1.0 / 4_294_967_296.0);
        *o = if u < p { T::ONE } else { T::ZERO };
    }
}

#[cfg(test)]
mod tests;

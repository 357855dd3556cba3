//! Fused softmax and log-softmax along the middle axis of an `(outer, len, inner)` layout,
//! with their backward kernels.
//!
//! Each row (`inner == 1`, the hot case: contiguous) or each `len × inner` block (strided:
//! vectorised across `inner`) is one fused pass: max, shifted exponentials and their sum,
//! normalisation. Rows are independent and never split across threads, so results are
//! bit-identical for any thread count.
//!
//! Non-finite input follows PyTorch: a row that is entirely −∞ (or holds +∞ or NaN) gives
//! NaN for every element of both softmax and log_softmax.

use crate::reduce::for_each_block;
use crate::reduce::kernels::{multiversion, pick_max, row_dot, row_max, row_sum};
use crate::{math, Element};

/// Elements per stack buffer of exponentials in log-softmax rows.
const EXP_CHUNK: usize = 256;

fn check(n: usize, outer: usize, len: usize, inner: usize, what: &str) {
    assert_eq!(n, outer * len * inner, "internal invariant: {what} length vs ({outer}, {len}, {inner})");
}

/// Softmax along the middle axis: `y = exp(x − max) / Σ exp(x − max)`.
pub fn softmax<T: Element>(x: &[T], outer: usize, len: usize, inner: usize, y: &mut [T]) {
    check(x.len(), outer, len, inner, "softmax input");
    check(y.len(), outer, len, inner, "softmax output");
    for_each_block(y, len * inner, |s, y| {
        let x = &x[s..s + y.len()];
        if inner == 1 {
            softmax_rows(x, len, y, false)
        } else {
            softmax_strided(x, len, inner, y, false)
        }
    });
}

/// Log-softmax along the middle axis: `y = x − max − ln Σ exp(x − max)`.
pub fn log_softmax<T: Element>(x: &[T], outer: usize, len: usize, inner: usize, y: &mut [T]) {
    check(x.len(), outer, len, inner, "log_softmax input");
    check(y.len(), outer, len, inner, "log_softmax output");
    for_each_block(y, len * inner, |s, y| {
        let x = &x[s..s + y.len()];
        if inner == 1 {
            softmax_rows(x, len, y, true)
        } else {
            softmax_strided(x, len, inner, y, true)
        }
    });
}

/// Softmax backward from its output: `dx = y ⊙ (dy − Σ dy⊙y)`.
pub fn softmax_backward<T: Element>(y: &[T], dy: &[T], outer: usize, len: usize, inner: usize, dx: &mut [T]) {
    check(y.len(), outer, len, inner, "softmax_backward y");
    check(dy.len(), outer, len, inner, "softmax_backward dy");
    check(dx.len(), outer, len, inner, "softmax_backward dx");
    for_each_block(dx, len * inner, |s, dx| {
        let (y, dy) = (&y[s..s + dx.len()], &dy[s..s + dx.len()]);
        backward_blocks(y, dy, len, inner, dx, false)
    });
}

/// Log-softmax backward from its output `y`: `dx = dy − exp(y) Σ dy`.
pub fn log_softmax_backward<T: Element>(
    y: &[T],
    dy: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    dx: &mut [T],
) {
    check(y.len(), outer, len, inner, "log_softmax_backward y");
    check(dy.len(), outer, len, inner, "log_softmax_backward dy");
    check(dx.len(), outer, len, inner, "log_softmax_backward dx");
    for_each_block(dx, len * inner, |s, dx| {
        let (y, dy) = (&y[s..s + dx.len()], &dy[s..s + dx.len()]);
        backward_blocks(y, dy, len, inner, dx, true)
    });
}

multiversion! {
    /// Contiguous rows of `len`: max, shifted values, their exponentials (vectorised) and sum.
    fn softmax_rows<T: Element>(x: &[T], len: usize, y: &mut [T], log: bool) {
        let mut buf = [T::ZERO; EXP_CHUNK];
        for (xr, yr) in x.chunks_exact(len).zip(y.chunks_exact_mut(len)) {
            let m = row_max(xr);
            yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = v - m);
            if log {
                // Σ e^(x − m) through a stack buffer: y keeps x − m.
                let mut sum = T::ZERO;
                for c in yr.chunks(EXP_CHUNK) {
                    let e = &mut buf[..c.len()];
                    math::exp(c, e);
                    sum += row_sum(e);
                }
                let lse = sum.ln();
                yr.iter_mut().for_each(|o| *o -= lse);
            } else {
                math::exp_inplace(yr);
                let inv = T::ONE / row_sum(yr);
                yr.iter_mut().for_each(|o| *o *= inv);
            }
        }
    }
}

multiversion! {
    /// `len × inner` blocks: column max, shifted values, their exponentials (vectorised over
    /// the block) and column sums.
    fn softmax_strided<T: Element>(x: &[T], len: usize, inner: usize, y: &mut [T], log: bool) {
        let mut m = vec![T::ZERO; inner];
        let mut s = vec![T::ZERO; inner];
        let mut e = if log { vec![T::ZERO; len * inner] } else { Vec::new() };
        for (xb, yb) in x.chunks_exact(len * inner).zip(y.chunks_exact_mut(len * inner)) {
            m.fill(T::NEG_INFINITY);
            for xr in xb.chunks_exact(inner) {
                m.iter_mut().zip(xr).for_each(|(m, &v)| *m = pick_max(*m, v));
            }
            for (xr, yr) in xb.chunks_exact(inner).zip(yb.chunks_exact_mut(inner)) {
                yr.iter_mut().zip(xr).zip(&m).for_each(|((o, &v), &m)| *o = v - m);
            }
            // e^(x − m): into y for softmax, beside it for log-softmax (y keeps x − m).
            let exps: &[T] = if log {
                math::exp(yb, &mut e);
                &e
            } else {
                math::exp_inplace(yb);
                yb
            };
            s.fill(T::ZERO);
            for er in exps.chunks_exact(inner) {
                s.iter_mut().zip(er).for_each(|(acc, &v)| *acc += v);
            }
            if log {
                s.iter_mut().for_each(|v| *v = v.ln());
                for yr in yb.chunks_exact_mut(inner) {
                    yr.iter_mut().zip(&s).for_each(|(o, &l)| *o -= l);
                }
            } else {
                s.iter_mut().for_each(|v| *v = T::ONE / *v);
                for yr in yb.chunks_exact_mut(inner) {
                    yr.iter_mut().zip(&s).for_each(|(o, &inv)| *o *= inv);
                }
            }
        }
    }
}

multiversion! {
    /// Both backward kernels: per row (or per column of a strided block) a reduction
    /// `r` (Σ dy⊙y, or Σ dy for log-softmax), then `dx = y(dy − r)` or `dx = dy − exp(y) r`.
    fn backward_blocks<T: Element>(y: &[T], dy: &[T], len: usize, inner: usize, dx: &mut [T], log: bool) {
        let block = len * inner;
        if inner == 1 {
            for ((yr, dyr), dxr) in y.chunks_exact(len).zip(dy.chunks_exact(len)).zip(dx.chunks_exact_mut(len)) {
                if log {
                    let r = row_sum(dyr);
                    math::exp(yr, dxr);
                    dxr.iter_mut().zip(dyr).for_each(|(o, &g)| *o = g - *o * r);
                } else {
                    let r = row_dot(dyr, yr);
                    for ((o, &y), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
                        *o = y * (g - r);
                    }
                }
            }
            return;
        }
        let mut r = vec![T::ZERO; inner];
        for ((yb, dyb), dxb) in y.chunks_exact(block).zip(dy.chunks_exact(block)).zip(dx.chunks_exact_mut(block)) {
            r.fill(T::ZERO);
            for (yr, gr) in yb.chunks_exact(inner).zip(dyb.chunks_exact(inner)) {
                if log {
                    r.iter_mut().zip(gr).for_each(|(r, &g)| *r += g);
                } else {
                    r.iter_mut().zip(gr).zip(yr).for_each(|((r, &g), &y)| *r += g * y);
                }
            }
            if log {
                math::exp(yb, dxb);
            }
            for ((yr, gr), or) in yb.chunks_exact(inner).zip(dyb.chunks_exact(inner)).zip(dxb.chunks_exact_mut(inner)) {
                for (((o, &y), &g), &r) in or.iter_mut().zip(yr).zip(gr).zip(&r) {
                    *o = if log { g - *o * r } else { y * (g - r) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The direct (unpacked) path for products too small, or too thin, to repay packing.
//!
//! Tiny products (the 16-element tensors of an autodiff step) and matrix-vector shapes
//! (`m == 1` or `n == 1`, where every element of the big operand is used once) run here.
//! Each row of C is computed from a contiguous row of A (gathered into a scratch row when A
//! is stored transposed) in one of three forms:
//! - B row-major: `c_row += a[p] · b_row[p]` for p in order (axpy, vectorised over columns);
//! - B transposed (or `n == 1`): each element is a dot product with independent partial sums
//!   combined in a fixed tree;
//! - `n == 1` with A transposed: `c += b[p] · a_stored_row[p]` (axpy over the rows of C).
//!
//! Every order is fixed by the shape (and the CPU's instruction set) alone, so results are deterministic; rows are split
//! across rayon tasks only above a work threshold, and a row's value does not depend on the
//! split.

use super::driver::Epi;
#[cfg(target_arch = "x86_64")]
use super::kernel::{isa, Isa};
use super::Gemm;
use crate::Element;
use rayon::prelude::*;

/// Computes the product for rows `row0..` of C, where `c` holds exactly those rows.
#[inline(always)]
fn rows_direct<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], row0: usize, epi: &Epi<'_, T>) {
    let (m, n, k) = (g.m, g.n, g.k);
    if g.trans_a && n == 1 && m > 1 {
        // Aᵀ·b with A stored k×m: sum the stored rows scaled by b, p in order.
        let rows = row0..row0 + c.len();
        if !g.accumulate {
            c.fill(T::ZERO);
        }
        for (p, &bp) in b[..k].iter().enumerate() {
            for (out, &av) in c.iter_mut().zip(&a[p * m + rows.start..p * m + rows.end]) {
                *out += av * bp;
            }
        }
        // Every element is in column 0: one bias value, one activation call over the chunk.
        if let Some(bias) = epi.bias {
            c.iter_mut().for_each(|x| *x += bias[0]);
        }
        if let Some(op) = epi.act {
            crate::unary::unary_inplace(op, c);
        }
        return;
    }
    // With one row of A (or one column of B) the stored layout is the same either way.
    let a_rows_contiguous = !g.trans_a || m == 1;
    let b_by_columns = g.trans_b || n == 1;
    let mut scratch = if a_rows_contiguous { Vec::new() } else { vec![T::ZERO; k] };
    for (r, c_row) in c.chunks_exact_mut(n).enumerate() {
        let i = row0 + r;
        let a_row: &[T] = if a_rows_contiguous {
            &a[i * k..(i + 1) * k]
        } else {
            for (p, x) in scratch.iter_mut().enumerate() {
                *x = a[p * m + i];
            }
            &scratch
        };
        if b_by_columns {
            for (j, out) in c_row.iter_mut().enumerate() {
                let d = dot(a_row, &b[j * k..(j + 1) * k]);
                *out = if g.accumulate { *out + d } else { d };
            }
        } else {
            if !g.accumulate {
                c_row.fill(T::ZERO);
            }
            for (p, &ap) in a_row.iter().enumerate() {
                for (out, &bv) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                    *out += ap * bv;
                }
            }
        }
        if !epi.is_noop() {
            epi.apply_row(c_row, 0);
        }
    }
}

/// [`rows_direct`] compiled for AVX2 (wider vectors for the same loops and the same order).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_direct_avx2<T: Element>(
    g: &Gemm,
    a: &[T],
    b: &[T],
    c: &mut [T],
    row0: usize,
    epi: &Epi<'_, T>,
) {
    rows_direct(g, a, b, c, row0, epi);
}

/// [`rows_direct`] with the widest vectors this CPU has.
fn rows_best<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], row0: usize, epi: &Epi<'_, T>) {
    #[cfg(target_arch = "x86_64")]
    if isa() != Isa::Scalar {
        // SAFETY: every instruction set above Scalar includes AVX2 and FMA.
        unsafe { rows_direct_avx2(g, a, b, c, row0, epi) };
        return;
    }
    rows_direct(g, a, b, c, row0, epi);
}

/// Dot product in a fixed order: explicit AVX2 for f32/f64 when available (the compiler does
/// not vectorise a generic reduction well), else 8 independent partial sums.
#[inline(always)]
fn dot<T: Element>(x: &[T], y: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    if isa() != Isa::Scalar {
        use std::any::TypeId;
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            // SAFETY: T is f32 (same layout); AVX2+FMA is present (isa above Scalar).
            return unsafe {
                let d = x86_dot::dot_f32(
                    std::mem::transmute::<&[T], &[f32]>(x),
                    std::mem::transmute::<&[T], &[f32]>(y),
                );
                std::mem::transmute_copy::<f32, T>(&d)
            };
        }
        if TypeId::of::<T>() == TypeId::of::<f64>() {
            // SAFETY: T is f64 (same layout); AVX2+FMA is present (isa above Scalar).
            return unsafe {
                let d = x86_dot::dot_f64(
                    std::mem::transmute::<&[T], &[f64]>(x),
                    std::mem::transmute::<&[T], &[f64]>(y),
                );
                std::mem::transmute_copy::<f64, T>(&d)
            };
        }
    }
    let mut lanes = [T::ZERO; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: T = xc.remainder().iter().zip(yc.remainder()).map(|(&a, &b)| a * b).sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] += xs[l] * ys[l];
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail
}

/// AVX2+FMA dot products: four vector accumulators, then a fixed reduction tree.
#[cfg(target_arch = "x86_64")]
mod x86_dot {
    use std::arch::x86_64::*;

    macro_rules! dot_impl {
        ($name:ident, $t:ty, $lanes:literal, $zero:ident, $load:ident, $fma:ident, $add:ident, $store:ident) => {
            /// `Σ x[i]·y[i]` over the common length.
            ///
            /// # Safety
            /// The CPU must support AVX2 and FMA.
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn $name(x: &[$t], y: &[$t]) -> $t {
                const L: usize = $lanes;
                let n = x.len().min(y.len());
                let (xp, yp) = (x.as_ptr(), y.as_ptr());
                let mut acc = [$zero(); 4];
                let mut i = 0;
                // SAFETY (all loads): i + 4·L ≤ n (or i + L ≤ n) elements remain in both slices.
                while i + 4 * L <= n {
                    for (q, a) in acc.iter_mut().enumerate() {
                        let o = i + q * L;
                        *a = unsafe { $fma($load(xp.add(o)), $load(yp.add(o)), *a) };
                    }
                    i += 4 * L;
                }
                while i + L <= n {
                    acc[0] = unsafe { $fma($load(xp.add(i)), $load(yp.add(i)), acc[0]) };
                    i += L;
                }
                let v = $add($add(acc[0], acc[1]), $add(acc[2], acc[3]));
                let mut lanes = [0.0; L];
                // SAFETY: lanes holds exactly one vector.
                unsafe { $store(lanes.as_mut_ptr(), v) };
                let mut s: $t = lanes.iter().sum();
                for j in i..n {
                    s += x[j] * y[j];
                }
                s
            }
        };
    }

    dot_impl!(
        dot_f32,
        f32,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps
    );
    dot_impl!(
        dot_f64,
        f64,
        4,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_fmadd_pd,
        _mm256_add_pd,
        _mm256_storeu_pd
    );
}

/// Columns of C below which a matrix-vector product is not split further.
const GEMV_MIN_COLS: usize = 64;

/// The direct path over all of C, on up to `threads` row chunks, or column chunks for a
/// matrix-vector product (1: never touches rayon).
pub(crate) fn gemm_direct<T: Element>(
    g: &Gemm,
    a: &[T],
    b: &[T],
    c: &mut [T],
    epi: &Epi<'_, T>,
    threads: usize,
) {
    let n = g.n;
    let c = &mut c[..g.m * n];
    if g.m == 1 && g.trans_b && threads > 1 && n >= 2 * GEMV_MIN_COLS {
        // A row times a stored-by-rows matrix: each column of C is a dot product with one
        // contiguous stored row, so the columns split into independent row blocks of B.
        let cols_per = n.div_ceil(threads).max(GEMV_MIN_COLS);
        let k = g.k;
        return c.par_chunks_mut(cols_per).enumerate().for_each(|(t, chunk)| {
            let j0 = t * cols_per;
            let part = Gemm { n: chunk.len(), ..*g };
            let bias = epi.bias.map(|b| &b[j0..]);
            rows_best(&part, a, &b[j0 * k..], chunk, 0, &Epi { bias, act: epi.act });
        });
    }
    let parts = threads.min(g.m);
    if parts <= 1 {
        rows_best(g, a, b, c, 0, epi);
        return;
    }
    let rows_per = g.m.div_ceil(parts);
    c.par_chunks_mut(rows_per * n)
        .enumerate()
        .for_each(|(t, chunk)| rows_best(g, a, b, chunk, t * rows_per, epi));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_on_exact_values() {
        // Small integers: every partial sum is exact, so any order gives the same value.
        let x: Vec<f64> = (0..19).map(|i| (i % 5) as f64).collect();
        let y: Vec<f64> = (0..19).map(|i| (i % 3) as f64 - 1.0).collect();
        let want: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert_eq!(dot(&x, &y), want);
        assert_eq!(dot::<f64>(&[], &[]), 0.0);
    }
}

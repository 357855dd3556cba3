//! Softmax kernels against plain f64 loops, finite differences, and edge rows.

use super::*;
use crate::testing::{assert_close, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: [usize; 6] = [0, 1, 7, 17, 65, 129];

/// Plain loop: (softmax, log_softmax) in f64.
fn reference(x: &[f64], outer: usize, len: usize, inner: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut ly) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let m = (0..len).map(|j| x[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..len).map(|j| (x[at(j)] - m).exp()).sum();
            for j in 0..len {
                y[at(j)] = (x[at(j)] - m).exp() / s;
                ly[at(j)] = x[at(j)] - m - s.ln();
            }
        }
    }
    (y, ly)
}

/// Plain loop of both backward formulas in f64.
fn reference_backward(
    y: &[f64],
    ly: &[f64],
    dy: &[f64],
    outer: usize,
    len: usize,
    inner: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut dx, mut ldx) = (vec![0.0; y.len()], vec![0.0; y.len()]);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let dot: f64 = (0..len).map(|j| dy[at(j)] * y[at(j)]).sum();
            let sum: f64 = (0..len).map(|j| dy[at(j)]).sum();
            for j in 0..len {
                dx[at(j)] = y[at(j)] * (dy[at(j)] - dot);
                ldx[at(j)] = dy[at(j)] - ly[at(j)].exp() * sum;
            }
        }
    }
    (dx, ldx)
}

fn to<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&v| T::from_f64(v)).collect()
}

fn check<T: Element>(outer: usize, len: usize, inner: usize, seed: u64, tol: f64) {
    let n = outer * len * inner;
    // Spread of ±8 exercises the max shift.
    let x: Vec<T> = random_vec::<T>(n, seed).iter().map(|&v| v * T::from_f64(8.0)).collect();
    let dy: Vec<T> = random_vec(n, seed + 1);
    let x64: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let (ry, rly) = reference(&x64, outer, len, inner);
    let (mut y, mut ly) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    softmax(&x, outer, len, inner, &mut y);
    log_softmax(&x, outer, len, inner, &mut ly);
    assert_close(&y, &to::<T>(&ry), tol, tol);
    assert_close(&ly, &to::<T>(&rly), tol, tol);
    // Rows sum to 1.
    let mut sums = vec![T::ZERO; outer * inner];
    crate::reduce::reduce(crate::reduce::ReduceOp::Sum, &y, &[outer, len, inner], &[1], &mut sums);
    if len > 0 {
        assert_close(&sums, &vec![T::ONE; outer * inner], 8.0 * tol, 0.0);
    }
    // Backward from the kernels' own outputs vs the formula loop on the same values.
    let f = |v: &[T]| v.iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    let (rdx, rldx) = reference_backward(&f(&y), &f(&ly), &f(&dy), outer, len, inner);
    let (mut dx, mut ldx) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    softmax_backward(&y, &dy, outer, len, inner, &mut dx);
    log_softmax_backward(&ly, &dy, outer, len, inner, &mut ldx);
    assert_close(&dx, &to::<T>(&rdx), tol, tol);
    assert_close(&ldx, &to::<T>(&rldx), tol * (len.max(1) as f64), tol);
}

#[test]
fn matches_reference_on_random_shapes_f32_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..40u64 {
        let mut pick = || DIMS[rng.gen_range(0..DIMS.len())];
        let (outer, len, inner) = (pick(), pick(), if case % 2 == 0 { 1 } else { pick() });
        check::<f32>(outer, len, inner, case, 2e-6);
        check::<f64>(outer, len, inner, case, 1e-13);
    }
    // Above the parallel threshold, contiguous and strided.
    check::<f32>(300, 129, 1, 3, 2e-6);
    check::<f32>(40, 65, 17, 4, 2e-6);
    check::<f64>(1, 40_000, 1, 5, 1e-13);
}

/// Central differences of L(x) = <w, f(x)> in f64 against the backward kernels.
#[test]
fn backward_matches_finite_differences() {
    for &(outer, len, inner) in &[(2, 7, 1), (3, 5, 4), (1, 17, 1), (2, 1, 3)] {
        let n = outer * len * inner;
        let x: Vec<f64> = random_vec::<f64>(n, 21).iter().map(|v| v * 3.0).collect();
        let w: Vec<f64> = random_vec(n, 22);
        for log in [false, true] {
            let forward = |x: &[f64]| {
                let mut y = vec![0.0; n];
                if log {
                    log_softmax(x, outer, len, inner, &mut y)
                } else {
                    softmax(x, outer, len, inner, &mut y)
                }
                y
            };
            let loss = |x: &[f64]| forward(x).iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            let y = forward(&x);
            let mut dx = vec![0.0; n];
            if log {
                log_softmax_backward(&y, &w, outer, len, inner, &mut dx)
            } else {
                softmax_backward(&y, &w, outer, len, inner, &mut dx)
            }
            let eps = 1e-6;
            let numeric: Vec<f64> = (0..n)
                .map(|k| {
                    let (mut p, mut m) = (x.clone(), x.clone());
                    p[k] += eps;
                    m[k] -= eps;
                    (loss(&p) - loss(&m)) / (2.0 * eps)
                })
                .collect();
            assert_close(&dx, &numeric, 1e-8, 1e-6);
        }
    }
}

#[test]
fn edge_rows_follow_pytorch() {
    let ninf = f32::NEG_INFINITY;
    // Row 0 all −∞ → NaN; row 1 huge but finite → exact halves; row 2 has one −∞ entry → 0 there.
    let x = [ninf, ninf, 1e30, 1e30, ninf, 0.0];
    let (mut y, mut ly) = ([0.0f32; 6], [0.0f32; 6]);
    softmax(&x, 3, 2, 1, &mut y);
    log_softmax(&x, 3, 2, 1, &mut ly);
    assert!(y[..2].iter().chain(&ly[..2]).all(|v| v.is_nan()));
    assert_eq!(&y[2..], &[0.5, 0.5, 0.0, 1.0]);
    assert_eq!(&ly[2..], &[-std::f32::consts::LN_2, -std::f32::consts::LN_2, ninf, 0.0]);
    // The same in the strided layout (outer 1, len 2, inner 3).
    let xt = [ninf, 1e30, ninf, ninf, 1e30, 0.0];
    softmax(&xt, 1, 2, 3, &mut y);
    assert!(y[0].is_nan() && y[3].is_nan());
    assert_eq!([y[1], y[4], y[2], y[5]], [0.5, 0.5, 0.0, 1.0]);
}

#[test]
fn bit_identical_across_thread_counts() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut bits = Vec::new();
            for &(outer, len, inner) in &[(512, 257, 1), (64, 33, 65), (1, 100_000, 1)] {
                let n = outer * len * inner;
                let x: Vec<f32> = random_vec(n, 7);
                let mut y = vec![0.0f32; n];
                let mut dx = vec![0.0f32; n];
                softmax(&x, outer, len, inner, &mut y);
                softmax_backward(&y, &x, outer, len, inner, &mut dx);
                bits.extend(y.iter().chain(&dx).map(|v| v.to_bits()));
                log_softmax(&x, outer, len, inner, &mut y);
                log_softmax_backward(&y, &x, outer, len, inner, &mut dx);
                bits.extend(y.iter().chain(&dx).map(|v| v.to_bits()));
            }
            bits
        })
    };
    assert!(run(1) == run(2));
}

//! Layer norm against a plain f64 loop and finite differences; accuracy with a large offset;
//! determinism across thread counts.

use super::*;
use crate::testing::{assert_close, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: [usize; 6] = [0, 1, 7, 17, 65, 129];

/// Plain loop: (y, mean, rstd) in f64.
fn reference(
    x: &[f64],
    rows: usize,
    cols: usize,
    g: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mu = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / cols as f64;
        let rs = 1.0 / (var + eps).sqrt();
        (mean[r], rstd[r]) = (mu, rs);
        for c in 0..cols {
            y[r * cols + c] = (row[c] - mu) * rs * g.map_or(1.0, |g| g[c]) + b.map_or(0.0, |b| b[c]);
        }
    }
    (y, mean, rstd)
}

/// Plain loop of the backward formula: (dx, dgamma, dbeta) in f64.
#[allow(clippy::too_many_arguments)]
fn reference_backward(
    dy: &[f64],
    x: &[f64],
    mean: &[f64],
    rstd: &[f64],
    g: Option<&[f64]>,
    rows: usize,
    cols: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; cols], vec![0.0; cols]);
    for r in 0..rows {
        let at = |c: usize| r * cols + c;
        let xh = |c: usize| (x[at(c)] - mean[r]) * rstd[r];
        let gh = |c: usize| dy[at(c)] * g.map_or(1.0, |g| g[c]);
        let a = (0..cols).map(gh).sum::<f64>() / cols as f64;
        let b = (0..cols).map(|c| gh(c) * xh(c)).sum::<f64>() / cols as f64;
        for c in 0..cols {
            dx[at(c)] = rstd[r] * (gh(c) - a - xh(c) * b);
            dg[c] += dy[at(c)] * xh(c);
            db[c] += dy[at(c)];
        }
    }
    (dx, dg, db)
}

fn to<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&v| T::from_f64(v)).collect()
}

fn f64s<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|v| v.to_f64()).collect()
}

fn check<T: Element>(rows: usize, cols: usize, affine: bool, seed: u64, tol: f64) {
    let n = rows * cols;
    let x: Vec<T> = random_vec::<T>(n, seed).iter().map(|&v| v * T::from_f64(3.0) + T::ONE).collect();
    let dy: Vec<T> = random_vec(n, seed + 1);
    let g: Vec<T> = random_vec(cols, seed + 2);
    let b: Vec<T> = random_vec(cols, seed + 3);
    let (gm, bt) = if affine { (Some(&g[..]), Some(&b[..])) } else { (None, None) };
    let eps = 1e-5;
    let (mut y, mut mean, mut rstd) = (vec![T::ZERO; n], vec![T::ZERO; rows], vec![T::ZERO; rows]);
    layer_norm(&x, rows, cols, gm, bt, T::from_f64(eps), &mut y, &mut mean, &mut rstd);
    let (g64, b64) = (f64s(&g), f64s(&b));
    let (ry, rm, rr) =
        reference(&f64s(&x), rows, cols, affine.then_some(&g64[..]), affine.then_some(&b64[..]), eps);
    assert_close(&y, &to::<T>(&ry), tol, tol);
    assert_close(&mean, &to::<T>(&rm), tol, tol);
    assert_close(&rstd, &to::<T>(&rr), tol, tol);
    let (mut dx, mut dg, mut db) = (vec![T::ZERO; n], vec![T::ONE; cols], vec![T::ONE; cols]);
    layer_norm_backward(&dy, &x, &mean, &rstd, gm, rows, cols, &mut dx, Some(&mut dg), Some(&mut db));
    let (rdx, rdg, rdb) = reference_backward(
        &f64s(&dy),
        &f64s(&x),
        &f64s(&mean),
        &f64s(&rstd),
        affine.then_some(&g64[..]),
        rows,
        cols,
    );
    assert_close(&dx, &to::<T>(&rdx), tol * 10.0, tol * 10.0);
    let scale = (rows.max(1) as f64).sqrt();
    assert_close(&dg, &to::<T>(&rdg), tol * scale, tol);
    assert_close(&db, &to::<T>(&rdb), tol * scale, tol);
}

#[test]
fn matches_reference_on_random_shapes_f32_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for case in 0..40u64 {
        let mut pick = || DIMS[rng.gen_range(0..DIMS.len())];
        let (rows, cols) = (pick(), pick());
        check::<f32>(rows, cols, case % 2 == 0, case, 2e-5);
        check::<f64>(rows, cols, case % 2 == 0, case, 1e-12);
    }
    // Above the parallel threshold; one long row.
    check::<f32>(1000, 129, true, 1, 2e-5);
    check::<f64>(3, 5000, true, 2, 1e-12);
}

/// Central differences of L = <w, y> with respect to x, γ and β, in f64.
#[test]
fn backward_matches_finite_differences() {
    let (rows, cols) = (3, 7);
    let x: Vec<f64> = random_vec(rows * cols, 41);
    let w: Vec<f64> = random_vec(rows * cols, 42);
    let g: Vec<f64> = random_vec::<f64>(cols, 43).iter().map(|v| v + 1.5).collect();
    let b: Vec<f64> = random_vec(cols, 44);
    let loss = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut y, mut m, mut r) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
        layer_norm(x, rows, cols, Some(g), Some(b), 1e-5, &mut y, &mut m, &mut r);
        y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
    };
    let (mut y, mut m, mut r) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
    layer_norm(&x, rows, cols, Some(&g), Some(&b), 1e-5, &mut y, &mut m, &mut r);
    let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]);
    layer_norm_backward(&w, &x, &m, &r, Some(&g), rows, cols, &mut dx, Some(&mut dg), Some(&mut db));
    let eps = 1e-6;
    let fd = |which: usize, len: usize| -> Vec<f64> {
        (0..len)
            .map(|k| {
                let (mut xs, mut gs, mut bs) =
                    ([x.clone(), x.clone()], [g.clone(), g.clone()], [b.clone(), b.clone()]);
                for (s, sign) in [(0, 1.0), (1, -1.0)] {
                    match which {
                        0 => xs[s][k] += sign * eps,
                        1 => gs[s][k] += sign * eps,
                        _ => bs[s][k] += sign * eps,
                    }
                }
                (loss(&xs[0], &gs[0], &bs[0]) - loss(&xs[1], &gs[1], &bs[1])) / (2.0 * eps)
            })
            .collect()
    };
    assert_close(&dx, &fd(0, rows * cols), 1e-7, 1e-6);
    assert_close(&dg, &fd(1, cols), 1e-7, 1e-6);
    assert_close(&db, &fd(2, cols), 1e-7, 1e-6);
}

#[test]
fn large_offset_keeps_f32_variance_accurate() {
    // Rows of 1e4 + noise: a one-pass E[x²] − E[x]² would lose every digit in f32.
    let (rows, cols) = (4, 4096);
    let x: Vec<f32> = random_vec::<f32>(rows * cols, 51).iter().map(|v| 1e4 + v).collect();
    let (mut y, mut m, mut r) = (vec![0.0f32; rows * cols], vec![0.0f32; rows], vec![0.0f32; rows]);
    layer_norm(&x, rows, cols, None, None, 1e-5, &mut y, &mut m, &mut r);
    let (_, rm, rr) = reference(&f64s(&x), rows, cols, None, None, 1e-5);
    assert_close(&r, &to::<f32>(&rr), 0.0, 1e-4);
    assert_close(&m, &to::<f32>(&rm), 0.0, 1e-6);
}

#[test]
fn bit_identical_across_thread_counts() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (rows, cols) = (3000, 129);
            let x: Vec<f32> = random_vec(rows * cols, 61);
            let g: Vec<f32> = random_vec(cols, 62);
            let (mut y, mut m, mut r) = (vec![0.0f32; rows * cols], vec![0.0f32; rows], vec![0.0f32; rows]);
            layer_norm(&x, rows, cols, Some(&g), Some(&g), 1e-5, &mut y, &mut m, &mut r);
            let (mut dx, mut dg, mut db) =
                (vec![0.0f32; rows * cols], vec![0.0f32; cols], vec![0.0f32; cols]);
            layer_norm_backward(&x, &x, &m, &r, Some(&g), rows, cols, &mut dx, Some(&mut dg), Some(&mut db));
            y.iter()
                .chain(&m)
                .chain(&r)
                .chain(&dx)
                .chain(&dg)
                .chain(&db)
                .map(|v| v.to_bits())
                .collect::<Vec<u32>>()
        })
    };
    assert!(run(1) == run(2));
}

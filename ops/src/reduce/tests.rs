//! Reductions against a plain f64 loop over multi-indices, on random shapes and every
//! axis subset; accuracy of long f32 sums; edge values; determinism across thread counts.

use super::*;
use crate::testing::{assert_close, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: [usize; 6] = [0, 1, 7, 17, 65, 129];

/// The values of `x` that land on each output element, in input order.
fn groups(x: &[f64], shape: &[usize], axes: &[usize]) -> Vec<Vec<f64>> {
    let out_shape: Vec<usize> =
        shape.iter().enumerate().map(|(a, &d)| if axes.contains(&a) { 1 } else { d }).collect();
    let mut g = vec![Vec::new(); numel(&out_shape)];
    let mut idx = vec![0usize; shape.len()];
    for &v in x {
        let mut o = 0;
        for (a, &i) in idx.iter().enumerate() {
            o = o * out_shape[a] + if axes.contains(&a) { 0 } else { i };
        }
        g[o].push(v);
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    g
}

fn reference(op: ReduceOp, vals: &[f64]) -> f64 {
    let max = vals.iter().fold(f64::NEG_INFINITY, |m, &v| {
        if v > m || v.is_nan() || m.is_nan() {
            if m.is_nan() {
                m
            } else {
                v
            }
        } else {
            m
        }
    });
    let min = vals.iter().fold(f64::INFINITY, |m, &v| {
        if v < m || v.is_nan() || m.is_nan() {
            if m.is_nan() {
                m
            } else {
                v
            }
        } else {
            m
        }
    });
    let sum: f64 = vals.iter().sum();
    match op {
        ReduceOp::Sum => sum,
        ReduceOp::Mean => sum / vals.len() as f64,
        ReduceOp::Max => max,
        ReduceOp::Min => min,
        ReduceOp::LogSumExp if !max.is_finite() => max,
        ReduceOp::LogSumExp => max + vals.iter().map(|v| (v - max).exp()).sum::<f64>().ln(),
    }
}

const OPS: [ReduceOp; 5] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::LogSumExp];

fn check_shape<T: Element>(shape: &[usize], seed: u64) {
    let x: Vec<T> = random_vec(numel(shape), seed);
    let x64: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let eps = T::EPSILON.to_f64();
    for mask in 0..1usize << shape.len() {
        let axes: Vec<usize> = (0..shape.len()).filter(|a| mask >> a & 1 == 1).collect();
        let g = groups(&x64, shape, &axes);
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        for op in OPS {
            let mut out = vec![T::from_f64(7.0); g.len()];
            reduce(op, &x, shape, &axes, &mut out);
            let expected: Vec<T> = g.iter().map(|v| T::from_f64(reference(op, v))).collect();
            let c = count.max(2) as f64;
            assert_close(&out, &expected, 16.0 * eps * c.sqrt() * c.log2(), 16.0 * eps);
        }
    }
}

fn random_shape(rng: &mut ChaCha8Rng, rank: usize, cap: usize) -> Vec<usize> {
    loop {
        let s: Vec<usize> = (0..rank).map(|_| DIMS[rng.gen_range(0..DIMS.len())]).collect();
        if numel(&s) <= cap {
            return s;
        }
    }
}

#[test]
fn every_axis_subset_matches_reference_f32_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for d in DIMS {
        check_shape::<f32>(&[d], d as u64);
        check_shape::<f64>(&[d], d as u64);
    }
    for rank in 2..=3 {
        for case in 0..24 {
            let shape = random_shape(&mut rng, rank, 150_000);
            check_shape::<f32>(&shape, case);
            check_shape::<f64>(&shape, case);
        }
    }
    // Shapes that cross the parallel threshold and long rows/columns.
    for shape in [vec![129, 65, 17], vec![3, 70_000], vec![70_000, 3], vec![5, 1, 129, 7]] {
        check_shape::<f32>(&shape, 9);
        check_shape::<f64>(&shape, 9);
    }
}

#[test]
fn rank_four_and_five_multi_stage() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in 0..12 {
        let rank = 4 + case % 2;
        let shape: Vec<usize> = (0..rank).map(|_| [1, 2, 3, 7, 9][rng.gen_range(0..5)]).collect();
        check_shape::<f32>(&shape, case as u64);
        check_shape::<f64>(&shape, case as u64);
    }
}

#[test]
fn empty_and_scalar_cases() {
    let x: Vec<f32> = vec![];
    for (op, want) in OPS.iter().zip([0.0, f32::NAN, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY]) {
        let mut out = [5.0f32; 3];
        reduce(*op, &x, &[0, 3], &[0], &mut out);
        assert_close(&out, &[want; 3], 0.0, 0.0);
        let mut none: [f32; 0] = [];
        reduce(*op, &x, &[0, 3], &[1], &mut none);
    }
    let mut out = [0.0f64];
    reduce(ReduceOp::Mean, &[2.5], &[], &[], &mut out);
    assert_eq!(out[0], 2.5);
    assert_eq!(ReduceOp::LogSumExp.to_string(), "logsumexp");
    assert_eq!(ReduceOp::Mean.to_string(), "mean");
}

#[test]
fn logsumexp_is_stable_and_max_propagates_nan() {
    let ninf = f64::NEG_INFINITY;
    let x = [1000.0, 1000.0, ninf, ninf, ninf, 5.0, f64::INFINITY, 0.0];
    let mut out = [0.0; 4];
    reduce(ReduceOp::LogSumExp, &x, &[4, 2], &[1], &mut out);
    // ln(2e^1000) = 1000 + ln 2; all −∞ stays −∞; e^5 + e^-∞ = e^5; +∞ dominates.
    assert_eq!(out, [1000.0 + 2f64.ln(), ninf, 5.0, f64::INFINITY]);
    let mut c = [0.0; 2];
    reduce(ReduceOp::LogSumExp, &x, &[4, 2], &[0], &mut c);
    // Column 0 holds +∞; column 1 is (1000, −∞, 5, 0), dominated by 1000.
    assert_eq!(c, [f64::INFINITY, 1000.0]);
    let y = [1.0, f32::NAN, 3.0, 2.0];
    let mut m = [0.0f32; 1];
    reduce(ReduceOp::Max, &y, &[4], &[0], &mut m);
    assert!(m[0].is_nan());
    reduce(ReduceOp::Min, &y, &[2, 2], &[0, 1], &mut m);
    assert!(m[0].is_nan());
}

#[test]
fn long_f32_sums_stay_accurate() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 1 << 20;
    let x: Vec<f32> = (0..n).map(|_| rng.gen::<f32>()).collect();
    let exact: f64 = x.iter().map(|&v| v as f64).sum();
    let mut out = [0.0f32];
    reduce(ReduceOp::Sum, &x, &[n], &[0], &mut out);
    let rel = ((out[0] as f64 - exact) / exact).abs();
    assert!(rel < 2e-7, "row sum relative error {rel:e}");
    // The same data as 2^19 rows × 2 columns, reduced over rows.
    let mut cols = [0.0f32; 2];
    reduce(ReduceOp::Sum, &x, &[n / 2, 2], &[0], &mut cols);
    for (c, &got) in cols.iter().enumerate() {
        let exact: f64 = x.iter().skip(c).step_by(2).map(|&v| v as f64).sum();
        let rel = ((got as f64 - exact) / exact).abs();
        assert!(rel < 2e-7, "column sum relative error {rel:e}");
    }
}

#[test]
fn argmax_argmin_first_occurrence_and_nan() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for case in 0..30 {
        let rank = 1 + case % 3;
        let mut shape = random_shape(&mut rng, rank, 100_000);
        let axis = rng.gen_range(0..rank);
        shape[axis] = shape[axis].max(1);
        // Values on a coarse grid so ties are common.
        let x: Vec<f32> =
            random_vec::<f32>(numel(&shape), case as u64).iter().map(|v| (v * 4.0).round()).collect();
        let (outer, len, inner) = split_at_axis(&shape, axis);
        for is_max in [true, false] {
            let mut out = vec![usize::MAX; outer * inner];
            if is_max {
                argmax(&x, &shape, axis, &mut out);
            } else {
                argmin(&x, &shape, axis, &mut out);
            }
            for o in 0..outer {
                for i in 0..inner {
                    let col: Vec<f32> = (0..len).map(|j| x[(o * len + j) * inner + i]).collect();
                    let best =
                        col.iter().cloned().fold(col[0], |b, v| if is_max { b.max(v) } else { b.min(v) });
                    let want = col.iter().position(|&v| v == best).unwrap();
                    assert_eq!(out[o * inner + i], want, "shape {shape:?} axis {axis}");
                }
            }
        }
    }
    let x = [1.0f64, 3.0, f64::NAN, 3.0, f64::NAN];
    let mut out = [0usize];
    argmax(&x, &[5], 0, &mut out);
    assert_eq!(out[0], 2);
    argmin(&x, &[5], 0, &mut out);
    assert_eq!(out[0], 2);
    argmax(&x[..4], &[4], 0, &mut out);
    assert_eq!(out[0], 2);
}

#[test]
fn bit_identical_across_thread_counts() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut results: Vec<Vec<u32>> = Vec::new();
            let cases: [(Vec<usize>, Vec<usize>); 6] = [
                (vec![3 << 19], vec![0]),
                (vec![3, 300_001], vec![1]),
                (vec![300_001, 3], vec![0]),
                (vec![4096, 65], vec![0]),
                (vec![17, 129, 65], vec![0, 2]),
                (vec![2, 1 << 18, 2], vec![1]),
            ];
            for (shape, axes) in cases {
                let x: Vec<f32> = random_vec(numel(&shape), 5);
                for op in OPS {
                    let kept: usize =
                        (0..shape.len()).filter(|a| !axes.contains(a)).map(|a| shape[a]).product();
                    let mut out = vec![0.0f32; kept];
                    reduce(op, &x, &shape, &axes, &mut out);
                    results.push(out.iter().map(|v| v.to_bits()).collect());
                }
            }
            results
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

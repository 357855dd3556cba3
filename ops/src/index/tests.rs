//! Index kernels against plain loops, the adjoint identities, and range checks.

use super::*;
use crate::testing::{assert_close, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: [usize; 6] = [0, 1, 7, 17, 65, 129];

fn dot<T: Element>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a.to_f64() * b.to_f64()).sum()
}

fn check_select<T: Element>(outer: usize, len: usize, inner: usize, nj: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let indices: Vec<usize> = (0..nj).map(|_| rng.gen_range(0..len)).collect();
    let x: Vec<T> = random_vec(outer * len * inner, seed);
    let g: Vec<T> = random_vec(outer * nj * inner, seed + 1);
    let mut sel = vec![T::ZERO; g.len()];
    index_select(&x, outer, len, inner, &indices, &mut sel);
    let init: Vec<T> = random_vec(x.len(), seed + 2);
    let mut added = init.clone();
    index_add(&g, outer, len, inner, &indices, &mut added);
    // Plain loops.
    let (mut want_sel, mut want_add) = (vec![T::ZERO; g.len()], init.clone());
    for o in 0..outer {
        for (j, &ix) in indices.iter().enumerate() {
            for i in 0..inner {
                want_sel[(o * nj + j) * inner + i] = x[(o * len + ix) * inner + i];
                want_add[(o * len + ix) * inner + i] += g[(o * nj + j) * inner + i];
            }
        }
    }
    assert_close(&sel, &want_sel, 0.0, 0.0);
    assert_close(&added, &want_add, 0.0, 0.0);
    // Adjoint: <select(x), g> = <x, add(g)> (index_add into zeros).
    let mut adj = vec![T::ZERO; x.len()];
    index_add(&g, outer, len, inner, &indices, &mut adj);
    let (lhs, rhs) = (dot(&sel, &g), dot(&x, &adj));
    assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()), "adjoint {lhs} vs {rhs}");
}

#[test]
fn index_select_and_add_match_loops_and_are_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(71);
    for case in 0..40u64 {
        let mut pick = || DIMS[rng.gen_range(0..DIMS.len())];
        let (outer, len, inner, nj) = (pick(), pick().max(1), pick(), pick());
        check_select::<f32>(outer, len, inner, nj, case);
        check_select::<f64>(outer, len, inner, nj, case);
    }
    check_select::<f32>(300, 65, 17, 129, 5); // above the parallel threshold
}

/// Row-major multi-index of flat position `k`.
fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

fn check_gather<T: Element>(x_shape: &[usize], axis: usize, index_shape: &[usize], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = numel(index_shape);
    let index: Vec<usize> = (0..n).map(|_| rng.gen_range(0..x_shape[axis])).collect();
    let x: Vec<T> = random_vec(numel(x_shape), seed);
    let g: Vec<T> = random_vec(n, seed + 1);
    let mut out = vec![T::ZERO; n];
    gather(&x, x_shape, axis, &index, index_shape, &mut out);
    let init: Vec<T> = random_vec(x.len(), seed + 2);
    let mut scat = init.clone();
    scatter_add(&mut scat, x_shape, axis, &index, index_shape, &g);
    let (mut want, mut want_scat) = (vec![T::ZERO; n], init);
    for k in 0..n {
        let mut idx = unravel(k, index_shape);
        idx[axis] = index[k];
        want[k] = x[ravel(&idx, x_shape)];
        want_scat[ravel(&idx, x_shape)] += g[k];
    }
    assert_close(&out, &want, 0.0, 0.0);
    assert_close(&scat, &want_scat, 0.0, 0.0);
    let mut adj = vec![T::ZERO; x.len()];
    scatter_add(&mut adj, x_shape, axis, &index, index_shape, &g);
    let (lhs, rhs) = (dot(&out, &g), dot(&x, &adj));
    assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()), "adjoint {lhs} vs {rhs}");
}

#[test]
fn gather_and_scatter_add_match_loops_and_are_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(72);
    for case in 0..60u64 {
        let rank = 1 + (case % 3) as usize;
        let x_shape: Vec<usize> = (0..rank).map(|_| [1, 7, 17, 65][rng.gen_range(0..4)]).collect();
        let axis = rng.gen_range(0..rank);
        // Off the axis the index may be smaller (or empty); along it, any length.
        let index_shape: Vec<usize> = (0..rank)
            .map(|d| {
                if d == axis {
                    DIMS[rng.gen_range(0..4)]
                } else if case % 2 == 0 {
                    x_shape[d]
                } else {
                    rng.gen_range(0..=x_shape[d])
                }
            })
            .collect();
        check_gather::<f32>(&x_shape, axis, &index_shape, case);
        check_gather::<f64>(&x_shape, axis, &index_shape, case);
    }
    check_gather::<f32>(&[129, 65, 7], 1, &[129, 129, 7], 3); // above the parallel threshold
}

#[test]
#[should_panic(expected = "internal invariant")]
fn out_of_range_index_panics() {
    let mut out = [0.0f32; 2];
    index_select(&[1.0f32, 2.0, 3.0], 1, 3, 1, &[0, 3], &mut out);
}

#[test]
#[should_panic(expected = "internal invariant")]
fn out_of_range_gather_index_panics() {
    let mut out = [0.0f64; 2];
    gather(&[1.0, 2.0, 3.0, 4.0], &[2, 2], 1, &[0, 2], &[2, 1], &mut out);
}

#[test]
fn scatters_bit_identical_across_thread_counts() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(73);
            let (outer, len, inner, nj) = (64, 17, 65, 300);
            let indices: Vec<usize> = (0..nj).map(|_| rng.gen_range(0..len)).collect();
            let src: Vec<f32> = random_vec(outer * nj * inner, 74);
            let mut out = vec![0.0f32; outer * len * inner];
            index_add(&src, outer, len, inner, &indices, &mut out);
            let shape = [64, 300, 65];
            let index: Vec<usize> = (0..numel(&shape)).map(|_| rng.gen_range(0..17)).collect();
            let mut scat = vec![0.0f32; 64 * 17 * 65];
            scatter_add(&mut scat, &[64, 17, 65], 1, &index, &shape, &src);
            out.iter().chain(&scat).map(|v| v.to_bits()).collect::<Vec<u32>>()
        })
    };
    assert!(run(1) == run(2));
}

//! Tests of the binary kernels: every op and broadcast pattern against `apply_f64` in a plain
//! index loop (f32 and f64, zero-sized and rank-0 shapes), NaN rules, `where_select`,
//! determinism across thread counts, and the layout simplification.

use super::*;
use crate::testing::{assert_close, random_vec};
use crate::{broadcast_shapes, contiguous_strides};

/// Values on a coarse grid (so comparisons see ties), some NaN / inf / zero.
fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut v: Vec<T> =
        random_vec::<f64>(len, seed).into_iter().map(|x| T::from_f64((x * 6.0).round() / 2.0)).collect();
    let specials = [f64::NAN, f64::INFINITY, -0.0, f64::NEG_INFINITY];
    for (i, s) in (0..len).step_by(11).zip(specials.iter().cycle().skip(seed as usize % 4)) {
        v[i] = T::from_f64(*s);
    }
    v
}

/// The flat index into a buffer of `shape` read at output coordinate `coord` (NumPy rule,
/// computed independently of the kernel's layout code).
fn source_index(shape: &[usize], coord: &[usize]) -> usize {
    let off = coord.len() - shape.len();
    let strides = contiguous_strides(shape);
    (0..shape.len()).map(|d| if shape[d] == 1 { 0 } else { coord[off + d] * strides[d] }).sum()
}

fn coords(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![];
    for mut i in 0..numel(shape) {
        let mut c = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            c[d] = i % shape[d];
            i /= shape[d];
        }
        all.push(c);
    }
    all
}

fn shape_pairs() -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut pairs: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![3, 1, 5], vec![4, 5]),
        (vec![], vec![7]),
        (vec![7], vec![]),
        (vec![], vec![]),
        (vec![1], vec![]),
        (vec![5, 1], vec![1, 9]),
        (vec![17, 1], vec![1, 65]),
        (vec![9, 17], vec![17]),
        (vec![9, 17], vec![9, 1]),
        (vec![2, 3, 4, 5], vec![3, 1, 5]),
        (vec![2, 1, 4, 1], vec![1, 3, 1, 5]),
        (vec![0, 3], vec![3]),
        (vec![2, 0, 3], vec![1, 3]),
        (vec![4, 0], vec![]),
        (vec![300, 257], vec![257]),
        (vec![257, 300], vec![257, 1]),
        (vec![70_001], vec![70_001]),
        (vec![1, 70_001], vec![]),
    ];
    for n in [0, 1, 7, 17, 65, 129] {
        pairs.push((vec![n], vec![n]));
        pairs.push((vec![3, n], vec![3, n]));
        pairs.push((vec![n, 3], vec![1, 3]));
    }
    pairs
}

fn check<T: Element>(rtol: f64) {
    for (seed, (a_shape, b_shape)) in shape_pairs().into_iter().enumerate() {
        let out_shape = broadcast_shapes(&a_shape, &b_shape).unwrap();
        let a = values::<T>(numel(&a_shape), 2 * seed as u64);
        let b = values::<T>(numel(&b_shape), 2 * seed as u64 + 1);
        let all = coords(&out_shape);
        for op in BinaryOp::all() {
            let want: Vec<T> = all
                .iter()
                .map(|c| {
                    let (x, y) = (a[source_index(&a_shape, c)], b[source_index(&b_shape, c)]);
                    T::from_f64(op.apply_f64(x.to_f64(), y.to_f64()))
                })
                .collect();
            let mut got = vec![T::from_f64(42.0); want.len()];
            binary(op, &a, &a_shape, &b, &b_shape, &mut got, &out_shape);
            assert_close(&got, &want, 0.0, rtol);
        }
    }
}

#[test]
fn every_op_and_broadcast_pattern_f32() {
    // Exact except pow, whose f32 powf may differ from the rounded f64 pow by an ulp.
    check::<f32>(2.5e-7);
}

#[test]
fn every_op_and_broadcast_pattern_f64() {
    check::<f64>(1e-15);
}

#[test]
fn comparisons_and_nan() {
    let (a, b) = ([1.0, 2.0, f64::NAN, 3.0], [1.0, 3.0, 1.0, f64::NAN]);
    let run = |op| {
        let mut out = [0.0; 4];
        binary(op, &a, &[4], &b, &[4], &mut out, &[4]);
        out
    };
    assert_eq!(run(BinaryOp::Eq), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(run(BinaryOp::Ne), [0.0, 1.0, 1.0, 1.0]);
    assert_eq!(run(BinaryOp::Le), [1.0, 1.0, 0.0, 0.0]);
    let max = run(BinaryOp::Maximum);
    assert_eq!(&max[..2], &[1.0, 3.0]);
    assert!(max[2].is_nan() && max[3].is_nan());
    let min = run(BinaryOp::Minimum);
    assert!(min[2].is_nan() && min[3].is_nan());
}

#[test]
fn where_select_broadcasts_three_ways() {
    let cases: [[&[usize]; 3]; 7] = [
        [&[4, 1], &[1, 5], &[]],
        [&[], &[3, 2], &[2]],
        [&[2, 3, 1], &[3, 4], &[2, 1, 4]],
        [&[129], &[129], &[129]],
        [&[0, 2], &[2], &[1]],
        [&[], &[], &[]],
        [&[300, 1], &[300, 257], &[257]],
    ];
    for (seed, [cs, as_, bs]) in cases.into_iter().enumerate() {
        let out_shape = broadcast_shapes(&broadcast_shapes(cs, as_).unwrap(), bs).unwrap();
        let seed = seed as u64 * 3;
        let cond: Vec<f64> =
            values::<f64>(numel(cs), seed).iter().map(|v| if *v > 0.0 { 1.0 } else { 0.0 }).collect();
        let (a, b) = (random_vec::<f32>(numel(as_), seed + 1), random_vec::<f32>(numel(bs), seed + 2));
        let cond32: Vec<f32> = cond.iter().map(|&v| v as f32).collect();
        let want: Vec<f32> = coords(&out_shape)
            .iter()
            .map(|c| {
                let pick = cond32[source_index(cs, c)] != 0.0;
                if pick {
                    a[source_index(as_, c)]
                } else {
                    b[source_index(bs, c)]
                }
            })
            .collect();
        let mut got = vec![7.0f32; want.len()];
        where_select(&cond32, cs, &a, as_, &b, bs, &mut got, &out_shape);
        assert_eq!(got, want, "shapes {cs:?} {as_:?} {bs:?}");
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let (a_shape, b_shape, out_shape) = ([513, 1, 301], [7, 301], [513, 7, 301]);
    let a = random_vec::<f32>(numel(&a_shape), 1);
    let b = random_vec::<f32>(numel(&b_shape), 2);
    for op in [BinaryOp::Add, BinaryOp::Pow, BinaryOp::Maximum] {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut out = vec![0.0f32; numel(&out_shape)];
            pool.install(|| binary(op, &a, &a_shape, &b, &b_shape, &mut out, &out_shape));
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(2), "{op}: 1 vs 2 threads");
    }
}

#[test]
fn layout_merges_what_it_can() {
    let l = Layout::new(&[6, 4, 5], [&[6, 4, 5], &[5]]);
    assert_eq!((l.dims.as_slice(), l.strides[1].as_slice()), (&[24, 5][..], &[0, 1][..]));
    let l = Layout::new(&[6, 4, 5], [&[6, 4, 5], &[6, 4, 5]]);
    assert_eq!(l.dims.as_slice(), &[120]);
    let l = Layout::new(&[6, 1, 5], [&[6, 1, 1], &[1, 1, 5]]);
    assert_eq!((l.dims.as_slice(), l.strides[0].as_slice()), (&[6, 5][..], &[1, 0][..]));
    let l = Layout::new(&[], [&[], &[]]);
    assert_eq!(l.dims.as_slice(), &[1]);
}

#[test]
fn names_follow_pytorch() {
    let names: Vec<String> = BinaryOp::all().iter().map(|op| op.to_string()).collect();
    assert_eq!(
        names,
        ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"]
    );
    assert!(BinaryOp::Ge.is_comparison() && !BinaryOp::Pow.is_comparison());
}

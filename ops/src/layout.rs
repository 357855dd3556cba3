//! Data movement: permute, broadcast (expand), narrow/cat slabs and constant padding.
//!
//! These are the copies behind the tensor "movement" ops. Buffers stay row-major and
//! contiguous; every function writes a fresh contiguous output.

use crate::{broadcast_strides, contiguous_strides, numel};
use rayon::prelude::*;

/// The offsets `Σ index[d]·strides[d]` of the multi-indices of `shape` in row-major order,
/// from the `first`-th: its multi-index is divided out once, then stepped like an odometer.
struct Offsets<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    index: Vec<usize>,
    offset: usize,
}

impl<'a> Offsets<'a> {
    fn from(first: usize, shape: &'a [usize], strides: &'a [usize]) -> Self {
        let mut index = vec![0; shape.len()];
        let mut rest = first;
        for (i, &n) in index.iter_mut().zip(shape).rev() {
            (*i, rest) = (rest % n, rest / n);
        }
        let offset = index.iter().zip(strides).map(|(&i, &s)| i * s).sum();
        Offsets { shape, strides, index, offset }
    }
}

impl Iterator for Offsets<'_> {
    type Item = usize;

    /// The current offset, then a step to the next multi-index (past the last one it wraps to
    /// the first: the caller bounds the walk).
    #[inline]
    fn next(&mut self) -> Option<usize> {
        let current = self.offset;
        for ((i, &n), &s) in self.index.iter_mut().zip(self.shape).zip(self.strides).rev() {
            *i += 1;
            self.offset += s;
            if *i < n {
                break;
            }
            (*i, self.offset) = (0, self.offset - n * s);
        }
        Some(current)
    }
}

/// out = x with its axes reordered: `out.shape[i] = shape[perm[i]]`. `perm` is a permutation.
pub fn permute<T: Copy + Send + Sync>(x: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    assert!(
        x.len() == numel(shape) && out.len() == x.len() && perm.len() == shape.len(),
        "internal invariant: permute lengths"
    );
    let strides = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let read_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    gather_strided(x, &out_shape, &read_strides, out);
}

/// out = x broadcast to `out_shape` (NumPy rules; `shape` must broadcast to `out_shape`).
pub fn expand<T: Copy + Send + Sync>(x: &[T], shape: &[usize], out_shape: &[usize], out: &mut [T]) {
    assert!(x.len() == numel(shape) && out.len() == numel(out_shape), "internal invariant: expand lengths");
    let strides = broadcast_strides(shape, out_shape);
    gather_strided(x, out_shape, &strides, out);
}

/// Elements per parallel task of [`gather_strided`] and [`concat`]; smaller copies run on the
/// calling thread.
const COPY_PIECE: usize = 1 << 15;

/// `out` (contiguous, `shape`) = the elements of `x` at `Σ index[d]·strides[d]`, for every
/// multi-index in row-major order: the copy behind permute (permuted strides) and expand
/// (zero strides). Dimensions that stay adjacent in `x` are merged first, so the inner loop is
/// a slice copy, a fill or a strided walk over as many elements as possible.
fn gather_strided<T: Copy + Send + Sync>(x: &[T], shape: &[usize], strides: &[usize], out: &mut [T]) {
    let (shape, strides) = merge_dims(shape, strides);
    let inner = shape.last().copied().unwrap_or(1);
    if out.is_empty() || inner == 0 {
        return;
    }
    let rows = |first_row: usize, out: &mut [T]| {
        let (outer_shape, outer_strides) =
            (&shape[..shape.len().saturating_sub(1)], &strides[..strides.len().saturating_sub(1)]);
        let step = strides.last().copied().unwrap_or(0);
        for (row, base) in
            out.chunks_exact_mut(inner).zip(Offsets::from(first_row, outer_shape, outer_strides))
        {
            match step {
                0 => row.fill(x[base]),
                1 => row.copy_from_slice(&x[base..base + inner]),
                _ => row.iter_mut().zip(x[base..].iter().step_by(step)).for_each(|(o, &v)| *o = v),
            }
        }
    };
    let per = (COPY_PIECE / inner).max(1) * inner;
    if out.len() > per && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(per).enumerate().for_each(|(i, o)| rows(i * per / inner, o));
    } else {
        rows(0, out);
    }
}

/// Drops size-1 dimensions and merges each dimension into the next when `x` walks them as one
/// (`strides[d] = strides[d + 1]·shape[d + 1]`).
fn merge_dims(shape: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut dims, mut steps): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (&n, &s) in shape.iter().zip(strides).filter(|(&n, _)| n != 1) {
        match (dims.last_mut(), steps.last_mut()) {
            (Some(pn), Some(ps)) if *ps == s * n => {
                *pn *= n;
                *ps = s;
            }
            _ => {
                dims.push(n);
                steps.push(s);
            }
        }
    }
    (dims, steps)
}

/// Copies the slab `[.., start..start + n, ..]` of `x` laid out as (outer, len, inner) into `out`
/// laid out as (outer, n, inner).
pub fn narrow<T: Copy + Send + Sync>(
    x: &[T],
    (outer, len, inner): (usize, usize, usize),
    start: usize,
    n: usize,
    out: &mut [T],
) {
    assert!(
        start + n <= len && x.len() == outer * len * inner && out.len() == outer * n * inner,
        "internal invariant: narrow bounds"
    );
    for o in 0..outer {
        let src = &x[(o * len + start) * inner..(o * len + start + n) * inner];
        out[o * n * inner..(o + 1) * n * inner].copy_from_slice(src);
    }
}

/// Concatenation along an axis: `out`, laid out as `(outer, Σ ns, inner)`, from `parts[i]`
/// laid out as `(outer, ns[i], inner)` (the adjoint of [`narrow`]). The output is written in
/// its own order, one row of the outer axes at a time, and large ones are split over
/// threads: a stack of an RNN's 64 time steps, each a strided slab of the result, is one
/// sequential pass over it instead of 64 scattered ones.
pub fn concat<T: Copy + Send + Sync>(
    parts: &[&[T]],
    ns: &[usize],
    (outer, inner): (usize, usize),
    out: &mut [T],
) {
    let total: usize = ns.iter().sum();
    assert!(
        parts.len() == ns.len()
            && parts.iter().zip(ns).all(|(p, &n)| p.len() == outer * n * inner)
            && out.len() == outer * total * inner,
        "internal invariant: concat bounds"
    );
    if out.is_empty() {
        return;
    }
    // every copy: (source slab, its place in the output), in output order
    let mut copies: Vec<(&[T], &mut [T])> = Vec::with_capacity(outer * parts.len());
    for (o, mut row) in out.chunks_exact_mut(total * inner).enumerate() {
        for (part, &n) in parts.iter().zip(ns) {
            let (dst, rest) = row.split_at_mut(n * inner);
            copies.push((&part[o * n * inner..(o + 1) * n * inner], dst));
            row = rest;
        }
    }
    let len = outer * total * inner;
    if len > COPY_PIECE && rayon::current_num_threads() > 1 {
        // tasks of about COPY_PIECE elements
        let per_task = (COPY_PIECE * copies.len() / len).max(1);
        copies.into_par_iter().with_min_len(per_task).for_each(|(src, dst)| dst.copy_from_slice(src));
    } else {
        copies.into_iter().for_each(|(src, dst)| dst.copy_from_slice(src));
    }
}

/// Constant padding: `pads[d] = (before, after)` elements added on each side of axis `d`.
pub fn pad<T: Copy + Send + Sync>(
    x: &[T],
    shape: &[usize],
    pads: &[(usize, usize)],
    value: T,
    out: &mut [T],
) {
    let out_shape: Vec<usize> = shape.iter().zip(pads).map(|(&s, &(b, a))| s + b + a).collect();
    assert!(
        pads.len() == shape.len() && x.len() == numel(shape) && out.len() == numel(&out_shape),
        "internal invariant: pad lengths"
    );
    out.fill(value);
    let row = shape.last().copied().unwrap_or(1);
    if x.is_empty() || row == 0 {
        return;
    }
    let out_strides = contiguous_strides(&out_shape);
    let offset: usize = pads.iter().zip(&out_strides).map(|(&(b, _), &s)| b * s).sum();
    // the input's rows in order, each copied whole to its place in `out`
    let outer = shape.len().saturating_sub(1);
    for (src, o) in x.chunks_exact(row).zip(Offsets::from(0, &shape[..outer], &out_strides[..outer])) {
        out[offset + o..offset + o + row].copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random_vec;

    /// Decomposes a row-major linear index into a multi-index.
    fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        idx
    }

    fn ravel(idx: &[usize], shape: &[usize]) -> usize {
        idx.iter().zip(shape).fold(0, |acc, (&i, &s)| acc * s + i)
    }

    #[test]
    fn permute_matches_index_definition() {
        for (shape, perm) in [
            (vec![2, 3, 4], vec![2, 0, 1]),
            (vec![1, 7, 17], vec![1, 2, 0]),
            (vec![5, 0, 3], vec![2, 1, 0]),
            (vec![65], vec![0]),
            (vec![3, 1, 2, 5], vec![3, 1, 0, 2]),
            // merged dims, and large enough to split over threads
            (vec![16, 64, 4, 32], vec![0, 2, 1, 3]),
            (vec![4, 5, 6, 7], vec![0, 1, 2, 3]),
            (vec![129, 257], vec![1, 0]),
            (vec![2, 3, 1, 4099], vec![1, 0, 3, 2]),
        ] {
            let x: Vec<f64> = random_vec(numel(&shape), 3);
            let mut out = vec![0.0; x.len()];
            permute(&x, &shape, &perm, &mut out);
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            for (o, &v) in out.iter().enumerate() {
                let oi = unravel(o, &out_shape);
                let mut xi = vec![0; shape.len()];
                for (k, &p) in perm.iter().enumerate() {
                    xi[p] = oi[k];
                }
                assert_eq!(v, x[ravel(&xi, &shape)]);
            }
        }
    }

    #[test]
    fn expand_repeats_broadcast_dims() {
        let x: Vec<f32> = random_vec(3, 1);
        let mut out = vec![0.0; 2 * 3 * 4];
        expand(&x, &[3, 1], &[2, 3, 4], &mut out);
        for (o, &v) in out.iter().enumerate() {
            let idx = unravel(o, &[2, 3, 4]);
            assert_eq!(v, x[idx[1]]);
        }
        // a broadcast run of several dims, a kept dim, split over threads
        let x: Vec<f32> = random_vec(3 * 5, 2);
        let out_shape = [40, 3, 7, 5, 9];
        let mut out = vec![0.0; numel(&out_shape)];
        expand(&x, &[3, 1, 5, 1], &out_shape, &mut out);
        for (o, &v) in out.iter().enumerate() {
            let idx = unravel(o, &out_shape);
            assert_eq!(v, x[idx[1] * 5 + idx[3]]);
        }
        let mut scalar_out = vec![0.0f32; 7];
        expand(&[2.5], &[], &[7], &mut scalar_out);
        assert!(scalar_out.iter().all(|&v| v == 2.5));
    }

    #[test]
    fn narrow_then_concat_round_trips() {
        // small (one thread) and large (split over threads), pieces of unequal widths
        for (outer, len, inner) in [(3, 7, 5), (64, 130, 33)] {
            let x: Vec<f64> = random_vec(outer * len * inner, 2);
            let pieces = [(0, 2), (2, len - 3), (len - 1, 1)];
            let parts: Vec<Vec<f64>> = pieces
                .iter()
                .map(|&(start, n)| {
                    let mut part = vec![0.0; outer * n * inner];
                    narrow(&x, (outer, len, inner), start, n, &mut part);
                    for o in 0..outer {
                        for j in 0..n {
                            for i in 0..inner {
                                assert_eq!(
                                    part[(o * n + j) * inner + i],
                                    x[(o * len + start + j) * inner + i]
                                );
                            }
                        }
                    }
                    part
                })
                .collect();
            let refs: Vec<&[f64]> = parts.iter().map(|p| p.as_slice()).collect();
            let ns: Vec<usize> = pieces.iter().map(|p| p.1).collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut rebuilt = vec![f64::NAN; x.len()];
                pool.install(|| concat(&refs, &ns, (outer, inner), &mut rebuilt));
                assert_eq!(rebuilt, x, "{outer}x{len}x{inner} on {threads} threads");
            }
        }
    }

    #[test]
    fn pad_places_input_inside_constant_border() {
        // every element of `out` from its multi-index: inside the pads the input's, else -1;
        // a scalar, 1-d, zero-sized and 3-d shapes, pads on any axis
        for (shape, pads) in [
            (vec![2, 3], vec![(1, 0), (2, 1)]),
            (vec![], vec![]),
            (vec![5], vec![(0, 3)]),
            (vec![0, 4], vec![(1, 1), (0, 2)]),
            (vec![3, 0], vec![(0, 0), (2, 0)]),
            (vec![2, 3, 4], vec![(0, 1), (2, 0), (1, 3)]),
            (vec![32, 1, 128], vec![(0, 0), (5, 58), (0, 0)]),
        ] {
            let x: Vec<f32> = random_vec(numel(&shape), 9);
            let out_shape: Vec<usize> = shape.iter().zip(&pads).map(|(&s, &(b, a))| s + b + a).collect();
            let mut out = vec![0.0; numel(&out_shape)];
            pad(&x, &shape, &pads, -1.0, &mut out);
            for (o, &v) in out.iter().enumerate() {
                let oi = unravel(o, &out_shape);
                let xi: Option<Vec<usize>> = oi
                    .iter()
                    .zip(&pads)
                    .zip(&shape)
                    .map(|((&i, &(b, _)), &s)| i.checked_sub(b).filter(|&j| j < s))
                    .collect();
                let expected = xi.map_or(-1.0, |xi| x[ravel(&xi, &shape)]);
                assert_eq!(v, expected, "{shape:?} {pads:?} at {oi:?}");
            }
        }
    }
}

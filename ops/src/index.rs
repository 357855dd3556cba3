//! Indexing along one axis: `index_select` / `index_add` on an `(outer, len, inner)` layout and
//! torch-style `gather` / `scatter_add` over full shapes. Each scatter kernel is the adjoint of
//! its gather kernel.
//!
//! Indices are validated by the caller; an out-of-range index is a broken internal invariant
//! and panics. Scatters add into each output element in the fixed source order (duplicated
//! indices accumulate in order), and threads only ever split the work by disjoint output
//! blocks, so results are bit-identical for any thread count.

use crate::reduce::for_each_block;
use crate::{contiguous_strides, numel, Element};

fn check_indices(indices: &[usize], len: usize, what: &str) {
    if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
        panic!("internal invariant: {what} index {bad} out of range for axis length {len}");
    }
}

/// `out[o, j, i] = x[o, indices[j], i]`: `x` is `(outer, len, inner)`, `out` is
/// `(outer, indices.len(), inner)`; every index < `len`.
pub fn index_select<T: Copy + Send + Sync>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    indices: &[usize],
    out: &mut [T],
) {
    assert_eq!(x.len(), outer * len * inner, "internal invariant: index_select input length");
    assert_eq!(out.len(), outer * indices.len() * inner, "internal invariant: index_select output length");
    check_indices(indices, len, "index_select");
    let nj = indices.len();
    for_each_block(out, inner, |start, out| {
        for (r, o) in out.chunks_exact_mut(inner).enumerate() {
            let row = start / inner + r;
            let (po, j) = (row / nj, row % nj);
            let s = (po * len + indices[j]) * inner;
            o.copy_from_slice(&x[s..s + inner]);
        }
    });
}

/// The adjoint of [`index_select`]: `out[o, indices[j], i] += src[o, j, i]`, with `out`
/// `(outer, len, inner)` (not cleared) and `src` `(outer, indices.len(), inner)`.
pub fn index_add<T: Element>(
    src: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    indices: &[usize],
    out: &mut [T],
) {
    assert_eq!(out.len(), outer * len * inner, "internal invariant: index_add output length");
    assert_eq!(src.len(), outer * indices.len() * inner, "internal invariant: index_add source length");
    check_indices(indices, len, "index_add");
    let nj = indices.len();
    // Whole outer blocks per task: each output element sees its adds in source order.
    for_each_block(out, len * inner, |start, out| {
        for (b, ob) in out.chunks_exact_mut(len * inner).enumerate() {
            let po = start / (len * inner) + b;
            for (j, &ix) in indices.iter().enumerate() {
                let s = (po * nj + j) * inner;
                let o = &mut ob[ix * inner..(ix + 1) * inner];
                o.iter_mut().zip(&src[s..s + inner]).for_each(|(o, &v)| *o += v);
            }
        }
    });
}

/// Offsets into a buffer of `strides` for every multi-index of `dims` (row-major order).
fn offsets(dims: &[usize], strides: &[usize]) -> Vec<usize> {
    let mut offs = vec![0usize];
    for (&d, &s) in dims.iter().zip(strides) {
        offs = offs.iter().flat_map(|&base| (0..d).map(move |i| base + i * s)).collect();
    }
    offs
}

/// The shared geometry of gather and scatter_add: (offsets of the index's outer positions in
/// the data buffer, index length along the axis, offsets of the inner positions, data stride
/// of the axis, data length of the axis).
struct AxisWalk {
    outer: Vec<usize>,
    len: usize,
    inner: Vec<usize>,
    stride: usize,
    data_len: usize,
}

fn axis_walk(data_shape: &[usize], axis: usize, index_shape: &[usize], what: &str) -> AxisWalk {
    assert!(
        data_shape.len() == index_shape.len() && axis < data_shape.len(),
        "internal invariant: {what} ranks {data_shape:?} / {index_shape:?}, axis {axis}"
    );
    assert!(
        (0..data_shape.len()).all(|d| d == axis || index_shape[d] <= data_shape[d]),
        "internal invariant: {what} index shape {index_shape:?} exceeds {data_shape:?} off axis {axis}"
    );
    let strides = contiguous_strides(data_shape);
    AxisWalk {
        outer: offsets(&index_shape[..axis], &strides[..axis]),
        len: index_shape[axis],
        inner: offsets(&index_shape[axis + 1..], &strides[axis + 1..]),
        stride: strides[axis],
        data_len: data_shape[axis],
    }
}

/// torch.gather: `out[..., j, ...] = x[..., index[..., j, ...], ...]` along `axis`; `index`
/// and `out` have `index_shape` (same rank as `x_shape`, no larger off the axis).
pub fn gather<T: Copy + Send + Sync>(
    x: &[T],
    x_shape: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    out: &mut [T],
) {
    assert_eq!(x.len(), numel(x_shape), "internal invariant: gather input length vs {x_shape:?}");
    assert!(
        index.len() == numel(index_shape) && out.len() == index.len(),
        "internal invariant: gather index/output length vs {index_shape:?}"
    );
    let w = axis_walk(x_shape, axis, index_shape, "gather");
    check_indices(index, w.data_len, "gather");
    let ni = w.inner.len();
    for_each_block(out, ni, |start, out| {
        for (r, o) in out.chunks_exact_mut(ni).enumerate() {
            let row = start / ni + r;
            let base = w.outer[row / w.len];
            let idx = &index[row * ni..(row + 1) * ni];
            for ((o, &ix), &off) in o.iter_mut().zip(idx).zip(&w.inner) {
                *o = x[base + ix * w.stride + off];
            }
        }
    });
}

/// torch.scatter_add_: `out[..., index[..., j, ...], ...] += src[..., j, ...]` along `axis`;
/// `index` and `src` have `index_shape`. The adjoint of [`gather`].
pub fn scatter_add<T: Element>(
    out: &mut [T],
    out_shape: &[usize],
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    src: &[T],
) {
    assert_eq!(out.len(), numel(out_shape), "internal invariant: scatter_add output length vs {out_shape:?}");
    assert!(
        index.len() == numel(index_shape) && src.len() == index.len(),
        "internal invariant: scatter_add index/source length vs {index_shape:?}"
    );
    let w = axis_walk(out_shape, axis, index_shape, "scatter_add");
    check_indices(index, w.data_len, "scatter_add");
    let ni = w.inner.len();
    let per_outer = w.len * ni;
    // One outer position's adds, into `ob`, the output block starting at `base`.
    let scatter = |po: usize, ob: &mut [T], base: usize| {
        let s = po * per_outer;
        for (idx, sr) in
            index[s..s + per_outer].chunks_exact(ni.max(1)).zip(src[s..s + per_outer].chunks_exact(ni.max(1)))
        {
            for ((&ix, &v), &off) in idx.iter().zip(sr).zip(&w.inner) {
                ob[w.outer[po] + ix * w.stride + off - base] += v;
            }
        }
    };
    if index_shape[..axis] == out_shape[..axis] {
        // Outer positions own consecutive, disjoint output blocks: split by them.
        let block = numel(&out_shape[axis..]);
        for_each_block(out, block, |start, out| {
            for (b, ob) in out.chunks_exact_mut(block).enumerate() {
                let po = start / block + b;
                scatter(po, ob, po * block);
            }
        });
    } else {
        (0..w.outer.len()).for_each(|po| scatter(po, out, 0));
    }
}

#[cfg(test)]
mod tests;

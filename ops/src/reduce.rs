//! Reductions over any set of axes (sum, mean, max, min, logsumexp) and argmax / argmin.
//!
//! A reduction first merges the shape into alternating runs of kept and reduced axes
//! (size-1 axes dropped), then peels reduced runs from the inside out: an innermost reduced
//! run is a *row* reduction (contiguous rows), a reduced run followed by a kept run is a
//! *column* reduction (rows added into an accumulator row by row, which vectorises). Mean
//! runs as sum and divides once; logsumexp of a nest is the logsumexp of logsumexps.
//!
//! Numerics: sums are pairwise over fixed leaves (see `reduce/kernels.rs`), so an f32 sum of a
//! million elements stays within a few ulps of the exact sum; logsumexp subtracts the max
//! (a row of all −∞ gives −∞). Max and min propagate NaN like PyTorch; argmax / argmin
//! return the index of the first NaN when there is one, else of the first extreme value.
//! Empty reductions give sum 0, mean NaN, max −∞, min +∞, logsumexp −∞.
//!
//! Parallelism: rayon only above [`PAR_MIN`] elements and only on fixed partitions whose
//! combination order is fixed too, so results are bit-identical for any thread count and
//! equal to the sequential result.

pub(crate) mod kernels;
#[cfg(test)]
mod tests;

use crate::facts::fact::DIFFERENTIABLE;
use crate::{numel, op_facts, split_at_axis, Element};
use kernels::{
    col_extreme, col_sum, lse_finish, pick_max, pick_min, reduce_rows, sum_exp_slice, sum_slice, ColPairwise,
    Pairwise, Stage, BLOCK, ROW_LEAF,
};
use rayon::prelude::*;
use std::fmt;

/// Below this many input elements a reduction never touches the thread pool.
pub const PAR_MIN: usize = 1 << 15;
/// Elements per parallel piece of one long row: a power-of-two number of leaves, so the
/// pieces are subtrees of the sequential pairwise tree.
const PAR_PIECE: usize = BLOCK * 64;
/// A single row at least this long is itself split across threads.
const PAR_LONG_ROW: usize = 1 << 18;

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Σ x (0 when empty).
    Sum,
    /// Σ x / n (NaN when empty).
    Mean,
    /// The largest value, NaN if any is NaN (−∞ when empty).
    Max,
    /// The smallest value, NaN if any is NaN (+∞ when empty).
    Min,
    /// ln Σ exp x, computed with the max subtracted (−∞ when empty).
    LogSumExp,
}

op_facts! { ReduceOp;
    Sum => "sum", DIFFERENTIABLE;
    Mean => "mean", DIFFERENTIABLE;
    Max => "max", DIFFERENTIABLE;
    Min => "min", DIFFERENTIABLE;
    LogSumExp => "logsumexp", DIFFERENTIABLE;
}

impl fmt::Display for ReduceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ReduceOp {
    /// The result of reducing zero elements.
    pub fn empty_value<T: Element>(self) -> T {
        match self {
            ReduceOp::Sum => T::ZERO,
            ReduceOp::Mean => T::from_f64(f64::NAN),
            ReduceOp::Max | ReduceOp::LogSumExp => T::NEG_INFINITY,
            ReduceOp::Min => T::INFINITY,
        }
    }
}

/// Reduces `x` (of `shape`) over the sorted, deduplicated `axes`; `out` has
/// numel(shape with those axes set to 1) elements (keepdim layout; dropping the size-1 axes
/// does not move data). No axes copies; all axes gives one scalar.
pub fn reduce<T: Element>(op: ReduceOp, x: &[T], shape: &[usize], axes: &[usize], out: &mut [T]) {
    assert_eq!(x.len(), numel(shape), "internal invariant: reduce input length vs shape {shape:?}");
    assert!(
        axes.windows(2).all(|w| w[0] < w[1]) && axes.last().is_none_or(|&a| a < shape.len()),
        "internal invariant: reduce axes {axes:?} sorted, unique and < rank {}",
        shape.len()
    );
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    let kept: usize = (0..shape.len()).filter(|a| !axes.contains(a)).map(|a| shape[a]).product();
    assert_eq!(out.len(), kept, "internal invariant: reduce output length for {shape:?} over {axes:?}");
    if out.is_empty() {
        return;
    }
    if x.is_empty() {
        out.fill(op.empty_value());
        return;
    }
    let stage = match op {
        ReduceOp::Sum | ReduceOp::Mean => Stage::Sum,
        ReduceOp::Max => Stage::Max,
        ReduceOp::Min => Stage::Min,
        ReduceOp::LogSumExp => Stage::LogSumExp,
    };
    run_stages(stage, x, &merge_runs(shape, axes), out);
    if op == ReduceOp::Mean {
        let n = T::from_usize(count);
        out.iter_mut().for_each(|v| *v /= n);
    }
}

/// Alternating runs `(size, reduced)` with size-1 axes dropped and neighbours merged.
fn merge_runs(shape: &[usize], axes: &[usize]) -> Vec<(usize, bool)> {
    let mut runs: Vec<(usize, bool)> = Vec::with_capacity(shape.len());
    for (a, &d) in shape.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let red = axes.contains(&a);
        match runs.last_mut() {
            Some((size, r)) if *r == red => *size *= d,
            _ => runs.push((d, red)),
        }
    }
    runs
}

/// Peels the innermost reduced run, writing an intermediate when more runs remain.
fn run_stages<T: Element>(stage: Stage, x: &[T], runs: &[(usize, bool)], out: &mut [T]) {
    let reduced = runs.iter().filter(|r| r.1).count();
    let Some(&(last, last_reduced)) = runs.last() else {
        out.copy_from_slice(x);
        return;
    };
    if reduced == 0 {
        out.copy_from_slice(x);
    } else if last_reduced {
        if reduced == 1 {
            return rows_stage(stage, x, last, out);
        }
        let mut tmp = vec![T::ZERO; x.len() / last];
        rows_stage(stage, x, last, &mut tmp);
        run_stages(stage, &tmp, &runs[..runs.len() - 1], out);
    } else {
        // Runs alternate, so the one before a kept innermost run is reduced.
        let rows = runs[runs.len() - 2].0;
        let outer = x.len() / (rows * last);
        if reduced == 1 {
            return cols_stage(stage, x, outer, rows, last, out);
        }
        let mut tmp = vec![T::ZERO; outer * last];
        cols_stage(stage, x, outer, rows, last, &mut tmp);
        let mut rest = runs[..runs.len() - 2].to_vec();
        match rest.last_mut() {
            Some((size, false)) => *size *= last,
            _ => rest.push((last, false)),
        }
        run_stages(stage, &tmp, &rest, out);
    }
}

/// Whether an op over this many elements should use the thread pool.
pub(crate) fn parallel(elements: usize) -> bool {
    elements >= PAR_MIN && rayon::current_num_threads() > 1
}

/// Calls `f(start, chunk)` over `out` cut into chunks of whole `block`s (in parallel when
/// large); `start` is the chunk's offset in `out`. A block is never split, so results do not
/// depend on the chunking.
pub(crate) fn for_each_block<T: Copy + Send>(
    out: &mut [T],
    block: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if block == 0 || out.is_empty() {
        return;
    }
    let per = (PAR_PIECE / block).max(1) * block;
    if parallel(out.len()) && out.len() > per {
        out.par_chunks_mut(per).enumerate().for_each(|(i, o)| f(i * per, o));
    } else {
        f(0, out);
    }
}

/// `out[r]` = the stage over contiguous row `r` (rows of `len`).
fn rows_stage<T: Element>(stage: Stage, x: &[T], len: usize, out: &mut [T]) {
    if !parallel(x.len()) {
        return reduce_rows(stage, x, len, out);
    }
    if len >= PAR_LONG_ROW {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(len)) {
            *o = long_row(stage, row);
        }
        return;
    }
    // Every row is computed whole by one thread, so the chunking never changes the bits.
    let rows_per_chunk = (PAR_PIECE / len).max(1);
    out.par_chunks_mut(rows_per_chunk)
        .zip(x.par_chunks(rows_per_chunk * len))
        .for_each(|(o, xc)| reduce_rows(stage, xc, len, o));
}

/// One long row split into [`PAR_PIECE`] pieces whose partials are combined in the same
/// pairwise tree as the sequential sum.
fn long_row<T: Element>(stage: Stage, x: &[T]) -> T {
    let pairwise = |partials: Vec<T>| {
        let mut tree = Pairwise::new();
        partials.into_iter().for_each(|p| tree.push(p));
        tree.finish()
    };
    match stage {
        Stage::Sum => pairwise(x.par_chunks(PAR_PIECE).map(sum_slice).collect()),
        Stage::Max | Stage::Min => {
            let partials: Vec<T> = x
                .par_chunks(PAR_PIECE)
                .map(|c| {
                    let mut o = [T::ZERO];
                    reduce_rows(stage, c, c.len(), &mut o);
                    o[0]
                })
                .collect();
            let pick = if stage == Stage::Max { pick_max } else { pick_min };
            partials.into_iter().reduce(pick).expect("a long row has pieces")
        }
        Stage::LogSumExp => {
            let m = long_row(Stage::Max, x);
            lse_finish(m, || pairwise(x.par_chunks(PAR_PIECE).map(|c| sum_exp_slice(c, m)).collect()))
        }
    }
}

/// `outer` blocks of `rows × cols`: `out[o, c]` = the stage over `x[o, :, c]`.
fn cols_stage<T: Element>(stage: Stage, x: &[T], outer: usize, rows: usize, cols: usize, out: &mut [T]) {
    let block = rows * cols;
    if !parallel(x.len()) {
        for (o, xb) in out.chunks_exact_mut(cols).zip(x.chunks_exact(block)) {
            col_block(stage, xb, rows, cols, o, false);
        }
    } else if outer >= 2 {
        out.par_chunks_mut(cols)
            .zip(x.par_chunks(block))
            .for_each(|(o, xb)| col_block(stage, xb, rows, cols, o, false));
    } else {
        col_block(stage, x, rows, cols, out, true);
    }
}

/// One `rows × cols` column reduction; with `par`, split into row groups that are subtrees
/// of the sequential pairwise tree.
fn col_block<T: Element>(stage: Stage, x: &[T], rows: usize, cols: usize, out: &mut [T], par: bool) {
    match stage {
        Stage::Sum => col_sum_tree(x, rows, cols, None, out, par),
        Stage::Max | Stage::Min => {
            let is_max = stage == Stage::Max;
            if !par {
                return col_extreme(x, cols, is_max, out);
            }
            let partials: Vec<Vec<T>> = x
                .par_chunks(group_rows(cols) * cols)
                .map(|c| {
                    let mut p = vec![T::ZERO; cols];
                    col_extreme(c, cols, is_max, &mut p);
                    p
                })
                .collect();
            let pick = if is_max { pick_max } else { pick_min };
            out.copy_from_slice(&partials[0]);
            for p in &partials[1..] {
                out.iter_mut().zip(p).for_each(|(a, &b)| *a = pick(*a, b));
            }
        }
        Stage::LogSumExp => {
            let mut m = vec![T::ZERO; cols];
            col_block(Stage::Max, x, rows, cols, &mut m, par);
            col_sum_tree(x, rows, cols, Some(&m), out, par);
            for (o, &m) in out.iter_mut().zip(&m) {
                let s = *o;
                *o = lse_finish(m, || s);
            }
        }
    }
}

/// Rows per parallel group of a column reduction: a power-of-two number of row leaves.
fn group_rows(cols: usize) -> usize {
    let mut rows = ROW_LEAF;
    while rows * cols < PAR_PIECE {
        rows *= 2;
    }
    rows
}

fn col_sum_tree<T: Element>(
    x: &[T],
    rows: usize,
    cols: usize,
    shift: Option<&[T]>,
    out: &mut [T],
    par: bool,
) {
    let group = group_rows(cols);
    if !par || rows <= group {
        return col_sum(x, rows, cols, shift, out);
    }
    let partials: Vec<Vec<T>> = x
        .par_chunks(group * cols)
        .map(|c| {
            let mut p = vec![T::ZERO; cols];
            col_sum(c, c.len() / cols, cols, shift, &mut p);
            p
        })
        .collect();
    let mut tree = ColPairwise::new(cols, partials.len());
    for p in &partials {
        tree.next_slot().copy_from_slice(p);
        tree.commit();
    }
    tree.finish(out);
}

/// Index of the max along `axis`, first occurrence wins (the first NaN if any);
/// `out` has the keepdim layout (outer × inner). The axis must not be empty unless `out` is.
pub fn argmax<T: Element>(x: &[T], shape: &[usize], axis: usize, out: &mut [usize]) {
    arg_extreme(x, shape, axis, out, |v, best| v > best);
}

/// Index of the min along `axis`, first occurrence wins (the first NaN if any);
/// `out` has the keepdim layout (outer × inner).
pub fn argmin<T: Element>(x: &[T], shape: &[usize], axis: usize, out: &mut [usize]) {
    arg_extreme(x, shape, axis, out, |v, best| v < best);
}

fn arg_extreme<T: Element>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    out: &mut [usize],
    beats: impl Fn(T, T) -> bool + Sync + Copy,
) {
    assert!(axis < shape.len(), "internal invariant: arg reduction axis {axis} of {shape:?}");
    assert_eq!(x.len(), numel(shape), "internal invariant: arg reduction input vs {shape:?}");
    let (outer, len, inner) = split_at_axis(shape, axis);
    assert_eq!(out.len(), outer * inner, "internal invariant: arg reduction output length");
    if out.is_empty() {
        return;
    }
    assert!(len > 0, "internal invariant: arg reduction over an empty axis of {shape:?}");
    // A NaN beats everything and nothing beats a NaN.
    let better = move |v: T, best: T| !best.is_nan() && (v.is_nan() || beats(v, best));
    let block = len * inner;
    let run = |o: &mut [usize], xb: &[T]| {
        if inner == 1 {
            let mut best = xb[0];
            o[0] = 0;
            for (j, &v) in xb.iter().enumerate().skip(1) {
                if better(v, best) {
                    best = v;
                    o[0] = j;
                }
            }
            return;
        }
        let mut best = xb[..inner].to_vec();
        o.fill(0);
        for (j, row) in xb.chunks_exact(inner).enumerate().skip(1) {
            for ((b, i), &v) in best.iter_mut().zip(o.iter_mut()).zip(row) {
                if better(v, *b) {
                    *b = v;
                    *i = j;
                }
            }
        }
    };
    if parallel(x.len()) && outer >= 2 {
        let per = (PAR_PIECE / block).max(1);
        out.par_chunks_mut(per * inner).zip(x.par_chunks(per * block)).for_each(|(o, xb)| {
            o.chunks_exact_mut(inner).zip(xb.chunks_exact(block)).for_each(|(o, xb)| run(o, xb))
        });
    } else {
        out.chunks_exact_mut(inner).zip(x.chunks_exact(block)).for_each(|(o, xb)| run(o, xb));
    }
}

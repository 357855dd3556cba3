//! Leaf kernels for reductions: contiguous rows and row-by-row column accumulation.
//!
//! Invariants:
//! - Sums are pairwise over fixed leaves ([`BLOCK`] elements per row leaf, [`ROW_LEAF`] rows
//!   per column leaf), combined by a binary-counter tree ([`Pairwise`], [`ColPairwise`]). The
//!   tree depends only on the length, so a parallel split into aligned power-of-two groups of
//!   leaves gives the same bits as the sequential loop, for any thread count.
//! - Max and min propagate NaN (PyTorch semantics); they are exact, so order never matters.
//! - Each leaf keeps [`LANES`] independent accumulators: written lane-wise so the compiler
//!   vectorises them without reassociating, and the AVX2 build ([`multiversion!`]) and the
//!   portable build perform the same operations in the same order (same bits).

use crate::Element;

/// Independent accumulators per leaf (two AVX2 registers of f32, four of f64).
pub(crate) const LANES: usize = 16;
/// Elements per leaf of a row sum.
pub(crate) const BLOCK: usize = 1024;
/// Rows per leaf of a column sum.
pub(crate) const ROW_LEAF: usize = 16;

/// Defines `fn name<T: Element>(args) -> ret` whose body is compiled twice: once for
/// AVX2+FMA (chosen at run time when the CPU has it) and once portable. The body must only
/// call `#[inline(always)]` helpers for them to be vectorised with AVX2 too. No FMA
/// contraction happens implicitly, so both builds give the same bits.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<T: Element>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name<T: Element>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable<T: Element>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<T: Element>($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::math::has_avx2_fma() {
                // SAFETY: the CPU supports avx2 and fma (checked just above), which is all
                // `avx2` requires; its body is the same safe code as `portable`.
                return unsafe { avx2($($arg),*) };
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// NaN-propagating max: once a NaN is seen it stays.
#[inline(always)]
pub(crate) fn pick_max<T: Element>(m: T, v: T) -> T {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// NaN-propagating min.
#[inline(always)]
pub(crate) fn pick_min<T: Element>(m: T, v: T) -> T {
    if v < m || v.is_nan() {
        v
    } else {
        m
    }
}

/// Folds lanes with a fixed halving tree.
#[inline(always)]
fn fold_lanes<T: Element>(mut acc: [T; LANES], f: impl Fn(T, T) -> T) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for j in 0..w {
            acc[j] = f(acc[j], acc[j + w]);
        }
        w /= 2;
    }
    acc[0]
}

/// Sum of `map(v)` over a short slice, lane-wise then the tail.
#[inline(always)]
fn leaf_sum<T: Element>(x: &[T], map: impl Fn(T) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += map(v);
        }
    }
    let mut s = fold_lanes(acc, |a, b| a + b);
    for &v in tail {
        s += map(v);
    }
    s
}

/// Binary-counter pairwise combination of a stream of partial sums.
pub(crate) struct Pairwise<T> {
    stack: [T; 64],
    depth: usize,
    count: usize,
}

impl<T: Element> Pairwise<T> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Pairwise { stack: [T::ZERO; 64], depth: 0, count: 0 }
    }

    /// Adds the next leaf; merges equal-sized subtrees as the count's low bits clear.
    #[inline(always)]
    pub(crate) fn push(&mut self, mut s: T) {
        self.count += 1;
        let mut n = self.count;
        while n & 1 == 0 {
            self.depth -= 1;
            s += self.stack[self.depth];
            n >>= 1;
        }
        self.stack[self.depth] = s;
        self.depth += 1;
    }

    /// The total: remaining subtrees folded from the smallest (top) down.
    #[inline(always)]
    pub(crate) fn finish(self) -> T {
        if self.depth == 0 {
            return T::ZERO;
        }
        let mut t = self.stack[self.depth - 1];
        for i in (0..self.depth - 1).rev() {
            t += self.stack[i];
        }
        t
    }
}

/// Pairwise sum of `map(v)` over a row: one leaf when short, else leaves of [`BLOCK`].
#[inline(always)]
pub(crate) fn row_sum_map<T: Element>(x: &[T], map: impl Fn(T) -> T + Copy) -> T {
    if x.len() <= BLOCK {
        return leaf_sum(x, map);
    }
    let mut tree = Pairwise::new();
    for c in x.chunks(BLOCK) {
        tree.push(leaf_sum(c, map));
    }
    tree.finish()
}

/// Pairwise Σ a·b over two equal-length rows.
#[inline(always)]
pub(crate) fn row_dot<T: Element>(a: &[T], b: &[T]) -> T {
    let leaf = |a: &[T], b: &[T]| {
        let mut acc = [T::ZERO; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ta, tb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            for ((s, &u), &v) in acc.iter_mut().zip(ca).zip(cb) {
                *s += u * v;
            }
        }
        let mut s = fold_lanes(acc, |p, q| p + q);
        for (&u, &v) in ta.iter().zip(tb) {
            s += u * v;
        }
        s
    };
    if a.len() <= BLOCK {
        return leaf(a, b);
    }
    let mut tree = Pairwise::new();
    for (ca, cb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        tree.push(leaf(ca, cb));
    }
    tree.finish()
}

/// Pairwise sum of a row.
#[inline(always)]
pub(crate) fn row_sum<T: Element>(x: &[T]) -> T {
    row_sum_map(x, |v| v)
}

/// NaN-propagating max of a row (−∞ when empty).
#[inline(always)]
pub(crate) fn row_max<T: Element>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = pick_max(*a, v);
        }
    }
    tail.iter().fold(fold_lanes(acc, pick_max), |m, &v| pick_max(m, v))
}

/// NaN-propagating min of a row (+∞ when empty).
#[inline(always)]
pub(crate) fn row_min<T: Element>(x: &[T]) -> T {
    let mut acc = [T::INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = pick_min(*a, v);
        }
    }
    tail.iter().fold(fold_lanes(acc, pick_min), |m, &v| pick_min(m, v))
}

/// `m + ln Σ exp(v − m)` given the row's max `m`; a non-finite max is the answer itself
/// (−∞ for an all −∞ or empty row, +∞ when any +∞, NaN when any NaN).
#[inline(always)]
pub(crate) fn lse_finish<T: Element>(m: T, sum_exp: impl FnOnce() -> T) -> T {
    if m.is_finite() {
        m + sum_exp().ln()
    } else {
        m
    }
}

/// The per-stage operation: `Mean` runs as `Sum` and divides once at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Sum,
    Max,
    Min,
    LogSumExp,
}

/// One row's reduction.
#[inline(always)]
pub(crate) fn row_stage<T: Element>(stage: Stage, x: &[T]) -> T {
    match stage {
        Stage::Sum => row_sum(x),
        Stage::Max => row_max(x),
        Stage::Min => row_min(x),
        Stage::LogSumExp => {
            let m = row_max(x);
            lse_finish(m, || row_sum_map(x, |v| (v - m).exp()))
        }
    }
}

multiversion! {
    /// `out[r]` = the stage over row `r` of `x` (rows of `len`, `out.len()` rows).
    pub(crate) fn reduce_rows<T: Element>(stage: Stage, x: &[T], len: usize, out: &mut [T]) {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(len.max(1))) {
            *o = row_stage(stage, row);
        }
    }
}

multiversion! {
    /// Sum of a row (the sequential reference for the parallel split).
    pub(crate) fn sum_slice<T: Element>(x: &[T]) -> T {
        row_sum(x)
    }
}

multiversion! {
    /// Σ exp(v − m) of a row.
    pub(crate) fn sum_exp_slice<T: Element>(x: &[T], m: T) -> T {
        row_sum_map(x, |v| (v - m).exp())
    }
}

/// Binary-counter pairwise combination of column partials (`cols` wide), the column
/// analogue of [`Pairwise`].
pub(crate) struct ColPairwise<T> {
    slots: Vec<T>,
    cols: usize,
    depth: usize,
    count: usize,
}

impl<T: Element> ColPairwise<T> {
    /// Room for `leaves` leaves of `cols` partials.
    pub(crate) fn new(cols: usize, leaves: usize) -> Self {
        let levels = (usize::BITS - leaves.leading_zeros()) as usize + 1;
        ColPairwise { slots: vec![T::ZERO; levels * cols], cols, depth: 0, count: 0 }
    }

    /// The slot the next leaf must be written into before [`ColPairwise::commit`].
    #[inline(always)]
    pub(crate) fn next_slot(&mut self) -> &mut [T] {
        let c = self.cols;
        &mut self.slots[self.depth * c..(self.depth + 1) * c]
    }

    /// Merges the leaf written into [`ColPairwise::next_slot`].
    #[inline(always)]
    pub(crate) fn commit(&mut self) {
        let c = self.cols;
        self.count += 1;
        let mut n = self.count;
        while n & 1 == 0 {
            let (lower, upper) = self.slots.split_at_mut(self.depth * c);
            for (a, &b) in lower[(self.depth - 1) * c..].iter_mut().zip(&upper[..c]) {
                *a += b;
            }
            self.depth -= 1;
            n >>= 1;
        }
        self.depth += 1;
    }

    /// Writes the total into `out`, folding from the smallest subtree down.
    #[inline(always)]
    pub(crate) fn finish(self, out: &mut [T]) {
        let c = self.cols;
        if self.depth == 0 {
            out.fill(T::ZERO);
            return;
        }
        out.copy_from_slice(&self.slots[(self.depth - 1) * c..self.depth * c]);
        for i in (0..self.depth - 1).rev() {
            for (a, &b) in out.iter_mut().zip(&self.slots[i * c..(i + 1) * c]) {
                *a += b;
            }
        }
    }
}

multiversion! {
    /// Column sums of a `rows × cols` block: `out[c] = Σ_r map(x[r, c])`, where the map
    /// is `exp(v − shift[c])` when a shift is given. Accumulated row by row (vectorised
    /// over columns) in leaves of [`ROW_LEAF`] rows combined pairwise.
    pub(crate) fn col_sum<T: Element>(x: &[T], rows: usize, cols: usize, shift: Option<&[T]>, out: &mut [T]) {
        let leaves = rows.div_ceil(ROW_LEAF);
        if leaves <= 1 {
            out.fill(T::ZERO);
            col_accumulate(x, cols, shift, out);
            return;
        }
        let mut tree = ColPairwise::new(cols, leaves);
        for leaf in x.chunks(ROW_LEAF * cols) {
            let slot = tree.next_slot();
            slot.fill(T::ZERO);
            col_accumulate(leaf, cols, shift, slot);
            tree.commit();
        }
        tree.finish(out);
    }
}

/// Adds every row of `x` (rows of `cols`) into `acc`, mapped by the optional shift.
#[inline(always)]
fn col_accumulate<T: Element>(x: &[T], cols: usize, shift: Option<&[T]>, acc: &mut [T]) {
    for row in x.chunks_exact(cols) {
        match shift {
            None => {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            Some(m) => {
                for ((a, &v), &m) in acc.iter_mut().zip(row).zip(m) {
                    *a += (v - m).exp();
                }
            }
        }
    }
}

multiversion! {
    /// Column max (`is_max`) or min of a `rows × cols` block, NaN-propagating.
    pub(crate) fn col_extreme<T: Element>(x: &[T], cols: usize, is_max: bool, out: &mut [T]) {
        out.fill(if is_max { T::NEG_INFINITY } else { T::INFINITY });
        for row in x.chunks_exact(cols) {
            if is_max {
                for (a, &v) in out.iter_mut().zip(row) {
                    *a = pick_max(*a, v);
                }
            } else {
                for (a, &v) in out.iter_mut().zip(row) {
                    *a = pick_min(*a, v);
                }
            }
        }
    }
}

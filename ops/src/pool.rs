//! 2-d max and average pooling over NCHW buffers, with their backward kernels.
//!
//! Windows are `kernel` cells, `stride` apart, over the input padded by `padding` on each side;
//! the output size uses floor mode, or PyTorch's ceil mode (a last, partial window where the
//! stride leaves cells over, if it starts inside the input or the left padding). Max pooling
//! treats padding as −∞ (never selected) and records for each output the flat index, within
//! its `(n, c)` input plane, of the winning input cell (the first maximum in row-major window
//! order; a NaN wins, as in PyTorch). Average pooling divides by the window's cells within the
//! padded input (PyTorch `count_include_pad = true`) or by its input cells only (`false`).
//! Backward kernels overwrite `dx`; where windows overlap, contributions add. Work is split by
//! `(n, c)` plane, each plane done by one thread in a fixed order, so results are deterministic.

use crate::reduce::kernels::multiversion;
use crate::Element;
use rayon::prelude::*;

/// Window cells visited below which pooling runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 16;

/// A 2-d pooling window over `(batch, channels, in_h, in_w)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels per image.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// (height, width) of the window, each at least 1.
    pub kernel: (usize, usize),
    /// (vertical, horizontal) step between windows, each at least 1.
    pub stride: (usize, usize),
    /// (vertical, horizontal) padding on both sides.
    pub padding: (usize, usize),
    /// PyTorch's `ceil_mode`: the output size rounds up (see the module docs).
    pub ceil_mode: bool,
    /// PyTorch's `count_include_pad`: whether average pooling's divisor counts padding cells
    /// (max pooling ignores it).
    pub count_include_pad: bool,
}

/// Pooled length: `(input + 2·padding − kernel) / stride + 1`, rounded down, or up in ceil mode
/// unless that last window would start in the right padding (PyTorch's rule); 0 when the padded
/// input is shorter than the window.
fn pool_out_len(input: usize, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> usize {
    let padded = input + 2 * padding;
    if padded < kernel {
        return 0;
    }
    let room = padded - kernel;
    if !ceil_mode {
        return room / stride + 1;
    }
    let out = room.div_ceil(stride) + 1;
    if (out - 1) * stride >= input + padding {
        out - 1
    } else {
        out
    }
}

/// One axis of one window: the input cells `lo..hi` it covers and its size counting padding.
#[derive(Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    padded: usize,
}

/// The window of output index `o` along an axis of `input` cells.
fn span(o: usize, input: usize, kernel: usize, stride: usize, padding: usize) -> Span {
    // In padded coordinates the window is start..start + kernel, clipped to the padded input.
    let start = o * stride;
    let end = (start + kernel).min(input + 2 * padding);
    Span {
        lo: start.saturating_sub(padding).min(input),
        hi: end.saturating_sub(padding).min(input),
        padded: end - start,
    }
}

impl Pool2dGeometry {
    /// Output height.
    pub fn out_h(&self) -> usize {
        pool_out_len(self.in_h, self.kernel.0, self.stride.0, self.padding.0, self.ceil_mode)
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        pool_out_len(self.in_w, self.kernel.1, self.stride.1, self.padding.1, self.ceil_mode)
    }
    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.in_h * self.in_w
    }
    /// Elements of the output (and of the argmax buffer).
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_h() * self.out_w()
    }

    /// Whether every length the kernels derive from this geometry (padded sizes, the buffers)
    /// fits in `usize`, kernel and stride being positive: kernels take only such geometries.
    pub fn is_representable(&self) -> bool {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if k.0 == 0 || k.1 == 0 || s.0 == 0 || s.1 == 0 {
            return false;
        }
        // ceil mode adds at most one window per axis
        let extra = usize::from(self.ceil_mode);
        let (Some(out_h), Some(out_w)) = (
            crate::checked_window_len(self.in_h, k.0, s.0, p.0, 1).and_then(|n| n.checked_add(extra)),
            crate::checked_window_len(self.in_w, k.1, s.1, p.1, 1).and_then(|n| n.checked_add(extra)),
        ) else {
            return false;
        };
        crate::checked_numel(&[self.batch, self.channels, self.in_h, self.in_w]).is_some()
            && crate::checked_numel(&[self.batch, self.channels, out_h, out_w]).is_some()
    }

    fn check(&self, x_len: usize, y_len: usize) {
        assert!(
            self.stride.0 >= 1 && self.stride.1 >= 1,
            "internal invariant: pooling stride is at least 1 ({self:?})"
        );
        assert!(
            x_len == self.input_len() && y_len == self.output_len(),
            "internal invariant: pooling buffer lengths ({self:?})"
        );
    }
    fn parallel(&self) -> bool {
        self.batch * self.channels > 1 && self.output_len() * self.kernel.0 * self.kernel.1 >= PAR_MIN_WORK
    }
    /// Average pooling's divisor for the window of spans `r` × `c` (at least 1: a window
    /// wholly in the padding averages nothing to 0).
    fn divisor(&self, r: &Span, c: &Span) -> usize {
        let cells = if self.count_include_pad { r.padded * c.padded } else { (r.hi - r.lo) * (c.hi - c.lo) };
        cells.max(1)
    }
    /// 2×2 windows, stride 2, no padding, none partial (a ceil-mode partial window at an odd
    /// edge takes the general path): the usual CNN pool, which has kernels of its own.
    fn is_two_by_two(&self) -> bool {
        (self.kernel, self.stride, self.padding) == ((2, 2), (2, 2), (0, 0))
            && (self.out_h(), self.out_w()) == (self.in_h / 2, self.in_w / 2)
    }
    /// The windows' row spans (one per output row) and column spans (one per output column),
    /// computed once per call rather than per output.
    fn spans(&self) -> (Vec<Span>, Vec<Span>) {
        let rows =
            (0..self.out_h()).map(|o| span(o, self.in_h, self.kernel.0, self.stride.0, self.padding.0));
        let cols =
            (0..self.out_w()).map(|o| span(o, self.in_w, self.kernel.1, self.stride.1, self.padding.1));
        (rows.collect(), cols.collect())
    }
}

/// Runs `f(plane_index, out_plane)` for each `(n, c)` plane of `out` (`plane` elements each).
fn for_each_plane<U: Send>(out: &mut [U], plane: usize, par: bool, f: impl Fn(usize, &mut [U]) + Sync) {
    if out.is_empty() || plane == 0 {
        return;
    }
    if par {
        out.par_chunks_mut(plane).enumerate().for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(plane).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// The maximum of one window of a plane `in_w` wide and the flat index of the first cell
/// (row-major) holding it; a NaN wins. `(−∞, usize::MAX)` for a window wholly in the padding.
fn window_max<T: Element>(x: &[T], in_w: usize, r: &Span, c: &Span) -> (T, usize) {
    let (mut best, mut arg) = (T::NEG_INFINITY, usize::MAX);
    if r.lo < r.hi && c.lo < c.hi {
        arg = r.lo * in_w + c.lo;
    }
    for ih in r.lo..r.hi {
        for iw in c.lo..c.hi {
            let v = x[ih * in_w + iw];
            if v > best || v.is_nan() {
                (best, arg) = (v, ih * in_w + iw);
            }
        }
    }
    (best, arg)
}

/// Max pooling of one NaN-free plane `in_w` wide with 2×2 windows, stride 2, no padding: the
/// usual CNN pool. Each window's maximum, then the first cell (row-major) holding it, whose
/// own value is written (so a window of −0 and +0 gives the first, as the general path does).
/// `offsets[ow] = 2·ow` as the element type, built once per call. f32 with AVX2 runs explicit
/// vector code (eight windows at a time, a short last group moved back over its neighbours
/// or, in rows under eight windows, masked); otherwise selects among values of the element
/// type, with no branch on the data.
fn max_pool_2x2<T: Element>(x: &[T], in_w: usize, offsets: &[T], y: &mut [T], argmax: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && crate::math::has_avx2_fma() {
        // SAFETY: T is f32 (same layout); the CPU has AVX2.
        return unsafe {
            x86_pool::max_pool_2x2_f32(
                std::mem::transmute::<&[T], &[f32]>(x),
                in_w,
                std::mem::transmute::<&mut [T], &mut [f32]>(y),
                std::mem::transmute::<&mut [T], &mut [f32]>(argmax),
            )
        };
    }
    max_pool_2x2_selects(x, in_w, offsets, y, argmax);
}

multiversion! {
    /// [`max_pool_2x2`] as selects among values of the element type.
    fn max_pool_2x2_selects<T: Element>(x: &[T], in_w: usize, offsets: &[T], y: &mut [T], argmax: &mut [T]) {
        let out_w = in_w / 2;
        let (right, below, diagonal) = (T::ONE, T::from_usize(in_w), T::from_usize(in_w + 1));
        let out_rows = y.chunks_exact_mut(out_w).zip(argmax.chunks_exact_mut(out_w));
        for (oh, (y_row, arg_row)) in out_rows.enumerate() {
            let top = 2 * oh * in_w;
            let (upper, lower) = (&x[top..top + 2 * out_w], &x[top + in_w..top + in_w + 2 * out_w]);
            let first = T::from_usize(top);
            let windows = upper.chunks_exact(2).zip(lower.chunks_exact(2)).zip(offsets);
            for ((yv, am), ((u, l), &offset)) in y_row.iter_mut().zip(arg_row.iter_mut()).zip(windows) {
                let best = u[0].max(u[1]).max(l[0].max(l[1]));
                // the first cell in row-major order holding the maximum
                let (value, step) = if u[0] == best {
                    (u[0], T::ZERO)
                } else if u[1] == best {
                    (u[1], right)
                } else if l[0] == best {
                    (l[0], below)
                } else {
                    (l[1], diagonal)
                };
                (*yv, *am) = (value, first + offset + step);
            }
        }
    }
}

/// The backward of [`max_pool_2x2`] on one plane where it has an explicit kernel (f32 with
/// AVX2): each window's four cells written once, `0 + dy` (as the scatter adds it) where the
/// cell is the window's `argmax` and zero elsewhere, then zeros over an odd last row or
/// column, which no window covers. False, `dx` unspecified, without such a kernel or when an
/// index lies outside its window (not one [`max_pool2d`] wrote): the caller then scatters.
fn max_pool_2x2_backward<T: Element>(dy: &[T], argmax: &[T], in_w: usize, dx: &mut [T]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && crate::math::has_avx2_fma() {
        // SAFETY: T is f32 (same layout); the CPU has AVX2.
        return unsafe {
            x86_pool::max_pool_2x2_backward_f32(
                std::mem::transmute::<&[T], &[f32]>(dy),
                std::mem::transmute::<&[T], &[f32]>(argmax),
                in_w,
                std::mem::transmute::<&mut [T], &mut [f32]>(dx),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (dy, argmax, in_w, dx);
    false
}

/// The AVX2 f32 path of [`max_pool_2x2`].
#[cfg(target_arch = "x86_64")]
mod x86_pool {
    use std::arch::x86_64::*;

    /// A window's cells relative to its first (`zero`, `right`, `below`, `diagonal`) and the
    /// first cells of eight windows in a row relative to the first's (`lanes`), as f32 lanes.
    struct Steps {
        zero: __m256,
        right: __m256,
        below: __m256,
        diagonal: __m256,
        lanes: __m256,
    }

    impl Steps {
        #[target_feature(enable = "avx2")]
        fn new(in_w: usize) -> Steps {
            Steps {
                zero: _mm256_setzero_ps(),
                right: _mm256_set1_ps(1.0),
                below: _mm256_set1_ps(in_w as f32),
                diagonal: _mm256_set1_ps((in_w + 1) as f32),
                lanes: _mm256_setr_ps(0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0),
            }
        }
    }

    /// The first `n` of 8 lanes (`n` may exceed 8).
    #[target_feature(enable = "avx2")]
    fn first_lanes(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// Where the group of windows from `c` starts in a row `out_w` windows wide: a short last
    /// group of a row of at least eight moves back to end with the row, whole (its first
    /// windows computed twice, to the same values), since a short group takes masked loads and
    /// stores through the stack.
    fn last_group(c: usize, out_w: usize) -> usize {
        if out_w >= 8 {
            c.min(out_w - 8)
        } else {
            c
        }
    }

    /// The first `src.len()` (at most 8) lanes from `src`, the rest zero; masked only when
    /// short, since a masked load costs more than a plain one.
    #[target_feature(enable = "avx2")]
    fn load_first(src: &[f32]) -> __m256 {
        // SAFETY: the first src.len() lanes lie in src; masked lanes are not read
        unsafe {
            if src.len() == 8 {
                _mm256_loadu_ps(src.as_ptr())
            } else {
                _mm256_maskload_ps(src.as_ptr(), first_lanes(src.len()))
            }
        }
    }

    /// Writes the first `dst.len()` (at most 8) lanes of `v` to `dst`. A short store goes
    /// through the stack: AMD's cores run a masked store as microcode, tens of cycles each.
    #[target_feature(enable = "avx2")]
    fn store_first(dst: &mut [f32], v: __m256) {
        if dst.len() == 8 {
            // SAFETY: dst holds 8 floats
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
        } else {
            let mut lanes = [0.0f32; 8];
            // SAFETY: lanes holds 8 floats
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            dst.copy_from_slice(&lanes[..dst.len()]);
        }
    }

    /// [`max_pool_2x2_backward`](super::max_pool_2x2_backward) for f32: per output row,
    /// groups of eight windows, their cells' values interleaved into two row stores each, the
    /// last group placed by [`last_group`]: masked only in rows under eight windows.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn max_pool_2x2_backward_f32(dy: &[f32], argmax: &[f32], in_w: usize, dx: &mut [f32]) -> bool {
        let out_w = in_w / 2;
        let out_h = dy.len() / out_w.max(1);
        assert!(
            out_w > 0 && dx.len() >= 2 * out_h * in_w && argmax.len() == dy.len(),
            "internal invariant: 2x2 pool plane lengths"
        );
        let Steps { zero, right, below, diagonal, lanes } = Steps::new(in_w);
        let mut outside = _mm256_setzero_ps();
        for oh in 0..out_h {
            let top = 2 * oh * in_w;
            for c in (0..out_w).step_by(8) {
                let c = last_group(c, out_w);
                let (n, at) = ((out_w - c).min(8), oh * out_w + c);
                let mask = first_lanes(n);
                let (d, a) = (load_first(&dy[at..at + n]), load_first(&argmax[at..at + n]));
                let d = _mm256_add_ps(zero, d);
                let cell = _mm256_add_ps(_mm256_set1_ps((top + 2 * c) as f32), lanes);
                let is = |k: __m256| _mm256_cmp_ps::<_CMP_EQ_OQ>(a, _mm256_add_ps(cell, k));
                let (e0, e1, e2, e3) = (is(zero), is(right), is(below), is(diagonal));
                let inside = _mm256_or_ps(_mm256_or_ps(e0, e1), _mm256_or_ps(e2, e3));
                outside = _mm256_or_ps(outside, _mm256_andnot_ps(inside, _mm256_castsi256_ps(mask)));
                let pick = |e: __m256| _mm256_and_ps(e, d);
                // cells 2c..2c + 2n of a row, from the windows' left and right values
                let row = |left: __m256, right: __m256, at: usize, dx: &mut [f32]| {
                    let (lo, hi) = (_mm256_unpacklo_ps(left, right), _mm256_unpackhi_ps(left, right));
                    let (first, second) =
                        (_mm256_permute2f128_ps::<0x20>(lo, hi), _mm256_permute2f128_ps::<0x31>(lo, hi));
                    let (a, b) = dx[at..at + 2 * n].split_at_mut((2 * n).min(8));
                    store_first(a, first);
                    store_first(b, second);
                };
                row(pick(e0), pick(e1), top + 2 * c, dx);
                row(pick(e2), pick(e3), top + in_w + 2 * c, dx);
            }
            if in_w % 2 == 1 {
                (dx[top + in_w - 1], dx[top + 2 * in_w - 1]) = (0.0, 0.0);
            }
        }
        dx[2 * out_h * in_w..].fill(0.0);
        _mm256_movemask_ps(outside) == 0
    }

    /// [`max_pool_2x2`](super::max_pool_2x2) for f32: per output row, groups of eight windows
    /// (their cells deinterleaved from two row loads each), the last group placed by
    /// [`last_group`].
    ///
    /// # Safety
    /// The CPU must support AVX2; `x` is a plane `in_w` wide of at least `2·(y.len() / (in_w /
    /// 2))` rows, and `argmax` is as long as `y`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn max_pool_2x2_f32(x: &[f32], in_w: usize, y: &mut [f32], argmax: &mut [f32]) {
        let out_w = in_w / 2;
        let out_h = y.len() / out_w;
        assert!(
            x.len() >= 2 * out_h * in_w && argmax.len() == y.len(),
            "internal invariant: 2x2 pool plane lengths"
        );
        let Steps { zero, right, below, diagonal, lanes } = Steps::new(in_w);
        // cells 2·c..2·c+16 of a row: their even and odd cells, `n` windows of them read.
        // Raw pointers, not `load_first` on slices: the slicing cost W3's pools 54 -> 58-65 µs.
        let cells = |row: *const f32, n: usize| {
            let (a, b) = if n == 8 {
                // SAFETY: 16 cells from `row` lie in the plane (8 whole windows)
                unsafe { (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))) }
            } else {
                // SAFETY: masked lanes are not read (nor can they fault); the unmasked 2n cells
                // lie in the plane. The second address may lie past the plane: wrapping.
                unsafe {
                    (
                        _mm256_maskload_ps(row, first_lanes(2 * n)),
                        _mm256_maskload_ps(row.wrapping_add(8), first_lanes((2 * n).saturating_sub(8))),
                    )
                }
            };
            let (even, odd) = (_mm256_shuffle_ps::<0x88>(a, b), _mm256_shuffle_ps::<0xDD>(a, b));
            let ordered = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
            (ordered(even), ordered(odd))
        };
        for oh in 0..out_h {
            let top = 2 * oh * in_w;
            for c in (0..out_w).step_by(8) {
                let c = last_group(c, out_w);
                let n = (out_w - c).min(8);
                // SAFETY: window c's cells start at column 2c of rows 2oh and 2oh + 1
                let (u0, u1) = cells(unsafe { x.as_ptr().add(top + 2 * c) }, n);
                let (l0, l1) = cells(unsafe { x.as_ptr().add(top + in_w + 2 * c) }, n);
                let best = _mm256_max_ps(_mm256_max_ps(u0, u1), _mm256_max_ps(l0, l1));
                let eq = |v: __m256| _mm256_cmp_ps::<_CMP_EQ_OQ>(v, best);
                let (e0, e1, e2) = (eq(u0), eq(u1), eq(l0));
                // the first of u0, u1, l0, l1 equal to the maximum: blends from the last
                let step = _mm256_blendv_ps(
                    _mm256_blendv_ps(_mm256_blendv_ps(diagonal, below, e2), right, e1),
                    zero,
                    e0,
                );
                let value = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_blendv_ps(l1, l0, e2), u1, e1), u0, e0);
                let cell = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps((top + 2 * c) as f32), lanes), step);
                let at = oh * out_w + c;
                store_first(&mut y[at..at + n], value);
                store_first(&mut argmax[at..at + n], cell);
            }
        }
    }
}

multiversion! {
    /// Whether `x` holds a NaN (a fold, not `any`: without the early exit the scan vectorises).
    fn has_nan<T: Element>(x: &[T]) -> bool {
        x.iter().fold(false, |seen, v| seen | v.is_nan())
    }
}

/// Max pooling. `argmax[i]` is the flat index within its `(n, c)` input plane of the cell that
/// gave `y[i]`, stored as a number of the element type (exact: the caller keeps planes within
/// the type's integers), and −1, with `y[i] = −∞`, for a window lying wholly in the padding.
pub fn max_pool2d<T: Element>(g: &Pool2dGeometry, x: &[T], y: &mut [T], argmax: &mut [T]) {
    g.check(x.len(), y.len());
    assert!(argmax.len() == y.len(), "internal invariant: argmax has one index per output");
    let (out_w, in_plane, out_plane) = (g.out_w(), g.in_h * g.in_w, g.out_h() * g.out_w());
    if y.is_empty() {
        return;
    }
    let (rows, cols) = g.spans();
    let two_by_two = g.is_two_by_two();
    let offsets: Vec<T> =
        if two_by_two { (0..out_w).map(|ow| T::from_usize(2 * ow)).collect() } else { Vec::new() };
    let plane = |i: usize, y: &mut [T], argmax: &mut [T]| {
        let x = &x[i * in_plane..(i + 1) * in_plane];
        // NaN (which wins) is rare: such planes take the general path
        if two_by_two && !has_nan(x) {
            return max_pool_2x2(x, g.in_w, &offsets, y, argmax);
        }
        let out_rows = y.chunks_exact_mut(out_w).zip(argmax.chunks_exact_mut(out_w));
        for (r, (y_row, arg_row)) in rows.iter().zip(out_rows) {
            for ((c, yv), am) in cols.iter().zip(y_row).zip(arg_row) {
                let (best, arg) = window_max(x, g.in_w, r, c);
                (*yv, *am) = (best, if arg == usize::MAX { -T::ONE } else { T::from_usize(arg) });
            }
        }
    };
    if g.parallel() {
        y.par_chunks_mut(out_plane)
            .zip(argmax.par_chunks_mut(out_plane))
            .enumerate()
            .for_each(|(i, (y, a))| plane(i, y, a));
    } else {
        for (i, (y, a)) in y.chunks_mut(out_plane).zip(argmax.chunks_mut(out_plane)).enumerate() {
            plane(i, y, a);
        }
    }
}

/// The `argmax` of [`max_pool2d`] alone: runs it on groups of planes whose values go to a
/// small scratch buffer (allocator-cheap, cache-resident) that is then dropped.
pub fn max_pool2d_indices<T: Element>(g: &Pool2dGeometry, x: &[T], argmax: &mut [T]) {
    const SCRATCH: usize = 8192;
    let (in_plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    g.check(x.len(), argmax.len());
    if argmax.is_empty() {
        return;
    }
    let planes = (SCRATCH / out_plane).max(1);
    let group = |i: usize, argmax: &mut [T]| {
        let n = argmax.len() / out_plane;
        let sub = Pool2dGeometry { batch: 1, channels: n, ..*g };
        let mut values = vec![T::ZERO; argmax.len()];
        max_pool2d(&sub, &x[i * planes * in_plane..(i * planes + n) * in_plane], &mut values, argmax);
    };
    if g.parallel() {
        argmax.par_chunks_mut(planes * out_plane).enumerate().for_each(|(i, a)| group(i, a));
    } else {
        argmax.chunks_mut(planes * out_plane).enumerate().for_each(|(i, a)| group(i, a));
    }
}

/// The values of [`max_pool2d`] from its `argmax`: `y[i]` is the input at `argmax[i]` in its
/// plane (−∞ where the index is −1). Also the adjoint of [`max_pool2d_backward`].
pub fn max_pool2d_gather<T: Element>(g: &Pool2dGeometry, x: &[T], argmax: &[T], y: &mut [T]) {
    g.check(x.len(), y.len());
    assert!(argmax.len() == y.len(), "internal invariant: argmax has one index per output");
    let (in_plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    for_each_plane(y, out_plane, g.parallel(), |i, y| {
        let x = &x[i * in_plane..(i + 1) * in_plane];
        for (yv, &a) in y.iter_mut().zip(&argmax[i * out_plane..(i + 1) * out_plane]) {
            *yv = if a < T::ZERO { T::NEG_INFINITY } else { x[a.to_f64() as usize] };
        }
    });
}

/// The input gradient of [`max_pool2d`]: `dx` is zeroed, then each `dy[i]` is added at its
/// recorded `argmax[i]` (overlapping windows accumulate).
pub fn max_pool2d_backward<T: Element>(g: &Pool2dGeometry, dy: &[T], argmax: &[T], dx: &mut [T]) {
    g.check(dx.len(), dy.len());
    assert!(argmax.len() == dy.len(), "internal invariant: argmax has one index per output");
    let (in_plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    if out_plane == 0 {
        dx.fill(T::ZERO);
        return;
    }
    let two_by_two = g.is_two_by_two();
    for_each_plane(dx, in_plane, g.parallel(), |i, dx| {
        let range = i * out_plane..(i + 1) * out_plane;
        let (dy, argmax) = (&dy[range.clone()], &argmax[range]);
        if two_by_two && max_pool_2x2_backward(dy, argmax, g.in_w, dx) {
            return;
        }
        dx.fill(T::ZERO);
        for (&d, &a) in dy.iter().zip(argmax) {
            if a >= T::ZERO {
                dx[a.to_f64() as usize] += d;
            }
        }
    });
}

/// Average pooling, padding counted in the divisor (PyTorch `count_include_pad = true`).
pub fn avg_pool2d<T: Element>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    g.check(x.len(), y.len());
    let (out_w, in_plane, out_plane) = (g.out_w(), g.in_h * g.in_w, g.out_h() * g.out_w());
    let (rows, cols) = g.spans();
    for_each_plane(y, out_plane, g.parallel(), |i, out| {
        let x = &x[i * in_plane..(i + 1) * in_plane];
        for (r, out_row) in rows.iter().zip(out.chunks_exact_mut(out_w)) {
            for (c, yv) in cols.iter().zip(out_row) {
                let mut sum = T::ZERO;
                for ih in r.lo..r.hi {
                    sum += x[ih * g.in_w + c.lo..ih * g.in_w + c.hi].iter().copied().sum::<T>();
                }
                *yv = sum / T::from_usize(g.divisor(r, c));
            }
        }
    });
}

/// The input gradient of [`avg_pool2d`]: each input cell receives `dy / window size` from every
/// window covering it. Overwrites `dx`.
pub fn avg_pool2d_backward<T: Element>(g: &Pool2dGeometry, dy: &[T], dx: &mut [T]) {
    g.check(dx.len(), dy.len());
    let (out_w, in_plane, out_plane) = (g.out_w(), g.in_h * g.in_w, g.out_h() * g.out_w());
    dx.fill(T::ZERO);
    if out_plane == 0 {
        return;
    }
    let (rows, cols) = g.spans();
    for_each_plane(dx, in_plane, g.parallel(), |i, dx| {
        let dy_plane = &dy[i * out_plane..(i + 1) * out_plane];
        for (r, dy_row) in rows.iter().zip(dy_plane.chunks_exact(out_w)) {
            for (c, &d) in cols.iter().zip(dy_row) {
                let share = d / T::from_usize(g.divisor(r, c));
                for ih in r.lo..r.hi {
                    dx[ih * g.in_w + c.lo..ih * g.in_w + c.hi].iter_mut().for_each(|v| *v += share);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits_of<T: Element>(v: &[T]) -> Vec<u64> {
        v.iter().map(|a| a.to_f64().to_bits()).collect()
    }
    use crate::testing::{assert_close, random_vec};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Calls `f(plane, out_index, Some(in_index))` for every in-bounds cell of every window, in
    /// row-major window order, and `f(plane, out_index, None)` once per padding cell (cells of
    /// a ceil-mode window beyond the padded input are no cells at all).
    fn for_each_cell(g: &Pool2dGeometry, mut f: impl FnMut(usize, usize, Option<usize>)) {
        let (oh_n, ow_n) = (g.out_h(), g.out_w());
        for plane in 0..g.batch * g.channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    for ki in 0..g.kernel.0 {
                        for kj in 0..g.kernel.1 {
                            let ih = (oh * g.stride.0 + ki) as isize - g.padding.0 as isize;
                            let iw = (ow * g.stride.1 + kj) as isize - g.padding.1 as isize;
                            let (pad_h, pad_w) = (g.padding.0 as isize, g.padding.1 as isize);
                            if ih >= g.in_h as isize + pad_h || iw >= g.in_w as isize + pad_w {
                                continue;
                            }
                            let inside =
                                (0..g.in_h as isize).contains(&ih) && (0..g.in_w as isize).contains(&iw);
                            let cell = inside.then(|| ih as usize * g.in_w + iw as usize);
                            f(plane, (plane * oh_n + oh) * ow_n + ow, cell);
                        }
                    }
                }
            }
        }
    }

    fn check<T: Element>(g: &Pool2dGeometry, x: &[T], seed: u64) {
        let (n_out, in_plane) = (g.output_len(), g.in_h * g.in_w);
        // average pooling's divisor per window: its cells counted as the geometry says
        let mut divisor = vec![0.0f64; n_out];
        for_each_cell(g, |_, o, cell| {
            divisor[o] += f64::from(u8::from(cell.is_some() || g.count_include_pad))
        });
        divisor.iter_mut().for_each(|d| *d = d.max(1.0));
        let dy = random_vec::<T>(n_out, seed);
        let (mut y_max, mut arg) = (vec![f64::NEG_INFINITY; n_out], vec![usize::MAX; n_out]);
        let mut y_avg = vec![0.0; n_out];
        let mut dx_avg = vec![0.0; x.len()];
        for_each_cell(g, |plane, o, cell| {
            if let Some(c) = cell {
                let v = x[plane * in_plane + c].to_f64();
                // The first cell, then any greater one; a NaN wins (the last one, as in PyTorch).
                if arg[o] == usize::MAX || v > y_max[o] || v.is_nan() {
                    (y_max[o], arg[o]) = (v, c);
                }
                y_avg[o] += v / divisor[o];
                dx_avg[plane * in_plane + c] += dy[o].to_f64() / divisor[o];
            }
        });
        let mut dx_max = vec![0.0; x.len()];
        for (o, &a) in arg.iter().enumerate() {
            if a != usize::MAX {
                dx_max[o / (g.out_h() * g.out_w()) * in_plane + a] += dy[o].to_f64();
            }
        }
        let t = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        let (atol, rtol) = if T::DTYPE == crate::DType::F32 { (1e-6, 1e-5) } else { (1e-14, 1e-12) };

        let (mut y, mut am) = (vec![T::from_f64(f64::NAN); n_out], vec![T::from_f64(7.0); n_out]);
        max_pool2d(g, x, &mut y, &mut am);
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        assert!(y.iter().zip(&y_max).all(|(a, &b)| same(a.to_f64(), b)), "{g:?}");
        let arg_as_t: Vec<f64> = arg.iter().map(|&a| if a == usize::MAX { -1.0 } else { a as f64 }).collect();
        assert_eq!(am.iter().map(|a| a.to_f64()).collect::<Vec<_>>(), arg_as_t, "{g:?}");
        let mut only = vec![T::from_f64(7.0); n_out];
        max_pool2d_indices(g, x, &mut only);
        assert_eq!(bits_of(&only), bits_of(&am), "indices alone {g:?}");
        let mut gathered = vec![T::from_f64(f64::NAN); n_out];
        max_pool2d_gather(g, x, &am, &mut gathered);
        assert!(gathered.iter().zip(&y_max).all(|(a, &b)| same(a.to_f64(), b)), "gather {g:?}");
        let mut dx = vec![T::from_f64(f64::NAN); x.len()];
        max_pool2d_backward(g, &dy, &am, &mut dx);
        assert_close(&dx, &t(&dx_max), atol, rtol);

        avg_pool2d(g, x, &mut y);
        assert_close(&y, &t(&y_avg), atol, rtol);
        avg_pool2d_backward(g, &dy, &mut dx);
        assert_close(&dx, &t(&dx_avg), atol, rtol);
    }

    fn random_geometry(rng: &mut ChaCha8Rng) -> Pool2dGeometry {
        let mut pick = |v: &[usize]| *v.choose(rng).unwrap();
        let kernel = (pick(&[1, 2, 3, 5]), pick(&[1, 2, 3, 5]));
        Pool2dGeometry {
            batch: pick(&[0, 1, 3]),
            channels: pick(&[1, 3]),
            in_h: pick(&[0, 1, 7, 17]),
            in_w: pick(&[1, 7, 17, 65]),
            kernel,
            stride: (pick(&[1, 2, 3]), pick(&[1, 2, 3])),
            // Mostly PyTorch's padding ≤ kernel / 2, sometimes more (windows wholly in padding).
            padding: (pick(&[0, 1, kernel.0 / 2]), pick(&[0, 2, kernel.1 / 2])),
            ceil_mode: pick(&[0, 1]) == 1,
            count_include_pad: pick(&[0, 1]) == 1,
        }
    }

    #[test]
    fn ceil_mode_sizes_follow_pytorch() {
        // torch.nn.functional.max_pool2d(torch.zeros(1, 1, h, w), k, s, p, ceil_mode=True).shape
        let g = |in_h, in_w, k, s, p| Pool2dGeometry {
            batch: 1,
            channels: 1,
            in_h,
            in_w,
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            ceil_mode: true,
            count_include_pad: true,
        };
        assert_eq!((g(9, 10, 2, 3, 0).out_h(), g(9, 10, 2, 3, 0).out_w()), (3, 4));
        assert_eq!((g(8, 7, 3, 2, 1).out_h(), g(8, 7, 3, 2, 1).out_w()), (5, 4));
        assert_eq!((g(5, 6, 2, 2, 0).out_h(), g(5, 6, 2, 2, 0).out_w()), (3, 3));
        let floor = Pool2dGeometry { ceil_mode: false, ..g(5, 6, 2, 2, 0) };
        assert_eq!((floor.out_h(), floor.out_w()), (2, 3));
    }

    fn fixed_geometries() -> Vec<Pool2dGeometry> {
        let g = Pool2dGeometry {
            batch: 3,
            channels: 3,
            in_h: 7,
            in_w: 7,
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ceil_mode: false,
            count_include_pad: true,
        };
        vec![
            g,
            Pool2dGeometry { padding: (0, 0), ..g },
            // The W3 pools.
            Pool2dGeometry {
                batch: 4,
                channels: 16,
                in_h: 28,
                in_w: 28,
                kernel: (2, 2),
                stride: (2, 2),
                padding: (0, 0),
                ceil_mode: false,
                count_include_pad: true,
            },
            Pool2dGeometry {
                batch: 4,
                channels: 32,
                in_h: 14,
                in_w: 14,
                kernel: (2, 2),
                stride: (2, 2),
                padding: (0, 0),
                ceil_mode: false,
                count_include_pad: true,
            },
            Pool2dGeometry { in_h: 17, in_w: 129, kernel: (3, 5), stride: (1, 3), padding: (1, 2), ..g },
            // ceil mode: 8 columns take 5 windows of 3 by 2 with padding 1 (floor mode 4), the
            // last one partly beyond the padded input, padding counted or not
            Pool2dGeometry { in_h: 9, in_w: 8, ceil_mode: true, ..g },
            Pool2dGeometry { in_h: 9, in_w: 8, ceil_mode: true, count_include_pad: false, ..g },
            // 10 columns, windows of 2 by 3: a 4th window of one cell; 9 rows: none (it would
            // start past the input, which PyTorch's rule drops)
            Pool2dGeometry {
                in_h: 9,
                in_w: 10,
                kernel: (2, 2),
                stride: (3, 3),
                padding: (0, 0),
                ceil_mode: true,
                ..g
            },
            // the 2×2 pool at odd sizes: a partial last row and column
            Pool2dGeometry {
                in_h: 7,
                in_w: 9,
                kernel: (2, 2),
                stride: (2, 2),
                padding: (0, 0),
                ceil_mode: true,
                ..g
            },
            // 2×2 stride 2 on odd sizes: the last row and column are left out
            Pool2dGeometry { in_h: 9, in_w: 7, kernel: (2, 2), stride: (2, 2), padding: (0, 0), ..g },
            Pool2dGeometry { in_h: 1, in_w: 2, kernel: (3, 3), padding: (0, 0), ..g },
        ]
    }

    #[test]
    fn pooling_matches_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let cases = fixed_geometries().into_iter().chain((0..300).map(|_| random_geometry(&mut rng)));
        for (i, g) in cases.enumerate() {
            let seed = 10 * i as u64;
            check::<f64>(&g, &random_vec::<f64>(g.input_len(), seed), seed + 1);
            check::<f32>(&g, &random_vec::<f32>(g.input_len(), seed), seed + 1);
        }
    }

    /// The 2×2 kernels (vector groups of eight windows, the last moved back or masked),
    /// forward and backward, against plain loops, bit for bit: every row width from 2 to 37
    /// (short rows, whole and partial groups, odd widths), several planes, values from
    /// {−1, −0, +0, 1} so most windows tie and zeros of both signs meet (the first maximal cell
    /// gives the value, sign included).
    #[test]
    fn two_by_two_pool_takes_the_first_maximal_cell_bit_for_bit() {
        fn run<T: Element>(rng: &mut ChaCha8Rng) {
            for in_w in 2..=37 {
                for in_h in [2, 3, 6] {
                    let g = Pool2dGeometry {
                        batch: 2,
                        channels: 3,
                        in_h,
                        in_w,
                        kernel: (2, 2),
                        stride: (2, 2),
                        padding: (0, 0),
                        ceil_mode: false,
                        count_include_pad: true,
                    };
                    let values = [-1.0, -0.0, 0.0, 1.0];
                    let x: Vec<T> =
                        (0..g.input_len()).map(|_| T::from_f64(*values.choose(rng).unwrap())).collect();
                    let (out_h, out_w, plane) = (g.out_h(), g.out_w(), in_h * in_w);
                    let (mut want_y, mut want_arg) = (Vec::new(), Vec::new());
                    for p in 0..2 * 3 {
                        for oh in 0..out_h {
                            for ow in 0..out_w {
                                let mut best = 2 * oh * in_w + 2 * ow;
                                for c in [best + 1, best + in_w, best + in_w + 1] {
                                    if x[p * plane + c] > x[p * plane + best] {
                                        best = c;
                                    }
                                }
                                want_y.push(x[p * plane + best]);
                                want_arg.push(T::from_usize(best));
                            }
                        }
                    }
                    let (mut y, mut arg) =
                        (vec![T::from_f64(f64::NAN); g.output_len()], vec![T::ZERO; g.output_len()]);
                    max_pool2d(&g, &x, &mut y, &mut arg);
                    assert_eq!(bits_of(&y), bits_of(&want_y), "values, {in_h}×{in_w}");
                    assert_eq!(bits_of(&arg), bits_of(&want_arg), "indices, {in_h}×{in_w}");
                    // the backward against the scatter it replaces (dy with zeros of both
                    // signs), then with indices moved out of their windows (the scatter again)
                    let dy: Vec<T> =
                        (0..g.output_len()).map(|_| T::from_f64(*values.choose(rng).unwrap())).collect();
                    let scatter = |arg: &[T]| {
                        let mut dx = vec![T::ZERO; g.input_len()];
                        for (o, (&d, &a)) in dy.iter().zip(arg).enumerate() {
                            dx[o / (out_h * out_w) * plane + a.to_f64() as usize] += d;
                        }
                        dx
                    };
                    let mut moved = arg.clone();
                    moved.chunks_mut(out_h * out_w).for_each(|p| p.reverse());
                    for arg in [&arg, &moved] {
                        let mut dx = vec![T::from_f64(f64::NAN); g.input_len()];
                        max_pool2d_backward(&g, &dy, arg, &mut dx);
                        assert_eq!(bits_of(&dx), bits_of(&scatter(arg)), "backward, {in_h}×{in_w}");
                    }
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        run::<f32>(&mut rng);
        run::<f64>(&mut rng);
    }

    #[test]
    fn max_pool_ties_pick_first_cell() {
        // Values from {0, 1, 2}: most windows hold several maxima; the first in row-major order wins.
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        for g in fixed_geometries() {
            let x: Vec<f64> = (0..g.input_len()).map(|_| rng.gen_range(0..3) as f64).collect();
            check::<f64>(&g, &x, 5);
        }
        // One 1×4 plane, window 1×3 stride 1: windows [2 2 1] and [2 1 2] both pick index 0 / 1.
        let g = Pool2dGeometry {
            batch: 1,
            channels: 1,
            in_h: 1,
            in_w: 4,
            kernel: (1, 3),
            stride: (1, 1),
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
        };
        let (mut y, mut am) = (vec![0.0; 2], vec![0.0; 2]);
        max_pool2d(&g, &[2.0, 2.0, 1.0, 2.0], &mut y, &mut am);
        assert_eq!((y, am), (vec![2.0, 2.0], vec![0.0, 1.0]));
    }

    #[test]
    fn max_pool_nan_wins_and_negative_infinity_is_an_ordinary_value() {
        // Some planes hold a NaN (they take the per-window path), others only −∞ and ties.
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for g in fixed_geometries() {
            let mut x: Vec<f64> = (0..g.input_len()).map(|_| rng.gen_range(0..3) as f64).collect();
            for _ in 0..x.len() / 50 + 1 {
                let i = rng.gen_range(0..x.len());
                x[i] = if rng.gen_bool(0.5) { f64::NAN } else { f64::NEG_INFINITY };
            }
            check::<f64>(&g, &x, 6);
        }
    }

    #[test]
    fn max_pool_padding_is_never_selected() {
        // All inputs negative: a padding cell taken as 0 would win every border window.
        let g = Pool2dGeometry {
            batch: 1,
            channels: 2,
            in_h: 5,
            in_w: 5,
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ceil_mode: false,
            count_include_pad: true,
        };
        let x: Vec<f64> = random_vec::<f64>(g.input_len(), 3).iter().map(|v| v.abs() - 2.0).collect();
        let (mut y, mut am) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
        max_pool2d(&g, &x, &mut y, &mut am);
        assert!(y.iter().all(|&v| v < -1.0));
        assert!(am.iter().all(|&a| (0.0..25.0).contains(&a)));
        check::<f64>(&g, &x, 4);
    }

    #[test]
    fn avg_pool_is_adjoint_of_its_backward() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for i in 0..100 {
            let g = random_geometry(&mut rng);
            let x = random_vec::<f64>(g.input_len(), i);
            let dy = random_vec::<f64>(g.output_len(), i + 1000);
            let (mut y, mut dx) = (vec![0.0; dy.len()], vec![0.0; x.len()]);
            avg_pool2d(&g, &x, &mut y);
            avg_pool2d_backward(&g, &dy, &mut dx);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()), "{g:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let g = Pool2dGeometry {
            batch: 8,
            channels: 16,
            in_h: 28,
            in_w: 28,
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ceil_mode: false,
            count_include_pad: true,
        };
        let x = random_vec::<f32>(g.input_len(), 1);
        let dy = random_vec::<f32>(g.output_len(), 2);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (mut y, mut am) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
                max_pool2d(&g, &x, &mut y, &mut am);
                let mut dx = vec![0.0; g.input_len()];
                max_pool2d_backward(&g, &dy, &am, &mut dx);
                let mut ya = vec![0.0; g.output_len()];
                avg_pool2d(&g, &x, &mut ya);
                let mut dxa = vec![0.0; g.input_len()];
                avg_pool2d_backward(&g, &dy, &mut dxa);
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                (bits(y), bits(am), bits(dx), bits(ya), bits(dxa))
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(2));
    }
}

//! The three convolution kernels every public entry point lowers to: forward, input gradient
//! and weight gradient of a grouped 2-d convolution, computed per image as im2col + GEMM (and
//! GEMM + col2im for the input gradient).
//!
//! [`Lowering`] is the geometry with its output size resolved, under the short names the loops
//! use. Taps that fall outside the input read as zero and are dropped on the way back.
//!
//! Invariants: per image and group, the column matrix is `k × p` (`k = cg_in·kh·kw` rows in
//! (channel, ki, kj) order, `p = out_h·out_w` columns), matching the OIHW weight row of one
//! output channel. Parallel work is split per image (forward, input gradient) or into batch
//! chunks whose count depends only on the geometry (weight gradient), and the chunk partials
//! are added in chunk order, so results do not depend on the thread count.

use crate::gemm::{gemm, Epilogue, Gemm};
use crate::Element;
use rayon::prelude::*;

/// Multiply-adds below which a convolution runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;
/// Most batch chunks (and so weight-gradient partials) a weight gradient is split into.
const MAX_WEIGHT_CHUNKS: usize = 8;
/// Budget, in elements, for the weight-gradient partial buffers.
const PARTIALS_BUDGET: usize = 1 << 24;

/// A grouped 2-d convolution with both spatial sizes explicit (NCHW input, OIHW weight).
#[derive(Clone, Copy, Debug)]
pub(super) struct Lowering {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub dil: (usize, usize),
    pub groups: usize,
}

impl Lowering {
    fn check(&self) {
        assert!(
            self.groups >= 1
                && self.c_in.is_multiple_of(self.groups)
                && self.c_out.is_multiple_of(self.groups),
            "internal invariant: groups divide the channel counts ({self:?})"
        );
        assert!(
            self.stride.0 >= 1 && self.stride.1 >= 1 && self.dil.0 >= 1 && self.dil.1 >= 1,
            "internal invariant: stride and dilation are at least 1 ({self:?})"
        );
    }
    fn cg_in(&self) -> usize {
        self.c_in / self.groups
    }
    fn cg_out(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the column matrix: the GEMM contraction length of the forward.
    fn k(&self) -> usize {
        self.cg_in() * self.kh * self.kw
    }
    /// Output pixels per channel: columns of the column matrix.
    fn p(&self) -> usize {
        self.out_h * self.out_w
    }
    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.in_plane()
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.p()
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.k()
    }
    /// A 1×1, stride-1, unpadded convolution: the input plane is already the column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == (1, 1)
            && self.pad == (0, 0)
            && (self.out_h, self.out_w) == (self.in_h, self.in_w)
    }
    fn col_len(&self) -> usize {
        if self.pointwise() {
            0
        } else {
            self.k() * self.p()
        }
    }
    fn parallel(&self) -> bool {
        self.batch >= 2 && self.batch * self.c_out * self.p() * self.k() >= PAR_MIN_MACS
    }
    /// Stride 1 and an output row as wide as an input row: a tap reads one contiguous run of
    /// the input plane (wrapping round between rows) for its whole column-matrix row.
    fn contiguous_taps(&self) -> bool {
        self.stride == (1, 1) && self.out_w == self.in_w
    }
}

/// The output indices `o` in `0..out_n` whose tap `o·stride + offset − pad` lands in `0..in_n`,
/// as a half-open range (empty when none do).
fn valid_range(out_n: usize, in_n: usize, stride: usize, pad: usize, offset: usize) -> (usize, usize) {
    if in_n == 0 || in_n + pad <= offset {
        return (0, 0);
    }
    let hi = ((in_n - 1 + pad - offset) / stride + 1).min(out_n);
    let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(stride) }.min(hi);
    (lo, hi)
}

/// Fills one image's row `(c, ki, kj)` of the column matrix (`dst`, `p` long) from its input
/// plane `plane` of channel `c`.
fn im2col_row<T: Element>(l: &Lowering, plane: &[T], ki: usize, kj: usize, dst: &mut [T]) {
    let ow_n = l.out_w;
    let (oh_lo, oh_hi) = valid_range(l.out_h, l.in_h, l.stride.0, l.pad.0, ki * l.dil.0);
    let off = kj * l.dil.1;
    let (ow_lo, ow_hi) = valid_range(ow_n, l.in_w, l.stride.1, l.pad.1, off);
    if oh_lo == oh_hi || ow_lo == ow_hi {
        dst.fill(T::ZERO);
        return;
    }
    if l.contiguous_taps() {
        // One copy of the run from the first valid tap to the last, then zeros over the
        // columns it read from the neighbouring rows.
        let (a, b) = (oh_lo * ow_n + ow_lo, (oh_hi - 1) * ow_n + ow_hi);
        let src = (oh_lo + ki * l.dil.0 - l.pad.0) * l.in_w + ow_lo + off - l.pad.1;
        dst[..a].fill(T::ZERO);
        dst[b..].fill(T::ZERO);
        dst[a..b].copy_from_slice(&plane[src..src + b - a]);
        for ow in (0..ow_lo).chain(ow_hi..ow_n) {
            for oh in oh_lo..oh_hi {
                dst[oh * ow_n + ow] = T::ZERO;
            }
        }
        return;
    }
    dst[..oh_lo * ow_n].fill(T::ZERO);
    dst[oh_hi * ow_n..].fill(T::ZERO);
    for oh in oh_lo..oh_hi {
        let ih = oh * l.stride.0 + ki * l.dil.0 - l.pad.0;
        let src = &plane[ih * l.in_w..(ih + 1) * l.in_w];
        let dst = &mut dst[oh * ow_n..(oh + 1) * ow_n];
        dst[..ow_lo].fill(T::ZERO);
        dst[ow_hi..].fill(T::ZERO);
        let iw0 = ow_lo * l.stride.1 + off - l.pad.1;
        let dst = &mut dst[ow_lo..ow_hi];
        if l.stride.1 == 1 {
            dst.copy_from_slice(&src[iw0..iw0 + dst.len()]);
        } else {
            for (d, s) in dst.iter_mut().zip(src[iw0..].iter().step_by(l.stride.1)) {
                *d = *s;
            }
        }
    }
}

/// Adds one image's row `(c, ki, kj)` of the column matrix (`src`, `p` long) onto its input
/// plane `plane` of channel `c`. May zero the entries of `src` that fall outside the input.
fn col2im_row<T: Element>(l: &Lowering, src: &mut [T], ki: usize, kj: usize, plane: &mut [T]) {
    let ow_n = l.out_w;
    let (oh_lo, oh_hi) = valid_range(l.out_h, l.in_h, l.stride.0, l.pad.0, ki * l.dil.0);
    let off = kj * l.dil.1;
    let (ow_lo, ow_hi) = valid_range(ow_n, l.in_w, l.stride.1, l.pad.1, off);
    if oh_lo == oh_hi || ow_lo == ow_hi {
        return;
    }
    if l.contiguous_taps() {
        // Zeros over the columns that wrap round to the neighbouring rows, then one add of the
        // run (adding +0 leaves a sum that started at +0 as it was).
        for ow in (0..ow_lo).chain(ow_hi..ow_n) {
            for oh in oh_lo..oh_hi {
                src[oh * ow_n + ow] = T::ZERO;
            }
        }
        let (a, b) = (oh_lo * ow_n + ow_lo, (oh_hi - 1) * ow_n + ow_hi);
        let dst = (oh_lo + ki * l.dil.0 - l.pad.0) * l.in_w + ow_lo + off - l.pad.1;
        for (d, s) in plane[dst..dst + b - a].iter_mut().zip(&src[a..b]) {
            *d += *s;
        }
        return;
    }
    for oh in oh_lo..oh_hi {
        let ih = oh * l.stride.0 + ki * l.dil.0 - l.pad.0;
        let iw0 = ow_lo * l.stride.1 + off - l.pad.1;
        let dst = &mut plane[ih * l.in_w + iw0..(ih + 1) * l.in_w];
        let src = &src[oh * ow_n + ow_lo..oh * ow_n + ow_hi];
        for (d, s) in dst.iter_mut().step_by(l.stride.1).zip(src) {
            *d += *s;
        }
    }
}

/// Fills the `k × p` column matrix of one image's group (`x`: `cg_in` input planes).
fn im2col<T: Element>(l: &Lowering, x: &[T], col: &mut [T]) {
    let (p, taps, plane) = (l.p(), l.kh * l.kw, l.in_plane());
    for (r, row) in col.chunks_exact_mut(p).enumerate() {
        let (c, t) = (r / taps, r % taps);
        im2col_row(l, &x[c * plane..(c + 1) * plane], t / l.kw, t % l.kw, row);
    }
}

/// Overwrites one image's group of input planes (`dx`) with the sum of the `k × p` column
/// matrix `col` (clobbered).
fn col2im<T: Element>(l: &Lowering, col: &mut [T], dx: &mut [T]) {
    let (p, taps) = (l.p(), l.kh * l.kw);
    let mut rows = col.chunks_exact_mut(p);
    for plane in dx.chunks_exact_mut(l.in_plane()).take(l.cg_in()) {
        plane.fill(T::ZERO);
        for t in 0..taps {
            let row = rows.next().expect("internal invariant: column rows");
            col2im_row(l, row, t / l.kw, t % l.kw, plane);
        }
    }
}

/// Adds `bias[c]` to every element of output plane `c`.
fn add_bias<T: Element>(y: &mut [T], plane: usize, bias: Option<&[T]>) {
    if let Some(bias) = bias {
        for (row, &b) in y.chunks_exact_mut(plane).zip(bias) {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// Runs `f(image, out_image, scratch)` over the images of `out` (whole images of
/// `out_img` elements), in parallel when `par`. The images are cut into one run per thread,
/// each with one scratch buffer of `scratch` elements (a buffer per image, or per rayon split,
/// cost an allocation and page faults each). Every image is computed the same way whatever the
/// cut, so results do not depend on the thread count.
fn for_each_image<T: Element>(
    out: &mut [T],
    out_img: usize,
    scratch: usize,
    par: bool,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let run = |first: usize, out: &mut [T]| {
        let mut col = vec![T::ZERO; scratch];
        for (i, o) in out.chunks_mut(out_img).enumerate() {
            f(first + i, o, &mut col);
        }
    };
    let images = out.len() / out_img.max(1);
    let per_run = images.div_ceil(if par { rayon::current_num_threads() } else { 1 }).max(1);
    if par && images > per_run {
        out.par_chunks_mut(per_run * out_img).enumerate().for_each(|(r, o)| run(r * per_run, o));
    } else {
        run(0, out);
    }
}

/// y = conv(x; w) + bias (bias per output channel).
pub(super) fn forward<T: Element>(l: &Lowering, x: &[T], w: &[T], epilogue: &Epilogue<T>, y: &mut [T]) {
    let bias = epilogue.bias;
    l.check();
    assert!(
        x.len() == l.x_len() && w.len() == l.w_len() && y.len() == l.y_len(),
        "internal invariant: conv forward buffer lengths ({l:?})"
    );
    assert!(
        bias.is_none_or(|b| b.len() == l.c_out),
        "internal invariant: conv bias has one value per output channel"
    );
    if y.is_empty() {
        return;
    }
    let (k, p, cg_out) = (l.k(), l.p(), l.cg_out());
    let x_img = l.c_in * l.in_plane();
    let gm = Gemm { m: cg_out, n: p, k, trans_a: false, trans_b: false, accumulate: false };
    for_each_image(y, l.c_out * p, l.col_len(), l.parallel(), |i, y_img, col| {
        let x_img = &x[i * x_img..(i + 1) * x_img];
        for g in 0..l.groups {
            let y_g = &mut y_img[g * cg_out * p..(g + 1) * cg_out * p];
            if k == 0 {
                y_g.fill(T::ZERO);
                continue;
            }
            let x_g = &x_img[g * l.cg_in() * l.in_plane()..(g + 1) * l.cg_in() * l.in_plane()];
            let w_g = &w[g * cg_out * k..(g + 1) * cg_out * k];
            let b = if l.pointwise() {
                x_g
            } else {
                im2col(l, x_g, col);
                &*col
            };
            gemm(&gm, w_g, b, y_g);
        }
        add_bias(y_img, p, bias);
        if let Some(op) = epilogue.activation.as_unary() {
            crate::unary::unary_inplace(op, y_img);
        }
    });
}

/// dx = convᵀ(dy; w); overwrites dx.
pub(super) fn backward_input<T: Element>(l: &Lowering, dy: &[T], w: &[T], dx: &mut [T]) {
    l.check();
    assert!(
        dy.len() == l.y_len() && w.len() == l.w_len() && dx.len() == l.x_len(),
        "internal invariant: conv input-gradient buffer lengths ({l:?})"
    );
    if dx.is_empty() {
        return;
    }
    let (k, p, cg_out) = (l.k(), l.p(), l.cg_out());
    let (dy_img, g_in) = (l.c_out * p, l.cg_in() * l.in_plane());
    let gm = Gemm { m: k, n: p, k: cg_out, trans_a: true, trans_b: false, accumulate: false };
    for_each_image(dx, l.c_in * l.in_plane(), l.col_len(), l.parallel(), |i, dx_img, col| {
        let dy_img = &dy[i * dy_img..(i + 1) * dy_img];
        for g in 0..l.groups {
            let dx_g = &mut dx_img[g * g_in..(g + 1) * g_in];
            if cg_out == 0 || p == 0 {
                dx_g.fill(T::ZERO);
                continue;
            }
            let dy_g = &dy_img[g * cg_out * p..(g + 1) * cg_out * p];
            let w_g = &w[g * cg_out * k..(g + 1) * cg_out * k];
            if l.pointwise() {
                gemm(&gm, w_g, dy_g, dx_g);
            } else {
                gemm(&gm, w_g, dy_g, col);
                col2im(l, col, dx_g);
            }
        }
    });
}

/// dw = Σ over the batch of dy · im2col(x)ᵀ; overwrites dw.
pub(super) fn backward_weight<T: Element>(l: &Lowering, x: &[T], dy: &[T], dw: &mut [T]) {
    l.check();
    assert!(
        x.len() == l.x_len() && dy.len() == l.y_len() && dw.len() == l.w_len(),
        "internal invariant: conv weight-gradient buffer lengths ({l:?})"
    );
    if dw.is_empty() {
        return;
    }
    if l.batch == 0 || l.p() == 0 {
        dw.fill(T::ZERO);
        return;
    }
    // The chunking depends on the geometry alone, so the order partials are added in does too.
    let chunks = if l.parallel() {
        let by_memory = (PARTIALS_BUDGET / dw.len()).max(1);
        l.batch.min(MAX_WEIGHT_CHUNKS).min(by_memory)
    } else {
        1
    };
    let per_chunk = l.batch.div_ceil(chunks);
    let chunks = l.batch.div_ceil(per_chunk);
    let mut partials = vec![T::ZERO; (chunks - 1) * dw.len()];
    let w_len = dw.len();
    let mut outs: Vec<&mut [T]> = Vec::with_capacity(chunks);
    outs.push(dw);
    outs.extend(partials.chunks_exact_mut(w_len));
    let run = |c: usize, out: &mut [T]| {
        let images = c * per_chunk..((c + 1) * per_chunk).min(l.batch);
        weight_chunk(l, x, dy, images, out);
    };
    if chunks > 1 {
        outs.par_iter_mut().enumerate().for_each(|(c, out)| run(c, out));
    } else {
        run(0, outs[0]);
    }
    let (first, rest) = outs.split_first_mut().expect("internal invariant: one chunk");
    for part in rest {
        for (d, s) in first.iter_mut().zip(part.iter()) {
            *d += *s;
        }
    }
}

/// The weight gradient of the images in `images`, written (not added) to `dw`.
fn weight_chunk<T: Element>(l: &Lowering, x: &[T], dy: &[T], images: std::ops::Range<usize>, dw: &mut [T]) {
    let (k, p, cg_out) = (l.k(), l.p(), l.cg_out());
    let (x_img, dy_img, g_in) = (l.c_in * l.in_plane(), l.c_out * p, l.cg_in() * l.in_plane());
    let mut col = vec![T::ZERO; l.col_len()];
    let first = images.start;
    for i in images {
        let gm = Gemm { m: cg_out, n: k, k: p, trans_a: false, trans_b: true, accumulate: i > first };
        for g in 0..l.groups {
            let x_g = &x[i * x_img + g * g_in..i * x_img + (g + 1) * g_in];
            let dy_g = &dy[i * dy_img + g * cg_out * p..i * dy_img + (g + 1) * cg_out * p];
            let dw_g = &mut dw[g * cg_out * k..(g + 1) * cg_out * k];
            let b = if l.pointwise() {
                x_g
            } else {
                im2col(l, x_g, &mut col);
                &col[..]
            };
            gemm(&gm, dy_g, b, dw_g);
        }
    }
}

//! Packing: copies a block of A into MR-row panels and a block of B into NR-column panels, in
//! the exact order the micro-kernel reads them.
//!
//! Operands are read through a [`MatRef`] (pointer plus row and column strides), so a
//! transposed operand is packed straight from its stored layout: no transposed copy is ever
//! made. Panels past the matrix edge are zero-padded, so the kernel always sees full panels;
//! the padded rows/columns of the resulting tile are discarded by the driver.
//!
//! Layouts (for a block of `kc` columns of A / rows of B):
//! - A panel `r`: `dst[r·MR·kc + p·MR + i] = A[r·MR + i, p]`
//! - B panel `s`: `dst[s·NR·kc + p·NR + j] = B[p, s·NR + j]`

use super::kernel::MicroKernel;
use crate::Element;
use std::any::TypeId;

/// A read-only strided matrix view: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<T> {
    /// Element (0, 0).
    pub ptr: *const T,
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

// SAFETY: a MatRef is only ever read through, and the slices it points into outlive every
// parallel region of the GEMM call that created it.
unsafe impl<T: Sync> Send for MatRef<T> {}
// SAFETY: as above: shared read-only access.
unsafe impl<T: Sync> Sync for MatRef<T> {}

impl<T> MatRef<T> {
    /// The view starting at element `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` must lie inside (or one past) the viewed matrix.
    pub unsafe fn offset(self, i: usize, j: usize) -> Self {
        // SAFETY: forwarded to the caller.
        let ptr = unsafe { self.ptr.add(i * self.rs + j * self.cs) };
        MatRef { ptr, ..self }
    }

    /// The transposed view of the same elements.
    pub fn transposed(self) -> Self {
        MatRef { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

/// Steps of p copied per pass of [`transpose_rows`]: the source rows' segments (`width` × 64
/// values) and the destination block (64 × `width`) both stay in L1.
const TRANSPOSE_BLOCK: usize = 64;

/// `dst[p·pitch + r] = src[r·stride + p]` for `r < width <= pitch`, `p < len`: a panel (of
/// `pitch` lanes, the first `width` of them read) packed from rows
/// that are contiguous along p. Reading each row a block at a time keeps every access in L1
/// (reading one value from every row per step walks `width` far-apart lines, which a row
/// stride of a power of two maps onto a few cache sets).
///
/// f32 panels whose width is a multiple of 8 go through AVX2 8×8 transposes where the CPU has
/// them (a panel packed value by value costs about as much as the kernel's work on it in a
/// product of a few hundred rows).
///
/// # Safety
/// `src` must be valid for `width` rows of `len` values at `stride`, `dst` for `pitch·len`.
#[inline(always)]
unsafe fn transpose_rows<T: Copy + 'static>(
    src: *const T,
    stride: usize,
    width: usize,
    len: usize,
    dst: *mut T,
    pitch: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<T>() == TypeId::of::<f32>()
        && width.is_multiple_of(8)
        && std::is_x86_feature_detected!("avx2")
    {
        // SAFETY: T is f32; the CPU has AVX2; the buffers as the contract says.
        return unsafe { transpose_rows_f32_avx2(src.cast(), stride, width, len, dst.cast(), pitch) };
    }
    for p0 in (0..len).step_by(TRANSPOSE_BLOCK) {
        let block = TRANSPOSE_BLOCK.min(len - p0);
        for r in 0..width {
            // SAFETY: r < width, p0 + q < len: inside both buffers by the contract.
            unsafe {
                let row = src.add(r * stride + p0);
                for q in 0..block {
                    *dst.add((p0 + q) * pitch + r) = *row.add(q);
                }
            }
        }
    }
}

/// [`transpose_rows`] for f32 and a width that is a multiple of 8: each 8 rows × 8 steps block
/// is loaded as 8 vectors and stored transposed (the last `len % 8` steps value by value).
///
/// # Safety
/// As [`transpose_rows`], and the CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_rows_f32_avx2(
    src: *const f32,
    stride: usize,
    width: usize,
    len: usize,
    dst: *mut f32,
    pitch: usize,
) {
    use std::arch::x86_64::*;
    let whole = len - len % 8;
    for p0 in (0..whole).step_by(8) {
        for r0 in (0..width).step_by(8) {
            // SAFETY: rows r0..r0 + 8 < width and steps p0..p0 + 8 <= len lie inside src;
            // the stores write steps p0..p0 + 8 of rows r0..r0 + 8 inside dst.
            unsafe {
                let row = |i: usize| _mm256_loadu_ps(src.add((r0 + i) * stride + p0));
                let (r0v, r1, r2, r3, r4, r5, r6, r7) =
                    (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7));
                let (t0, t1) = (_mm256_unpacklo_ps(r0v, r1), _mm256_unpackhi_ps(r0v, r1));
                let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
                let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
                let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
                let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
                let out = |q: usize, v: __m256| _mm256_storeu_ps(dst.add((p0 + q) * pitch + r0), v);
                out(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                out(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                out(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                out(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                out(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                out(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                out(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                out(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
            }
        }
    }
    for p in whole..len {
        for r in 0..width {
            // SAFETY: r < width, p < len: inside both buffers.
            unsafe { *dst.add(p * pitch + r) = *src.add(r * stride + p) };
        }
    }
}

/// Zeroes lanes `from..pitch` of each of the `len` steps of a panel.
///
/// # Safety
/// `dst` must be valid for `pitch·len` writes.
#[inline(always)]
unsafe fn zero_lanes<T: Element>(dst: *mut T, from: usize, pitch: usize, len: usize) {
    if from < pitch {
        for p in 0..len {
            // SAFETY: lanes from..pitch of step p lie inside the panel.
            unsafe { std::slice::from_raw_parts_mut(dst.add(p * pitch + from), pitch - from).fill(T::ZERO) };
        }
    }
}

/// Packs the `mc`×`kc` block of `a` (viewed from its top-left element) into `ceil(mc/MR)`
/// MR-row panels at `dst`.
///
/// # Safety
/// `a` must be valid for the whole `mc`×`kc` block and `dst` for `ceil(mc/MR)·MR·kc` writes.
pub(crate) unsafe fn pack_a<K: MicroKernel>(mc: usize, kc: usize, a: MatRef<K::Elem>, dst: *mut K::Elem) {
    let mr = K::MR;
    for (panel, r0) in (0..mc).step_by(mr).enumerate() {
        let rows = mr.min(mc - r0);
        // SAFETY: panel < ceil(mc/MR), so the panel lies inside dst.
        let out = unsafe { dst.add(panel * mr * kc) };
        // SAFETY (all reads below): row r0 + i < mc and column p < kc are inside the block;
        // writes p·MR + i < MR·kc stay in this panel.
        unsafe {
            if rows == mr && a.rs == 1 {
                // Stored transposed (k×m): each step p is MR contiguous values.
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(a.ptr.add(r0 + p * a.cs), out.add(p * mr), mr);
                }
            } else if a.cs == 1 {
                // Row-major A: each row is contiguous along p (rows past the edge are zeros).
                transpose_rows(a.ptr.add(r0 * a.rs), a.rs, rows, kc, out, mr);
                zero_lanes(out, rows, mr, kc);
            } else if rows == mr {
                for p in 0..kc {
                    for i in 0..mr {
                        *out.add(p * mr + i) = *a.ptr.add((r0 + i) * a.rs + p * a.cs);
                    }
                }
            } else {
                for p in 0..kc {
                    for i in 0..mr {
                        *out.add(p * mr + i) =
                            if i < rows { *a.ptr.add((r0 + i) * a.rs + p * a.cs) } else { K::Elem::ZERO };
                    }
                }
            }
        }
    }
}

/// Packs the `kc`×`nc` block of `b` (viewed from its top-left element) into `ceil(nc/NR)`
/// NR-column panels at `dst`, panel `s` at `dst + s·NR·kc`.
///
/// # Safety
/// `b` must be valid for the whole `kc`×`nc` block and `dst` for `ceil(nc/NR)·NR·kc` writes.
pub(crate) unsafe fn pack_b<K: MicroKernel>(kc: usize, nc: usize, b: MatRef<K::Elem>, dst: *mut K::Elem) {
    let nr = K::NR;
    for panel in 0..nc.div_ceil(nr) {
        let j0 = panel * nr;
        let cols = nr.min(nc - j0);
        // SAFETY: panel < ceil(nc/NR), so the panel lies inside dst.
        let out = unsafe { dst.add(panel * nr * kc) };
        // SAFETY (all reads below): column j0 + j < nc and row p < kc are inside the block;
        // writes p·NR + j < NR·kc stay in this panel.
        unsafe {
            if cols == nr && b.cs == 1 {
                // Row-major B: each step p is NR contiguous values.
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(b.ptr.add(p * b.rs + j0), out.add(p * nr), nr);
                }
            } else if b.rs == 1 {
                // B stored transposed (n×k): each column is contiguous along p (columns past
                // the edge are zeros).
                transpose_rows(b.ptr.add(j0 * b.cs), b.cs, cols, kc, out, nr);
                zero_lanes(out, cols, nr, kc);
            } else if cols == nr {
                for p in 0..kc {
                    for j in 0..nr {
                        *out.add(p * nr + j) = *b.ptr.add(p * b.rs + (j0 + j) * b.cs);
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..nr {
                        *out.add(p * nr + j) =
                            if j < cols { *b.ptr.add(p * b.rs + (j0 + j) * b.cs) } else { K::Elem::ZERO };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::kernel::ScalarKernel;

    type K = ScalarKernel<f64, 3, 4>;

    /// A 7×5 matrix with A[i][j] = 10i + j, stored row-major or transposed.
    fn matrix(trans: bool) -> (Vec<f64>, usize, usize) {
        let (m, k) = (7, 5);
        let mut v = vec![0.0; m * k];
        for i in 0..m {
            for j in 0..k {
                let idx = if trans { j * m + i } else { i * k + j };
                v[idx] = (10 * i + j) as f64;
            }
        }
        if trans {
            (v, 1, m)
        } else {
            (v, k, 1)
        }
    }

    #[test]
    fn pack_a_layout_and_padding() {
        for trans in [false, true] {
            let (v, rs, cs) = matrix(trans);
            let a = MatRef { ptr: v.as_ptr(), rs, cs };
            // Block rows 1..7 (6 rows), columns 1..5 (kc = 4): two panels of MR = 3.
            let mut dst = vec![f64::NAN; 2 * 3 * 4];
            // SAFETY: the block is inside the 7×5 matrix; dst holds 2 panels of 3·4.
            unsafe { pack_a::<K>(6, 4, a.offset(1, 1), dst.as_mut_ptr()) };
            for panel in 0..2 {
                for p in 0..4 {
                    for i in 0..3 {
                        let want = (10 * (1 + panel * 3 + i) + 1 + p) as f64;
                        assert_eq!(dst[panel * 12 + p * 3 + i], want, "trans {trans}");
                    }
                }
            }
            // A ragged block (5 rows): the second panel's last row is zero.
            let mut dst = vec![f64::NAN; 2 * 3 * 4];
            // SAFETY: as above, with 5 rows.
            unsafe { pack_a::<K>(5, 4, a.offset(1, 1), dst.as_mut_ptr()) };
            for p in 0..4 {
                assert_eq!(dst[12 + p * 3 + 2], 0.0);
                assert_eq!(dst[12 + p * 3 + 1], (10 * 5 + 1 + p) as f64);
            }
        }
    }

    /// Every width and length around the 8×8 blocks, f32 (vector path) and f64, against the
    /// definition.
    #[test]
    fn transpose_rows_matches_its_definition() {
        fn check<T: Element>() {
            for width in [6, 8, 16, 24, 32] {
                for len in [1, 7, 8, 9, 64, 65, 130] {
                    let stride = len + 3;
                    let src: Vec<T> = (0..width * stride).map(|i| T::from_f64(i as f64)).collect();
                    let pitch = width + 5;
                    let mut dst = vec![T::from_f64(-1.0); pitch * len];
                    // SAFETY: src holds width rows of stride >= len values; dst pitch·len.
                    unsafe { transpose_rows(src.as_ptr(), stride, width, len, dst.as_mut_ptr(), pitch) };
                    for p in 0..len {
                        for r in 0..pitch {
                            let want = if r < width { src[r * stride + p] } else { T::from_f64(-1.0) };
                            assert_eq!(dst[p * pitch + r], want, "width {width}, len {len}");
                        }
                    }
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn pack_b_layout_and_padding() {
        for trans in [false, true] {
            // The 7×5 matrix read as B (k = 7 rows, n = 5 columns).
            let (v, rs, cs) = matrix(trans);
            let b = MatRef { ptr: v.as_ptr(), rs, cs };
            // kc = 3 rows from row 2, all 5 columns: panels of NR = 4, the second ragged.
            let mut dst = vec![f64::NAN; 2 * 4 * 3];
            // SAFETY: rows 2..5 and columns 0..5 are inside; dst holds 2 panels of 4·3.
            unsafe { pack_b::<K>(3, 5, b.offset(2, 0), dst.as_mut_ptr()) };
            for panel in 0..2 {
                for p in 0..3 {
                    for j in 0..4 {
                        let col = panel * 4 + j;
                        let want = if col < 5 { (10 * (2 + p) + col) as f64 } else { 0.0 };
                        assert_eq!(dst[panel * 12 + p * 4 + j], want, "trans {trans}");
                    }
                }
            }
        }
    }
}

//! x86_64 SIMD micro-kernels: AVX2+FMA (ymm) and AVX-512F (zmm), f32 and f64.
//!
//! All four share one shape, the classic BLIS "broadcast A, load B" kernel: the MR×NR tile is
//! held in `2·MR` vector accumulators, each row being two vectors of B's width. Per step `p`
//! the kernel loads two vectors of the B panel (packed, or a row of B read in place),
//! broadcasts each of the MR values of the packed A panel and issues `2·MR` independent FMAs
//! (12 for the AVX2 kernels: enough to cover the 4-cycle FMA latency on two FMA pipes; 16 for
//! the AVX-512 ones). Accumulators start at zero and C is added after the k loop, as the
//! contract in `kernel.rs` requires.
//!
//! The AVX-512 kernels are only selected when `is_x86_feature_detected!("avx512f")` says so,
//! and the kernel tests exercise them wherever it is present (they pass on an AMD EPYC with
//! AVX-512, where a 512-bit FMA costs two 256-bit ones and they match the AVX2 kernels' speed).
//!
//! The AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable from Rust 1.89:
//! this file needs that compiler even though the workspace still declares an older MSRV.

// The workspace MSRV predates the AVX-512 stabilisation (see above).
#![allow(clippy::incompatible_msrv)]

use super::kernel::MicroKernel;
use std::arch::x86_64::*;

/// Defines a two-vectors-wide broadcast kernel `$name` (a [`MicroKernel`]) around the
/// `#[target_feature]` function `$func`.
macro_rules! broadcast_kernel {
    (
        $(#[$doc:meta])*
        $name:ident, $func:ident, feature: $feature:literal, elem: $t:ty, lanes: $lanes:literal,
        mr: $mr:literal, blocks: ($mc:literal, $kc:literal, $nc:literal),
        zero: $zero:ident, load: $load:ident, splat: $splat:ident, fma: $fma:ident,
        add: $add:ident, store: $store:ident $(,)?
    ) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl MicroKernel for $name {
            type Elem = $t;
            const MR: usize = $mr;
            const NR: usize = 2 * $lanes;
            const MC: usize = $mc;
            const KC: usize = $kc;
            const NC: usize = $nc;

            #[inline]
            unsafe fn run(k: usize, a: *const $t, b: *const $t, rsb: usize, c: *mut $t, rsc: usize, load_c: bool) {
                // SAFETY: forwarded contract; kernel selection checked the CPU feature.
                unsafe { $func(k, a, b, rsb, c, rsc, load_c) }
            }
        }

        #[target_feature(enable = $feature)]
        unsafe fn $func(k: usize, a: *const $t, b: *const $t, rsb: usize, c: *mut $t, rsc: usize, load_c: bool) {
            const MR: usize = $mr;
            const L: usize = $lanes;
            for i in 0..MR {
                // SAFETY: prefetch is a hint and never faults; the addresses are in the tile.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + 2 * L - 1) as *const i8);
                }
            }
            let mut acc = [[$zero(); 2]; MR];
            let (mut a, mut b) = (a, b);
            // One step of the k loop: a rank-1 update of the whole tile.
            macro_rules! step {
                () => {
                    // SAFETY: the caller guarantees k steps of MR (A) and 2·L (B) values; `a`
                    // and `b` advance by exactly one step (MR, and B's row stride) each time.
                    unsafe {
                        let b0 = $load(b);
                        let b1 = $load(b.add(L));
                        for (i, row) in acc.iter_mut().enumerate() {
                            let ai = $splat(*a.add(i));
                            row[0] = $fma(ai, b0, row[0]);
                            row[1] = $fma(ai, b1, row[1]);
                        }
                        a = a.add(MR);
                        b = b.add(rsb);
                    }
                };
            }
            for _ in 0..k / 4 {
                step!();
                step!();
                step!();
                step!();
            }
            for _ in 0..k % 4 {
                step!();
            }
            for (i, row) in acc.iter().enumerate() {
                // SAFETY: row i of the tile holds 2·L valid elements at c + i·rsc.
                unsafe {
                    let cr = c.add(i * rsc);
                    let (mut v0, mut v1) = (row[0], row[1]);
                    if load_c {
                        v0 = $add($load(cr), v0);
                        v1 = $add($load(cr.add(L)), v1);
                    }
                    $store(cr, v0);
                    $store(cr.add(L), v1);
                }
            }
        }
    };
}

broadcast_kernel! {
    /// f32, 6×16 with AVX2+FMA: 12 ymm accumulators (the BLIS Haswell/Zen shape).
    Avx2F32, sgemm_avx2_6x16, feature: "avx2,fma", elem: f32, lanes: 8,
    mr: 6, blocks: (144, 256, 4080),
    zero: _mm256_setzero_ps, load: _mm256_loadu_ps, splat: _mm256_set1_ps,
    fma: _mm256_fmadd_ps, add: _mm256_add_ps, store: _mm256_storeu_ps,
}

broadcast_kernel! {
    /// f64, 6×8 with AVX2+FMA: 12 ymm accumulators.
    Avx2F64, dgemm_avx2_6x8, feature: "avx2,fma", elem: f64, lanes: 4,
    mr: 6, blocks: (72, 256, 4080),
    zero: _mm256_setzero_pd, load: _mm256_loadu_pd, splat: _mm256_set1_pd,
    fma: _mm256_fmadd_pd, add: _mm256_add_pd, store: _mm256_storeu_pd,
}

broadcast_kernel! {
    /// f32, 8×32 with AVX-512F: 16 zmm accumulators.
    Avx512F32, sgemm_avx512_8x32, feature: "avx512f", elem: f32, lanes: 16,
    mr: 8, blocks: (192, 128, 4096),
    zero: _mm512_setzero_ps, load: _mm512_loadu_ps, splat: _mm512_set1_ps,
    fma: _mm512_fmadd_ps, add: _mm512_add_ps, store: _mm512_storeu_ps,
}

broadcast_kernel! {
    /// f64, 8×16 with AVX-512F: 16 zmm accumulators.
    Avx512F64, dgemm_avx512_8x16, feature: "avx512f", elem: f64, lanes: 8,
    mr: 8, blocks: (96, 128, 4096),
    zero: _mm512_setzero_pd, load: _mm512_loadu_pd, splat: _mm512_set1_pd,
    fma: _mm512_fmadd_pd, add: _mm512_add_pd, store: _mm512_storeu_pd,
}

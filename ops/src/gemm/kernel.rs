//! The micro-kernel contract, the portable scalar kernel, and run-time kernel selection.
//!
//! A micro-kernel multiplies one packed MR-row panel of A by one packed NR-column panel of B
//! (both `k` deep, see `pack.rs`) into an MR×NR tile of C. Everything above it (packing, cache
//! blocking, threads, edge tiles) lives in `driver.rs`; a kernel only ever sees full tiles.
//!
//! Invariant kept by every kernel: each output element is accumulated from zero over `p = 0..k`
//! in increasing order, and C (when loaded) is added once at the end. The result for an element
//! therefore depends only on its row of A, its column of B and `k`, never on where the tile sits
//! or which thread runs it: that is what makes the parallel driver bit-reproducible.

use crate::Element;
use std::marker::PhantomData;
use std::sync::OnceLock;

/// Register-blocked MR×NR product of packed panels, plus the cache-block sizes tuned for it.
pub(crate) trait MicroKernel {
    /// The element type the kernel computes in.
    type Elem: Element;
    /// Rows of the register tile (height of a packed A panel).
    const MR: usize;
    /// Columns of the register tile (width of a packed B panel).
    const NR: usize;
    /// Rows of A per packed block (L2-resident); a multiple of `MR`.
    const MC: usize;
    /// Depth of a packed block: the A and B micro-panels (`MR·KC`, `KC·NR`) share L1.
    const KC: usize;
    /// Columns of B per packed block (L3-resident); a multiple of `NR`.
    const NC: usize;

    /// Computes `C[i][j] = (load_c ? C[i][j] : 0) + Σ_p a[p·MR + i] · b[p·rsb + j]` for the
    /// MR×NR tile whose row `i` starts at `c + i·rsc` (columns contiguous). `rsb` is `NR` for
    /// a packed B panel, or B's own row stride when the kernel reads a row-major B in place.
    ///
    /// # Safety
    /// `a` must be valid for `MR·k` reads, `b` for `NR` reads at each of `b + p·rsb`
    /// (`p < k`), each of the `MR` rows of `c` for `NR` reads and writes, and the CPU must
    /// support the kernel's instruction set (the selection in [`isa`] guarantees it for the
    /// kernels it hands out).
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(
        k: usize,
        a: *const Self::Elem,
        b: *const Self::Elem,
        rsb: usize,
        c: *mut Self::Elem,
        rsc: usize,
        load_c: bool,
    );
}

/// The portable kernel: plain loops over an MR×NR accumulator array (the compiler vectorises
/// the NR loop where it can). It is the fallback on CPUs without a SIMD kernel and the oracle
/// the SIMD kernels are tested against, instantiated at their tile shape.
pub(crate) struct ScalarKernel<T, const MR: usize, const NR: usize>(PhantomData<T>);

impl<T: Element, const MR: usize, const NR: usize> MicroKernel for ScalarKernel<T, MR, NR> {
    type Elem = T;
    const MR: usize = MR;
    const NR: usize = NR;
    const MC: usize = MR * 16;
    const KC: usize = 256;
    const NC: usize = NR * 256;

    unsafe fn run(k: usize, a: *const T, b: *const T, rsb: usize, c: *mut T, rsc: usize, load_c: bool) {
        let mut acc = [[T::ZERO; NR]; MR];
        for p in 0..k {
            // SAFETY: p < k, so both reads stay inside the panels the caller vouched for.
            let (ap, bp) = unsafe { (a.add(p * MR), b.add(p * rsb)) };
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: i < MR within panel row p of A.
                let ai = unsafe { *ap.add(i) };
                for (j, x) in row.iter_mut().enumerate() {
                    // SAFETY: j < NR within panel row p of B.
                    *x += ai * unsafe { *bp.add(j) };
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                // SAFETY: the caller guarantees MR rows of NR valid elements at stride rsc.
                let out = unsafe { &mut *c.add(i * rsc + j) };
                *out = if load_c { *out + x } else { x };
            }
        }
    }
}

/// The portable fallback kernels.
pub(crate) type ScalarF32 = ScalarKernel<f32, 4, 8>;
/// The portable fallback kernels.
pub(crate) type ScalarF64 = ScalarKernel<f64, 4, 4>;

/// The instruction set the GEMM kernels use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// x86_64 AVX-512F (zmm kernels).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
    /// x86_64 AVX2 + FMA (ymm kernels).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2Fma,
    /// Portable scalar kernels.
    Scalar,
}

/// The best instruction set available, detected on first use and cached.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if is_x86_feature_detected!("avx512f") {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2Fma
    } else {
        Isa::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(dead_code)]
fn detect() -> Isa {
    Isa::Scalar
}

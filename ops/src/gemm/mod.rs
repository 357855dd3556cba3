//! Matrix multiply: packed, cache-blocked, SIMD, multi-threaded; batched; with a fused epilogue.
//!
//! | file | holds |
//! |---|---|
//! | `kernel.rs` | the micro-kernel contract (MR×NR tile, cache blocks), the scalar kernel, CPU detection |
//! | `x86.rs` | AVX2+FMA and AVX-512F micro-kernels (f32, f64) |
//! | `pack.rs` | packing A into MR-row and B into NR-column panels, reading transposed operands in place |
//! | `driver.rs` | the five BLIS loops, the rayon task grid, edge tiles, the epilogue |
//! | `small.rs` | the direct path for tiny and matrix-vector products |
//!
//! A call picks its path from the shape alone: `m·n·k` up to [`DIRECT_MAX_WORK`] (or a
//! matrix-vector shape, or a few dot products of rows: [`DOT_MAX_OUTPUTS`]) runs the direct
//! loops, everything else the packed driver with the best kernel for the CPU (chosen once),
//! on C or, for a product narrower than the kernel's tile (fewer columns than it is wide) or
//! one that only as its transpose reads B in place (see `driver.rs`), on Cᵀ = Bᵀ·Aᵀ. Threads
//! are used only from [`PARALLEL_MIN_WORK`] upward. Every path computes each element of C in
//! an order fixed by the shape, so the same inputs give bit-identical outputs for any thread
//! count.

mod driver;
mod kernel;
mod pack;
mod small;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::unary::UnaryOp;
use crate::Element;
use driver::{gemm_packed, CMut, Epi, Problem};
#[cfg(target_arch = "x86_64")]
use kernel::{isa, Isa};
use kernel::{MicroKernel, ScalarF32, ScalarF64};
use pack::MatRef;
use rayon::prelude::*;
use std::any::TypeId;

/// Products with at most this many multiply-adds (`m·n·k`) take the direct, unpacked path.
pub const DIRECT_MAX_WORK: usize = 1000;

/// Products whose operands both run along k in memory (A row-major, B stored transposed) with
/// at most this many outputs (`m·n`) take the direct path too: each output one dot product of
/// two contiguous rows, with no packing. A convolution's weight gradient per image is such a
/// product (16 filters × 9 taps, k = 784 positions: 7.8 µs direct, 13.5 µs packed, where the
/// tiles of the packed kernels are a quarter full).
pub const DOT_MAX_OUTPUTS: usize = 256;

/// Products with at least this many multiply-adds (`m·n·k`) are split across rayon threads.
pub const PARALLEL_MIN_WORK: usize = 1 << 21;

/// Matrix-vector products (`m == 1`) with at least this many multiply-adds are split across
/// rayon threads.
pub const GEMV_PARALLEL_MIN_WORK: usize = 1 << 17;

/// C (m×n) = A·B, or C += A·B when `accumulate`. A is m×k (stored k×m when `trans_a`), B is
/// k×n (stored n×k when `trans_b`). All operands are row-major and contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gemm {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The contracted dimension.
    pub k: usize,
    /// A is stored transposed (k×m).
    pub trans_a: bool,
    /// B is stored transposed (n×k).
    pub trans_b: bool,
    /// Add into C instead of overwriting it.
    pub accumulate: bool,
}

/// An activation applied by the GEMM epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// max(x, 0).
    Relu,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// x·Φ(x) (exact, erf-based).
    Gelu,
}

impl Activation {
    /// The elementwise op this activation is, if any.
    pub fn as_unary(self) -> Option<UnaryOp> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(UnaryOp::Relu),
            Activation::Tanh => Some(UnaryOp::Tanh),
            Activation::Sigmoid => Some(UnaryOp::Sigmoid),
            Activation::Gelu => Some(UnaryOp::Gelu),
        }
    }
}

/// Work applied to each finished element of C: `c = activation(c + bias[col])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a, T> {
    /// One value per column of C (per output channel in [`conv2d`](crate::conv::conv2d)).
    pub bias: Option<&'a [T]>,
    /// Applied after the bias.
    pub activation: Activation,
}

/// C = A·B, or C += A·B (see [`Gemm`]).
pub fn gemm<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T]) {
    gemm_with_epilogue(g, a, b, c, &Epilogue::default());
}

/// C = activation(A·B + bias) (or activation(C + A·B + bias) when accumulating), with the
/// epilogue applied to each block of C right after it is finished, while it is in cache.
pub fn gemm_with_epilogue<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], e: &Epilogue<T>) {
    let (m, n, k) = (g.m, g.n, g.k);
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "internal invariant: gemm operand lengths for {g:?}"
    );
    assert!(e.bias.is_none_or(|bias| bias.len() >= n), "internal invariant: gemm bias needs n = {n} values");
    if m == 0 || n == 0 {
        return;
    }
    let epi = Epi { bias: e.bias, act: e.activation.as_unary() };
    let c = &mut c[..m * n];
    if k == 0 {
        if !g.accumulate {
            c.fill(T::ZERO);
        }
        if !epi.is_noop() {
            c.chunks_exact_mut(n).for_each(|row| epi.apply_row(row, 0));
        }
        return;
    }
    let work = m * n * k;
    // Only asked after the size check, so small products never start the pool. A
    // matrix-vector product reads its matrix once: splitting it pays from fewer multiply-adds.
    let threshold = if m == 1 { GEMV_PARALLEL_MIN_WORK } else { PARALLEL_MIN_WORK };
    let threads = if work >= threshold { rayon::current_num_threads() } else { 1 };
    let dots = g.trans_b && !g.trans_a && m * n <= DOT_MAX_OUTPUTS;
    if work <= DIRECT_MAX_WORK || m == 1 || n == 1 || dots {
        small::gemm_direct(g, a, b, c, &epi, threads);
        return;
    }
    let problem = problem(g, a, b, c, epi);
    if let Some(p) = same_type::<T, f32>(&problem) {
        #[cfg(target_arch = "x86_64")]
        match isa() {
            Isa::Avx512 => return run::<x86::Avx512F32>(p, threads),
            Isa::Avx2Fma => return run::<x86::Avx2F32>(p, threads),
            Isa::Scalar => {}
        }
        run::<ScalarF32>(p, threads);
    } else if let Some(p) = same_type::<T, f64>(&problem) {
        #[cfg(target_arch = "x86_64")]
        match isa() {
            Isa::Avx512 => return run::<x86::Avx512F64>(p, threads),
            Isa::Avx2Fma => return run::<x86::Avx2F64>(p, threads),
            Isa::Scalar => {}
        }
        run::<ScalarF64>(p, threads);
    } else {
        unreachable!("internal invariant: Element is only f32 and f64");
    }
}

/// Frees the packing buffers the product keeps on each thread between calls (up to 16 MiB a
/// thread, sized by the largest product it has packed): on the calling thread, and on every
/// thread of rayon's pool when called from one of them (the main thread, once a tensor exists).
pub fn release_buffers() {
    driver::release_packing_buffers();
}

/// The driver's view of a call: strides that read the stored (possibly transposed) operands.
fn problem<'a, T>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], epi: Epi<'a, T>) -> Problem<'a, T> {
    let (m, n, k) = (g.m, g.n, g.k);
    let (a_rs, a_cs) = if g.trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if g.trans_b { (1, k) } else { (n, 1) };
    Problem {
        m,
        n,
        k,
        a: MatRef { ptr: a.as_ptr(), rs: a_rs, cs: a_cs },
        b: MatRef { ptr: b.as_ptr(), rs: b_rs, cs: b_cs },
        c: CMut { ptr: c.as_mut_ptr(), ld: n },
        accumulate: g.accumulate,
        epi,
    }
}

/// Runs the packed driver with kernel `K`, which `isa()` vouched for: on C, or on Cᵀ = Bᵀ·Aᵀ
/// when that fills the kernel's tiles markedly better (a product with fewer columns than a
/// tile is wide: a weight gradient of 16 input features), or when only the transpose reads its
/// B in place (a thin product whose A is stored transposed: the same weight gradient, whose
/// packed A would serve a single panel of columns).
fn run<K: MicroKernel>(p: &Problem<'_, K::Elem>, threads: usize) {
    let in_place_only_transposed = || {
        let t = Problem { m: p.n, a: p.b.transposed(), b: p.a.transposed(), ..*p };
        !driver::reads_b_in_place(p) && driver::reads_b_in_place(&t)
    };
    if transposed_pays::<K>(p.m, p.n) || in_place_only_transposed() {
        return run_transposed::<K>(p, threads);
    }
    // SAFETY: the views were built from slices whose lengths were asserted above, k > 0, and
    // the caller only names a kernel the detected instruction set supports.
    unsafe { gemm_packed::<K>(p, threads) }
}

/// True when an m×n product fills `K`'s tiles at least 1.25 times better as its transpose.
fn transposed_pays<K: MicroKernel>(m: usize, n: usize) -> bool {
    let filled = |len: usize, tile: usize| len as f64 / (len.div_ceil(tile) * tile) as f64;
    filled(n, K::MR) * filled(m, K::NR) > 1.25 * filled(m, K::MR) * filled(n, K::NR)
}

/// C from Cᵀ = Bᵀ·Aᵀ computed into a scratch buffer. Bit for bit the direct product: each
/// element is the same dot product in the same order (the kernel contract), C is added when
/// accumulating exactly as the kernel adds it, and the epilogue is applied afterwards to the
/// same finished values.
fn run_transposed<K: MicroKernel>(p: &Problem<'_, K::Elem>, threads: usize) {
    let (m, n, ld) = (p.m, p.n, p.c.ld);
    let mut ct = vec![K::Elem::ZERO; m * n];
    if p.accumulate {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: C is valid for m rows of n elements at stride ld (the caller's views).
                ct[j * m + i] = unsafe { *p.c.ptr.add(i * ld + j) };
            }
        }
    }
    let q = Problem {
        m: n,
        n: m,
        k: p.k,
        a: p.b.transposed(),
        b: p.a.transposed(),
        c: CMut { ptr: ct.as_mut_ptr(), ld: m },
        accumulate: p.accumulate,
        epi: Epi { bias: None, act: None },
    };
    // SAFETY: as in `run`; the transposed views read the same elements, and ct holds n×m.
    unsafe { gemm_packed::<K>(&q, threads) };
    for i in 0..m {
        // SAFETY: row i of C, n elements (the caller's views); no other reference is live.
        let row = unsafe { std::slice::from_raw_parts_mut(p.c.ptr.add(i * ld), n) };
        for (j, x) in row.iter_mut().enumerate() {
            *x = ct[j * m + i];
        }
        if !p.epi.is_noop() {
            p.epi.apply_row(row, 0);
        }
    }
}

/// The problem as `Problem<U>` when `T` is `U`.
fn same_type<'p, 'a, T: 'static, U: 'static>(p: &'p Problem<'a, T>) -> Option<&'p Problem<'a, U>> {
    // SAFETY: T and U are the same type, so so are Problem<T> and Problem<U>.
    (TypeId::of::<T>() == TypeId::of::<U>())
        .then(|| unsafe { &*(p as *const Problem<'a, T>).cast::<Problem<'a, U>>() })
}

/// `batch` independent products; operand `i` starts at `i * stride` (stride 0 shares one
/// operand); the C's are stored back to back (`m·n` apart).
///
/// A stack of row-major A's against one shared B runs as a single tall product (B packed
/// once); many small products run one per rayon task; large ones one after another, each
/// using every thread.
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm<T: Element>(
    g: &Gemm,
    batch: usize,
    a: &[T],
    a_stride: usize,
    b: &[T],
    b_stride: usize,
    c: &mut [T],
) {
    let (mk, kn, mn) = (g.m * g.k, g.k * g.n, g.m * g.n);
    if batch == 0 {
        return;
    }
    assert!(
        a.len() >= (batch - 1) * a_stride + mk
            && b.len() >= (batch - 1) * b_stride + kn
            && c.len() >= batch * mn,
        "internal invariant: batched gemm operand lengths for {g:?} × {batch}"
    );
    if mn == 0 {
        return;
    }
    let c = &mut c[..batch * mn];
    if batch > 1 && b_stride == 0 && !g.trans_a && a_stride == mk {
        let tall = Gemm { m: g.m * batch, ..*g };
        gemm(&tall, &a[..batch * mk], b, c);
        return;
    }
    let one = |i: usize, c_i: &mut [T]| gemm(g, &a[i * a_stride..], &b[i * b_stride..], c_i);
    let work = mn * g.k;
    if batch > 1 && work < PARALLEL_MIN_WORK && work * batch >= PARALLEL_MIN_WORK {
        c.par_chunks_mut(mn).enumerate().for_each(|(i, c_i)| one(i, c_i));
    } else {
        c.chunks_exact_mut(mn).enumerate().for_each(|(i, c_i)| one(i, c_i));
    }
}

/// The scalar triple loop: the oracle the fast paths are tested against.
pub fn gemm_reference<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T]) {
    assert!(
        a.len() >= g.m * g.k && b.len() >= g.k * g.n && c.len() >= g.m * g.n,
        "internal invariant: gemm operand lengths for {g:?}"
    );
    for i in 0..g.m {
        for j in 0..g.n {
            let mut acc = T::ZERO;
            for p in 0..g.k {
                let av = if g.trans_a { a[p * g.m + i] } else { a[i * g.k + p] };
                let bv = if g.trans_b { b[j * g.k + p] } else { b[p * g.n + j] };
                acc += av * bv;
            }
            let out = &mut c[i * g.n + j];
            *out = if g.accumulate { *out + acc } else { acc };
        }
    }
}

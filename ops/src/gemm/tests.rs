//! GEMM tests: every path against `gemm_reference` (the scalar triple loop), the epilogue,
//! batching, bit-reproducibility across thread counts, and each micro-kernel against the
//! scalar kernel at its own tile shape.

use super::driver::{gemm_packed, Epi};
use super::kernel::{MicroKernel, ScalarF32, ScalarF64, ScalarKernel};
use super::*;
use crate::testing::{assert_close, random_vec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [usize; 8] = [0, 1, 2, 7, 17, 65, 129, 300];

/// Inputs in [-1, 1): each product term is below 1, so k terms round to within ~k·eps.
fn atol<T: Element>(k: usize) -> f64 {
    4.0 * T::EPSILON.to_f64() * (k as f64 + 1.0)
}

fn all_flags() -> impl Iterator<Item = (bool, bool, bool)> {
    (0..8).map(|f| (f & 1 != 0, f & 2 != 0, f & 4 != 0))
}

/// Random (m, n, k) triples from SIZES, plus a few fixed corners.
fn shapes(count: usize, seed: u64) -> Vec<(usize, usize, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = || SIZES[rng.gen_range(0..SIZES.len())];
    let mut v = vec![(0, 5, 3), (5, 0, 3), (4, 6, 0), (1, 1, 1), (300, 300, 300), (129, 1, 65)];
    v.extend((0..count).map(|_| (pick(), pick(), pick())));
    v
}

fn check_against_reference<T: Element>(seed: u64) {
    for (s, (m, n, k)) in shapes(40, seed).into_iter().enumerate() {
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let a: Vec<T> = random_vec(m * k, 1 + s as u64);
            let b: Vec<T> = random_vec(k * n, 1000 + s as u64);
            let c0: Vec<T> = random_vec(m * n, 2000 + s as u64);
            let (mut c, mut want) = (c0.clone(), c0);
            gemm(&g, &a, &b, &mut c);
            gemm_reference(&g, &a, &b, &mut want);
            assert_close(&c, &want, atol::<T>(k), 0.0);
        }
    }
}

#[test]
fn f32_all_transposes_and_accumulate_match_reference() {
    check_against_reference::<f32>(7);
}

#[test]
fn f64_all_transposes_and_accumulate_match_reference() {
    check_against_reference::<f64>(8);
}

#[test]
fn k_zero_writes_zeros_or_leaves_c() {
    for accumulate in [false, true] {
        let g = Gemm { m: 3, n: 4, k: 0, trans_a: false, trans_b: false, accumulate };
        let mut c = vec![5.0f32; 12];
        gemm(&g, &[], &[], &mut c);
        assert_eq!(c, vec![if accumulate { 5.0 } else { 0.0 }; 12]);
    }
}

/// reference + bias + activation, evaluated through the scalar definitions.
fn epilogue_reference<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], e: &Epilogue<T>) {
    gemm_reference(g, a, b, c);
    for (idx, x) in c[..g.m * g.n].iter_mut().enumerate() {
        let mut v = x.to_f64() + e.bias.map_or(0.0, |bias| bias[idx % g.n].to_f64());
        if let Some(op) = e.activation.as_unary() {
            v = op.apply_f64(v);
        }
        *x = T::from_f64(v);
    }
}

fn check_epilogue<T: Element>(act_tol: f64) {
    let acts =
        [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Sigmoid, Activation::Gelu];
    // Direct path, packed single-threaded, packed parallel (with a ragged NC-wide split), and
    // matrix-vector products, the last one split by columns.
    let cases = [
        (3, 5, 2),
        (7, 17, 65),
        (65, 129, 17),
        (129, 300, 65),
        (2, 4100, 70),
        (300, 1, 17),
        (1, 300, 17),
        (1, 701, 300),
    ];
    for (s, &(m, n, k)) in cases.iter().enumerate() {
        for (f, (trans_a, trans_b, accumulate)) in all_flags().enumerate() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let a: Vec<T> = random_vec(m * k, s as u64);
            let b: Vec<T> = random_vec(k * n, 100 + s as u64);
            let bias: Vec<T> = random_vec(n, 200 + s as u64);
            let c0: Vec<T> = random_vec(m * n, 300 + s as u64);
            let activation = acts[f % acts.len()];
            for bias in [None, Some(&bias[..])] {
                let e = Epilogue { bias, activation };
                let (mut c, mut want) = (c0.clone(), c0.clone());
                gemm_with_epilogue(&g, &a, &b, &mut c, &e);
                epilogue_reference(&g, &a, &b, &mut want, &e);
                assert_close(&c, &want, atol::<T>(k) + act_tol, act_tol);
            }
        }
    }
    // k = 0: the epilogue still applies, to zeros (or to C when accumulating).
    let g = Gemm { m: 2, n: 3, k: 0, trans_a: false, trans_b: false, accumulate: false };
    let bias = [T::from_f64(-1.0), T::ZERO, T::from_f64(2.0)];
    let e = Epilogue { bias: Some(&bias[..]), activation: Activation::Relu };
    let mut c = vec![T::from_f64(9.0); 6];
    gemm_with_epilogue(&g, &[], &[], &mut c, &e);
    let want: Vec<T> = [0.0, 0.0, 2.0, 0.0, 0.0, 2.0].iter().map(|&v| T::from_f64(v)).collect();
    assert_eq!(c, want);
}

#[test]
fn epilogue_bias_and_each_activation_match_reference() {
    check_epilogue::<f32>(2e-6);
    check_epilogue::<f64>(1e-6);
}

fn check_batched<T: Element>() {
    let batch = 5;
    // (m, n, k): tiny (direct); small, run one after another; mid-sized, one rayon task per
    // product (the batch passes PARALLEL_MIN_WORK); large, each product itself parallel.
    let cases = [(3, 4, 5), (32, 33, 31), (70, 90, 129), (129, 130, 131)];
    const { assert!(70 * 90 * 129 < PARALLEL_MIN_WORK && 5 * 70 * 90 * 129 >= PARALLEL_MIN_WORK) };
    const { assert!(129 * 130 * 131 >= PARALLEL_MIN_WORK) };
    for (s, &(m, n, k)) in cases.iter().enumerate() {
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let (mk, kn, mn) = (m * k, k * n, m * n);
            for (a_stride, b_stride) in [(mk, kn), (0, kn), (mk, 0), (0, 0), (mk + 3, kn + 1)] {
                let a: Vec<T> = random_vec(a_stride * (batch - 1) + mk, s as u64);
                let b: Vec<T> = random_vec(b_stride * (batch - 1) + kn, 10 + s as u64);
                let c0: Vec<T> = random_vec(batch * mn, 20 + s as u64);
                let mut c = c0.clone();
                batched_gemm(&g, batch, &a, a_stride, &b, b_stride, &mut c);
                for i in 0..batch {
                    let mut want = c0[i * mn..(i + 1) * mn].to_vec();
                    let (ai, bi) = (&a[i * a_stride..], &b[i * b_stride..]);
                    gemm_reference(&g, ai, bi, &mut want);
                    assert_close(&c[i * mn..(i + 1) * mn], &want, atol::<T>(k), 0.0);
                }
            }
        }
    }
}

#[test]
fn batched_with_broadcast_operands_matches_reference() {
    check_batched::<f32>();
    check_batched::<f64>();
}

fn run_in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
    pool.expect("thread pool").install(f)
}

fn check_bit_identical<T: Element>() {
    // Packed (parallel), direct matrix-vector (parallel), dot products of rows (16 × 9
    // outputs, k = 20000: parallel), and batched small products.
    let cases =
        [(300, 129, 300), (129, 300, 65), (5000, 1, 129), (17, 2000, 300), (1, 701, 300), (16, 9, 20000)];
    for (s, &(m, n, k)) in cases.iter().enumerate() {
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let a: Vec<T> = random_vec(m * k, s as u64);
            let b: Vec<T> = random_vec(k * n, 50 + s as u64);
            let bias: Vec<T> = random_vec(n, 60 + s as u64);
            let e = Epilogue { bias: Some(&bias[..]), activation: Activation::Tanh };
            let c0: Vec<T> = random_vec(m * n, 70 + s as u64);
            let run = || {
                let mut c = c0.clone();
                gemm_with_epilogue(&g, &a, &b, &mut c, &e);
                c
            };
            let first = run_in_pool(2, run);
            assert!(first == run_in_pool(2, run), "two runs differ for {g:?}");
            assert!(first == run_in_pool(1, run), "1 vs 2 threads differ for {g:?}");
            assert!(first == run_in_pool(3, run), "3 vs 2 threads differ for {g:?}");
        }
    }
    // Enough 32³ products that the batch runs one rayon task per product.
    let batch = PARALLEL_MIN_WORK / (32 * 32 * 32) + 1;
    let g = Gemm { m: 32, n: 32, k: 32, trans_a: true, trans_b: false, accumulate: false };
    let a: Vec<T> = random_vec(batch * 1024, 1);
    let b: Vec<T> = random_vec(batch * 1024, 2);
    let run = || {
        let mut c = vec![T::ZERO; batch * 1024];
        batched_gemm(&g, batch, &a, 1024, &b, 1024, &mut c);
        c
    };
    assert!(run_in_pool(1, run) == run_in_pool(2, run), "batched: 1 vs 2 threads differ");
}

#[test]
fn bit_identical_across_runs_and_thread_counts() {
    check_bit_identical::<f32>();
    check_bit_identical::<f64>();
}

/// Runs the packed driver with kernel `K` directly (whatever the size thresholds would pick).
fn packed_with<K: MicroKernel>(g: &Gemm, a: &[K::Elem], b: &[K::Elem], c: &mut [K::Elem]) {
    let (m, n, k) = (g.m, g.n, g.k);
    assert!(m > 0 && n > 0 && k > 0 && a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let p = problem(g, a, b, c, Epi { bias: None, act: None });
    // SAFETY: the lengths are checked above; callers pass only kernels this CPU supports.
    unsafe { gemm_packed::<K>(&p, 2) }
}

/// The packed driver with kernel `K` on every flag combination, against the reference.
fn check_driver<K: MicroKernel>() {
    for (s, (m, n, k)) in shapes(12, 99).into_iter().enumerate() {
        if m * n * k == 0 {
            continue;
        }
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let a: Vec<K::Elem> = random_vec(m * k, s as u64);
            let b: Vec<K::Elem> = random_vec(k * n, 30 + s as u64);
            let c0: Vec<K::Elem> = random_vec(m * n, 60 + s as u64);
            let (mut c, mut want) = (c0.clone(), c0);
            run_in_pool(2, || packed_with::<K>(&g, &a, &b, &mut c));
            gemm_reference(&g, &a, &b, &mut want);
            assert_close(&c, &want, atol::<K::Elem>(k), 0.0);
        }
    }
}

/// Products narrower than a tile run transposed: bit for bit the direct driver's result,
/// with every flag, an epilogue, and k over several cache slices.
fn check_transposed<K: MicroKernel>() {
    for (s, &(m, n, k)) in [(300, 3, 7), (300, 4, 300), (129, 4, 600), (63, 2, 1)].iter().enumerate() {
        // Every kernel tested here is wider than tall. The shapes pay for each of them: 65×2,
        // for one, fills the AVX2 f64 kernel's 6×8 tiles only 1.22 times better transposed.
        assert!(transposed_pays::<K>(m, n) && !transposed_pays::<K>(n, m), "{m}×{n}");
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m, n, k, trans_a, trans_b, accumulate };
            let a: Vec<K::Elem> = random_vec(m * k, s as u64);
            let b: Vec<K::Elem> = random_vec(k * n, 30 + s as u64);
            let bias: Vec<K::Elem> = random_vec(n, 40 + s as u64);
            let c0: Vec<K::Elem> = random_vec(m * n, 60 + s as u64);
            let epi = Epi { bias: Some(&bias[..]), act: Some(UnaryOp::Tanh) };
            let (mut c, mut want) = (c0.clone(), c0);
            run_in_pool(2, || run::<K>(&problem(&g, &a, &b, &mut c, epi), 2));
            // SAFETY: the slices hold the product's operands; the kernel suits this CPU.
            run_in_pool(2, || unsafe { gemm_packed::<K>(&problem(&g, &a, &b, &mut want, epi), 2) });
            assert!(c == want, "{g:?}");
        }
    }
}

/// Runs `$check::<K>()` for the scalar f32 kernel and each SIMD kernel this CPU has.
macro_rules! on_every_kernel {
    ($check:ident) => {{
        $check::<ScalarF32>();
        #[cfg(target_arch = "x86_64")]
        match isa() {
            Isa::Avx512 => {
                $check::<super::x86::Avx512F32>();
                $check::<super::x86::Avx512F64>();
            }
            Isa::Avx2Fma => {
                $check::<super::x86::Avx2F32>();
                $check::<super::x86::Avx2F64>();
            }
            Isa::Scalar => {}
        }
    }};
}

#[test]
fn narrow_products_run_transposed_with_the_direct_bits() {
    on_every_kernel!(check_transposed);
}

/// Short products read a row-major B in place (its last, partial panel packed): bit for bit
/// the first rows of a product tall enough to pack B, since an element depends only on its
/// row of A, its column of B and k (with every flag, an epilogue, k over several slices).
fn check_b_in_place<K: MicroKernel>() {
    for (s, &(m, n, k)) in
        [(1, 16, 3), (32, 128, 600), (7, 17, 300), (64, 100, 257), (33, 48, 1)].iter().enumerate()
    {
        let tall = m + 70;
        for (trans_a, trans_b, accumulate) in all_flags() {
            let g = Gemm { m: tall, n, k, trans_a, trans_b, accumulate };
            let a: Vec<K::Elem> = random_vec(tall * k, s as u64);
            let b: Vec<K::Elem> = random_vec(k * n, 30 + s as u64);
            let bias: Vec<K::Elem> = random_vec(n, 40 + s as u64);
            let c0: Vec<K::Elem> = random_vec(tall * n, 60 + s as u64);
            let epi = Epi { bias: Some(&bias[..]), act: Some(UnaryOp::Tanh) };
            let mut want = c0.clone();
            let p = problem(&g, &a, &b, &mut want, epi);
            assert!(!driver::reads_b_in_place(&p));
            // One task: a task grid would hand each thread a block short enough to read B in
            // place itself.
            // SAFETY (both calls): the slices hold the operands; the kernel suits this CPU.
            unsafe { gemm_packed::<K>(&p, 1) };
            // The first m rows of A (rows of the stored k×tall matrix when transposed).
            let short_a: Vec<K::Elem> = if trans_a {
                (0..k).flat_map(|p| a[p * tall..p * tall + m].to_vec()).collect()
            } else {
                a[..m * k].to_vec()
            };
            let mut c = c0[..m * n].to_vec();
            let p = problem(&Gemm { m, ..g }, &short_a, &b, &mut c, epi);
            // (B stored n×1 is row-major too.)
            assert_eq!(driver::reads_b_in_place(&p), !trans_b || k == 1, "{g:?}");
            run_in_pool(2, || unsafe { gemm_packed::<K>(&p, 2) });
            assert!(c[..] == want[..m * n], "{m} rows of {g:?}");
        }
    }
    // A thin product whose A is stored transposed runs as its transpose, which reads that A in
    // place: the direct driver's bits.
    for (s, &(m, n, k)) in [(300, 16, 600), (512, 20, 300), (129, 64, 257)].iter().enumerate() {
        let g = Gemm { m, n, k, trans_a: true, trans_b: false, accumulate: s == 1 };
        let a: Vec<K::Elem> = random_vec(m * k, s as u64);
        let b: Vec<K::Elem> = random_vec(k * n, 30 + s as u64);
        let c0: Vec<K::Elem> = random_vec(m * n, 60 + s as u64);
        let epi = Epi { bias: None, act: Some(UnaryOp::Tanh) };
        let (mut c, mut want) = (c0.clone(), c0);
        run_in_pool(2, || run::<K>(&problem(&g, &a, &b, &mut c, epi), 2));
        // SAFETY: as above.
        run_in_pool(2, || unsafe { gemm_packed::<K>(&problem(&g, &a, &b, &mut want, epi), 2) });
        assert!(c == want, "{g:?}");
    }
}

#[test]
fn short_products_read_b_in_place_with_the_packed_bits() {
    on_every_kernel!(check_b_in_place);
}

#[test]
fn packed_driver_with_scalar_kernels_matches_reference() {
    check_driver::<ScalarF32>();
    check_driver::<ScalarF64>();
}

/// Kernel `K` against the scalar kernel of the same tile shape, on random panels, with and
/// without loading C, at strides wider than the tile.
fn check_kernel<K: MicroKernel, const MR: usize, const NR: usize>() {
    type Ref<T, const MR: usize, const NR: usize> = ScalarKernel<T, MR, NR>;
    assert_eq!((K::MR, K::NR), (MR, NR));
    for (s, k) in [0usize, 1, 3, 4, 5, 17, 256, 301].into_iter().enumerate() {
        let a: Vec<K::Elem> = random_vec(MR * k, s as u64);
        let b: Vec<K::Elem> = random_vec(NR * k, 40 + s as u64);
        let rsc = NR + 3;
        let c0: Vec<K::Elem> = random_vec(MR * rsc, 80 + s as u64);
        for load_c in [false, true] {
            let (mut got, mut want) = (c0.clone(), c0.clone());
            // SAFETY: the panels hold k steps, C holds MR rows of stride rsc ≥ NR; the caller
            // only passes kernels whose instruction set was detected.
            unsafe {
                K::run(k, a.as_ptr(), b.as_ptr(), NR, got.as_mut_ptr(), rsc, load_c);
                Ref::<K::Elem, MR, NR>::run(k, a.as_ptr(), b.as_ptr(), NR, want.as_mut_ptr(), rsc, load_c);
            }
            assert_close(&got, &want, atol::<K::Elem>(k), 0.0);
            // The gap columns between rows are never written.
            for i in 0..MR {
                assert_eq!(got[i * rsc + NR..(i + 1) * rsc], c0[i * rsc + NR..(i + 1) * rsc]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_kernels_match_scalar_kernel() {
    use super::x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};
    let mut tested = 0;
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        check_kernel::<Avx2F32, 6, 16>();
        check_kernel::<Avx2F64, 6, 8>();
        check_driver::<Avx2F32>();
        check_driver::<Avx2F64>();
        tested += 1;
    }
    if is_x86_feature_detected!("avx512f") {
        check_kernel::<Avx512F32, 8, 32>();
        check_kernel::<Avx512F64, 8, 16>();
        check_driver::<Avx512F32>();
        check_driver::<Avx512F64>();
        tested += 1;
    }
    // The kernel `isa()` picked is one of those just tested (or the scalar one).
    assert!(tested > 0 || isa() == Isa::Scalar);
}

#[test]
fn scalar_kernels_compute_exact_small_products() {
    // Integers: every sum is exact. a = [1, 2 | 3, 4] per step (MR = 2), b = [1, -1] (NR = 2)
    // for two steps: C[i][j] = Σ_p a[p][i]·b[p][j] with a[0] = (1, 2), a[1] = (3, 4),
    // b[0] = (1, -1), b[1] = (2, 0) gives [[1·1 + 3·2, -1], [2·1 + 4·2, -2]] = [[7, -1], [10, -2]].
    let a = [1.0f64, 2.0, 3.0, 4.0];
    let b = [1.0f64, -1.0, 2.0, 0.0];
    let mut c = [100.0f64; 4];
    // SAFETY: two steps of 2-wide panels into a 2×2 tile.
    unsafe { ScalarKernel::<f64, 2, 2>::run(2, a.as_ptr(), b.as_ptr(), 2, c.as_mut_ptr(), 2, true) };
    assert_eq!(c, [107.0, 99.0, 110.0, 98.0]);
}

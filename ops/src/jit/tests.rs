//! Generated kernels against the eager kernels of `unary`, `binary` and `math`: bit-equal
//! values on awkward inputs, in both element types.

use super::*;
use crate::binary::{binary, where_select};
use crate::unary::unary;
use crate::Element;

/// Awkward values first (signed zeros, infinities, NaN, subnormals, tanh's saturation), then
/// a sweep; `n` is a multiple of 8.
fn awkward<T: Element>(n: usize, seed: u64) -> Vec<T> {
    let special =
        [0.0, -0.0, 1.0, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, -1e-310, 9.5, -9.6, 1e30];
    let mut state = seed;
    let mut v: Vec<T> = special.iter().map(|&s| T::from_f64(s)).collect();
    while v.len() < n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        v.push(T::from_f64((u - 0.5) * 24.0));
    }
    v.truncate(n);
    v
}

fn bits<T: Element>(v: &[T]) -> Vec<u64> {
    v.iter()
        .map(
            |x| {
                if T::DTYPE == DType::F32 {
                    (x.to_f64() as f32).to_bits() as u64
                } else {
                    x.to_f64().to_bits()
                }
            },
        )
        .collect()
}

/// The program compiled for each vector width this CPU runs.
fn compiled(b: Builder) -> Vec<Kernel> {
    let widths = if exec::supports_zmm() { vec![Vector::Ymm, Vector::Zmm] } else { vec![Vector::Ymm] };
    widths.into_iter().map(|w| b.clone().compile_for(w).expect("executable memory")).collect()
}

/// Runs a compiled kernel over whole slices: bases are the slices in order.
fn run<T: Element>(kernel: &Kernel, bases: &mut [&mut [T]]) {
    let len = bases[0].len();
    let ptrs: Vec<*const u8> = bases.iter_mut().map(|b| b.as_mut_ptr() as *const u8).collect();
    // SAFETY: every base is a slice of `len` elements (a multiple of the lanes).
    unsafe { kernel.run(&ptrs, len) };
}

const UNARY: [UnaryOp; 16] = [
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Sqrt,
    UnaryOp::Recip,
    UnaryOp::Square,
    UnaryOp::Relu,
    UnaryOp::SigmoidGrad,
    UnaryOp::TanhGrad,
    UnaryOp::AddScalar(0.3),
    UnaryOp::MulScalar(-1.7),
    UnaryOp::Tanh,
    UnaryOp::Exp,
    UnaryOp::Sigmoid,
    UnaryOp::Erf,
    UnaryOp::Gelu,
    UnaryOp::GeluGrad,
];

fn unary_ops_match<T: Element>() {
    let Some(probe) = Builder::new(T::DTYPE) else { return };
    let n = 4096;
    assert_eq!(n % probe.lanes(), 0);
    for op in UNARY {
        let x = awkward::<T>(n, 7);
        let mut want = vec![T::ZERO; n];
        unary(op, &x, &mut want);
        let mut b = Builder::new(T::DTYPE).unwrap();
        let v = b.load(0);
        let y = b.unary(op, v).unwrap();
        b.store(y, 1);
        for kernel in compiled(b) {
            let (mut x, mut got) = (x.clone(), vec![T::ZERO; n]);
            run(&kernel, &mut [&mut x, &mut got]);
            assert_eq!(bits(&got), bits(&want), "{op:?} in {:?} on {kernel:?}", T::DTYPE);
        }
    }
}

#[test]
fn unary_ops_match_the_eager_kernels() {
    unary_ops_match::<f32>();
    unary_ops_match::<f64>();
}

#[test]
fn transcendentals_match_the_math_kernels_everywhere_in_f32() {
    // every 4099th f32 bit pattern: all exponents, both signs, NaNs and infinities
    let mut x: Vec<f32> = (0..=u32::MAX / 4099).map(|i| f32::from_bits(i * 4099)).collect();
    x.truncate(x.len() / 8 * 8);
    for op in [UnaryOp::Tanh, UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Erf, UnaryOp::Gelu, UnaryOp::GeluGrad]
    {
        let Some(mut b) = Builder::new(DType::F32) else { return };
        let v = b.load(0);
        let y = b.unary(op, v).unwrap();
        b.store(y, 1);
        let mut want = vec![0f32; x.len()];
        unary(op, &x, &mut want);
        for kernel in compiled(b) {
            let mut got = vec![0f32; x.len()];
            run(&kernel, &mut [&mut x, &mut got]);
            let mismatch = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
            assert_eq!(
                mismatch,
                None,
                "{op:?} on {kernel:?}: first mismatch at x = {:?}",
                mismatch.map(|i| x[i])
            );
        }
    }
}

fn binary_ops_match<T: Element>() {
    let Some(_) = Builder::new(T::DTYPE) else { return };
    let n = 1024;
    use BinaryOp::*;
    for op in [Add, Sub, Mul, Div, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge] {
        let a = awkward::<T>(n, 1);
        // b repeats some of a's values so that the comparisons see ties
        let mut bv = awkward::<T>(n, 2);
        for i in (0..n).step_by(3) {
            bv[i] = a[(i * 7) % n];
        }
        let mut want = vec![T::ZERO; n];
        binary(op, &a, &[n], &bv, &[n], &mut want, &[n]);
        let mut b = Builder::new(T::DTYPE).unwrap();
        let (x, y) = (b.load(0), b.load(1));
        let z = b.binary(op, x, y).unwrap();
        b.store(z, 2);
        for kernel in compiled(b) {
            let (mut a, mut bv, mut got) = (a.clone(), bv.clone(), vec![T::ZERO; n]);
            run(&kernel, &mut [&mut a, &mut bv, &mut got]);
            assert_eq!(bits(&got), bits(&want), "{op:?} in {:?} on {kernel:?}", T::DTYPE);
        }
    }
}

#[test]
fn binary_ops_match_the_eager_kernels() {
    binary_ops_match::<f32>();
    binary_ops_match::<f64>();
}

#[test]
fn select_matches_where() {
    let Some(_) = Builder::new(DType::F64) else { return };
    let n = 512;
    let mut c = awkward::<f64>(n, 3);
    for i in (0..n).step_by(2) {
        c[i] = 0.0;
    }
    c[1] = -0.0;
    let (a, bv) = (awkward::<f64>(n, 4), awkward::<f64>(n, 5));
    let mut want = vec![0.0; n];
    where_select(&c, &[n], &a, &[n], &bv, &[n], &mut want, &[n]);
    let mut b = Builder::new(DType::F64).unwrap();
    let (vc, va, vb) = (b.load(0), b.load(1), b.load(2));
    let s = b.select(vc, va, vb);
    b.store(s, 3);
    for kernel in compiled(b) {
        let (mut c, mut a, mut bv, mut got) = (c.clone(), a.clone(), bv.clone(), vec![0.0; n]);
        run(&kernel, &mut [&mut c, &mut a, &mut bv, &mut got]);
        assert_eq!(bits(&got), bits(&want), "on {kernel:?}");
    }
}

/// More live values than registers, more bases than cached pointers, broadcast scalars:
/// `out_j = Σ_i x_i·(c_i + s)` over all pairs, against a plain loop doing the same ops in the
/// same order.
#[test]
fn spills_and_many_bases_give_the_plain_loops_values() {
    let Some(mut b) = Builder::new(DType::F32) else { return };
    let inputs = 9usize;
    // bases: inputs 0..9, the scalar s at 9, outputs 10 and 11
    let xs: Vec<Val> = (0..inputs).map(|i| b.load(i)).collect();
    let s = b.broadcast(inputs);
    // 24 values alive at once: every product is kept until the sums at the end
    let prods: Vec<Val> = (0..24)
        .map(|j| {
            let c = b.constant(j as f64 * 0.25 - 2.0);
            let cs = b.binary(BinaryOp::Add, c, s).unwrap();
            let t = b.unary(UnaryOp::Tanh, xs[j % inputs]).unwrap();
            b.binary(BinaryOp::Mul, t, cs).unwrap()
        })
        .collect();
    let mut acc = prods[0];
    for &p in &prods[1..] {
        acc = b.binary(BinaryOp::Add, acc, p).unwrap();
    }
    let mut rev = prods[23];
    for &p in prods[..23].iter().rev() {
        rev = b.binary(BinaryOp::Sub, rev, p).unwrap();
    }
    b.store(acc, inputs + 1);
    b.store(rev, inputs + 2);
    for kernel in compiled(b) {
        spills_check(&kernel, inputs);
    }
}

/// Runs the program of the spill test on `n` awkward values and checks it element by element.
fn spills_check(kernel: &Kernel, inputs: usize) {
    // enough for two iterations of the widest main loop, single vectors and a half one
    let n = 200usize;
    let mut data: Vec<Vec<f32>> =
        (0..inputs).map(|i| awkward::<f32>(n, 10 + i as u64)[12..].to_vec()).collect();
    let n = data[0].len() / 8 * 8;
    data.iter_mut().for_each(|d| d.truncate(n));
    let mut scalar = vec![0.375f32; n];
    let (mut out1, mut out2) = (vec![0f32; n], vec![0f32; n]);
    let mut bases: Vec<&mut [f32]> = data.iter_mut().map(|d| d.as_mut_slice()).collect();
    bases.push(&mut scalar);
    bases.push(&mut out1);
    bases.push(&mut out2);
    run(kernel, &mut bases);
    let tanhs: Vec<Vec<f32>> = data
        .iter()
        .map(|d| {
            let mut t = vec![0f32; n];
            crate::math::tanh(d, &mut t);
            t
        })
        .collect();
    for i in 0..n {
        let p: Vec<f32> = (0..24).map(|j| tanhs[j % inputs][i] * ((j as f32 * 0.25 - 2.0) + 0.375)).collect();
        let want1 = p[1..].iter().fold(p[0], |a, &v| a + v);
        let want2 = p[..23].iter().rev().fold(p[23], |a, &v| a - v);
        assert_eq!(out1[i].to_bits(), want1.to_bits(), "element {i} on {kernel:?}");
        assert_eq!(out2[i].to_bits(), want2.to_bits(), "element {i} on {kernel:?}");
    }
}

/// A base both loaded and stored (an in-place update) and read again after the store in the
/// program's order: the later read sees the old value.
#[test]
fn a_store_over_a_loaded_base_leaves_later_reads_the_old_values() {
    let Some(mut b) = Builder::new(DType::F32) else { return };
    let (x, y) = (b.load(0), b.load(1));
    // x as the second operand: read from memory where it is used, unless the store forces it
    // into a register first
    let prod = b.binary(BinaryOp::Mul, y, x).unwrap();
    b.store(prod, 0);
    let sum = b.binary(BinaryOp::Add, y, x).unwrap();
    b.store(sum, 2);
    b.store(x, 3);
    let n = 64;
    let x0: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
    let y0: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.25).collect();
    for kernel in compiled(b) {
        let (mut x, mut y, mut s, mut copy) = (x0.clone(), y0.clone(), vec![0f32; n], vec![0f32; n]);
        run(&kernel, &mut [&mut x, &mut y, &mut s, &mut copy]);
        for i in 0..n {
            assert_eq!(x[i], y0[i] * x0[i], "element {i} on {kernel:?}");
            assert_eq!(s[i], y0[i] + x0[i], "element {i} on {kernel:?}");
            assert_eq!(copy[i], x0[i], "element {i} on {kernel:?}");
        }
    }
}

/// Every length from one vector to a few main-loop iterations past it: the interleaved loop
/// and the single-vector loop together cover each element once.
#[test]
fn every_length_is_covered_once() {
    let Some(mut b) = Builder::new(DType::F64) else { return };
    let lanes = b.lanes();
    let (x, y) = (b.load(0), b.load(1));
    let t = b.unary(UnaryOp::Tanh, x).unwrap();
    let z = b.binary(BinaryOp::Mul, t, y).unwrap();
    let z = b.binary(BinaryOp::Add, z, x).unwrap();
    b.store(z, 2);
    for kernel in compiled(b) {
        lengths_check(&kernel, lanes);
    }
}

/// Runs the program of the length test at every length from 1 to 13 vectors of `lanes`.
fn lengths_check(kernel: &Kernel, lanes: usize) {
    for vectors in 1..=13 {
        let n = vectors * lanes;
        let x: Vec<f64> = awkward::<f64>(n + 16, 9)[12..12 + n].to_vec();
        let y: Vec<f64> = (0..n).map(|i| 0.5 + i as f64).collect();
        let mut t = vec![0.0; n];
        crate::math::tanh(&x, &mut t);
        let want: Vec<f64> = (0..n).map(|i| t[i] * y[i] + x[i]).collect();
        // one element past the end must stay untouched
        let mut out = vec![7.0; n + 1];
        let ptrs = [x.as_ptr() as *const u8, y.as_ptr() as *const u8, out.as_mut_ptr() as *const u8];
        // SAFETY: x and y hold n elements, out n + 1.
        unsafe { kernel.run(&ptrs, n) };
        assert_eq!(bits(&out[..n]), bits(&want), "{vectors} vectors on {kernel:?}");
        assert_eq!(out[n], 7.0, "{vectors} vectors on {kernel:?}: wrote past the end");
    }
}

/// A GELU and its derivative of one value share their `1 + erf(x/√2)`: the pair costs the
/// derivative's program plus GELU's own two products and its store, with both values exact.
#[test]
fn an_op_asked_for_twice_is_computed_once() {
    let Some(mut alone) = Builder::new(DType::F32) else { return };
    let x = alone.load(0);
    let d = alone.unary(UnaryOp::GeluGrad, x).unwrap();
    alone.store(d, 1);
    let mut both = Builder::new(DType::F32).unwrap();
    let x = both.load(0);
    let d = both.unary(UnaryOp::GeluGrad, x).unwrap();
    let y = both.unary(UnaryOp::Gelu, x).unwrap();
    both.store(d, 1);
    both.store(y, 2);
    assert_eq!(both.ops.len(), alone.ops.len() + 3);
    let n = 4096;
    let x0 = awkward::<f32>(n, 11);
    let (mut want_d, mut want_y) = (vec![0f32; n], vec![0f32; n]);
    unary(UnaryOp::GeluGrad, &x0, &mut want_d);
    unary(UnaryOp::Gelu, &x0, &mut want_y);
    for kernel in compiled(both) {
        let (mut x, mut got_d, mut got_y) = (x0.clone(), vec![0f32; n], vec![0f32; n]);
        run(&kernel, &mut [&mut x, &mut got_d, &mut got_y]);
        assert_eq!(bits(&got_d), bits(&want_d), "{kernel:?}");
        assert_eq!(bits(&got_y), bits(&want_y), "{kernel:?}");
    }
}

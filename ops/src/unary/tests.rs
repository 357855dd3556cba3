//! Tests of the unary kernels: every op against `apply_f64` in a plain loop (f32 and f64,
//! odd lengths, special values), in-place agreement, determinism across thread counts, and a
//! throughput print (ignored by default).

use super::*;
use crate::testing::{assert_close, random_vec};

/// Every op, plus the exponents that `pow_scalar` computes by a shortcut.
fn all_ops() -> Vec<UnaryOp> {
    let mut ops = UnaryOp::all();
    ops.extend([0.5, 2.0, -1.0, 0.0].map(UnaryOp::PowScalar));
    ops
}

/// Inputs over [-6, 6) plus the special values every op must handle.
fn inputs<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let specials = [0.0, -0.0, 1.0, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-30, 100.0, -100.0];
    let mut x: Vec<T> = random_vec::<T>(len, seed).into_iter().map(|v| v * T::from_f64(6.0)).collect();
    for (v, s) in x.iter_mut().step_by(5).zip(specials.iter().cycle().skip(seed as usize % 10)) {
        *v = T::from_f64(*s);
    }
    x
}

fn reference<T: Element>(op: UnaryOp, x: &[T]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(op.apply_f64(v.to_f64()))).collect()
}

fn check_all<T: Element>(atol: f64, rtol: f64) {
    for op in all_ops() {
        for (seed, len) in [0, 1, 7, 17, 65, 129, 1000, 70_000].into_iter().enumerate() {
            let x = inputs::<T>(len, seed as u64);
            let want = reference(op, &x);
            let mut got = vec![T::ZERO; len];
            unary(op, &x, &mut got);
            assert_close(&got, &want, atol, rtol);
            let mut inplace = x.clone();
            unary_inplace(op, &mut inplace);
            let bits = |v: &[T]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&inplace), bits(&got), "{op} in place differs, len {len}");
        }
    }
}

#[test]
fn every_op_matches_apply_f64_in_f32() {
    check_all::<f32>(1e-6, 2e-6);
}

#[test]
fn every_op_matches_apply_f64_in_f64() {
    check_all::<f64>(1e-14, 1e-14);
}

#[test]
fn special_values() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    #[rustfmt::skip]
    let cases: &[(UnaryOp, f64, f64)] = &[
        (UnaryOp::Relu, nan, nan), (UnaryOp::Relu, -inf, 0.0), (UnaryOp::Sign, nan, nan),
        (UnaryOp::Clamp { min: 0.0, max: 1.0 }, nan, nan), (UnaryOp::Clamp { min: 2.0, max: 1.0 }, 0.0, 1.0),
        (UnaryOp::Softplus, 800.0, 800.0), (UnaryOp::Softplus, -800.0, 0.0), (UnaryOp::Softplus, -50.0, (-50f64).exp()),
        (UnaryOp::Sigmoid, -800.0, 0.0), (UnaryOp::Sigmoid, 800.0, 1.0), (UnaryOp::Tanh, -30.0, -1.0),
        (UnaryOp::Erf, -7.0, -1.0), (UnaryOp::Gelu, -40.0, 0.0), (UnaryOp::Gelu, 40.0, 40.0),
        (UnaryOp::Log, 0.0, -inf), (UnaryOp::Log, -1.0, nan), (UnaryOp::Exp, 1000.0, inf),
        (UnaryOp::Elu(1.0), -inf, -1.0), (UnaryOp::PowScalar(0.5), -inf, inf), (UnaryOp::PowScalar(0.0), nan, 1.0),
        (UnaryOp::Silu, 800.0, 800.0), (UnaryOp::Silu, -800.0, 0.0), (UnaryOp::Silu, nan, nan),
        (UnaryOp::LogSigmoid, 800.0, 0.0), (UnaryOp::LogSigmoid, -800.0, -800.0), (UnaryOp::LogSigmoid, nan, nan),
        (UnaryOp::LogSigmoid, 50.0, -(-50f64).exp()), (UnaryOp::Clamp { min: -1.0, max: 1.0 }, nan, nan),
    ];
    for &(op, x, want) in cases {
        let close = |got: f64| {
            got == want || (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-15 * want.abs()
        };
        assert!(close(op.apply_f64(x)), "{op}.apply_f64({x}) = {}", op.apply_f64(x));
        let mut y = [0.0f64];
        unary(op, &[x], &mut y);
        assert!(close(y[0]), "{op}({x}) = {} in f64, expected {want}", y[0]);
        let mut y = [0.0f32];
        unary(op, &[x as f32], &mut y);
        let want32 = want as f32;
        assert!(
            y[0] == want32
                || (y[0].is_nan() && want32.is_nan())
                || (y[0] - want32).abs() <= 1e-6 * want32.abs(),
            "{op}({x}) = {} in f32",
            y[0]
        );
    }
    // PowScalar(0.5) gives +0 for -0, like powf.
    let mut y = [1.0f64];
    unary(UnaryOp::PowScalar(0.5), &[-0.0], &mut y);
    assert!(y[0] == 0.0 && y[0].is_sign_positive());
}

#[test]
fn deterministic_across_thread_counts() {
    let x = inputs::<f32>(300_001, 11);
    let run = |threads: usize, op: UnaryOp| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut out = vec![0.0f32; x.len()];
        pool.install(|| unary(op, &x, &mut out));
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    for op in [UnaryOp::Gelu, UnaryOp::Tanh, UnaryOp::Exp, UnaryOp::MulScalar(0.3), UnaryOp::PowScalar(1.7)] {
        let one = run(1, op);
        assert_eq!(one, run(2, op), "{op}: 1 vs 2 threads");
        // The chunked parallel run also equals the serial kernel on the whole slice.
        let mut serial = vec![0.0f32; x.len()];
        apply(op, Io::OutOfPlace(&x, &mut serial));
        assert_eq!(one, serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{op}: chunked vs serial");
    }
}

#[test]
fn names_follow_pytorch() {
    assert_eq!(UnaryOp::Neg.to_string(), "neg");
    assert_eq!(UnaryOp::Softplus.to_string(), "softplus");
    assert_eq!(UnaryOp::GeluGrad.to_string(), "gelu_grad");
    assert_eq!(UnaryOp::TanhGrad.to_string(), "tanh_grad");
    assert_eq!(UnaryOp::LeakyRelu(0.01).to_string(), "leaky_relu(0.01)");
    assert_eq!(UnaryOp::Clamp { min: -1.0, max: 1.0 }.to_string(), "clamp(-1, 1)");
}

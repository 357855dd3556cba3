//! Compiled-mode workloads (`graphgrad-compiled`): W5 and W6 of `shared/bench/WORKLOADS.md`
//! run through `autodiff::compile`, printing the same JSON lines as the eager harness.
//!
//! Included by `workloads.rs` as `mod compiled;` and run with `compiled::run(&selected)`;
//! it uses the harness's `time` and `report`. Each step is traced and compiled on the warm-up
//! call, so the timings are of replays.

use super::{report, time};
use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{grad, DType, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Runs every compiled workload whose id `selected` accepts (the training workloads W2–W4 run
/// in `training.rs`, in both modes).
pub fn run(selected: &dyn Fn(&str) -> bool) {
    if selected("W5-autograd-overhead") {
        w5_autograd_overhead();
    }
    if selected("W6-fusion") {
        w6_fusion();
    }
}

/// W5: 1000 chained elementwise ops on 16 elements, sum and backward, compiled.
fn w5_autograd_overhead() {
    const OPS: usize = 1000;
    let mut step = compile(|io: &[Tensor]| -> Result<Vec<Tensor>> {
        let x = &io[0];
        let mut y = x.clone();
        for i in 0..OPS {
            y = match i % 3 {
                0 => y.mul_scalar(1.0001),
                1 => y.add_scalar(0.0001),
                _ => y.tanh(),
            };
        }
        let loss = y.sum_all();
        let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
        Ok(vec![loss, dx])
    });
    let x = Tensor::from_vec(vec![0.5f32; 16], &[16]).expect("shape").requires_grad_();
    let t = time(200, || {
        step.call(std::slice::from_ref(&x)).expect("compiled W5 step");
    });
    let per_op_us = t.median_s / OPS as f64 * 1e6;
    report("W5-autograd-overhead", "graphgrad-compiled", "n16", &t, per_op_us, "us/op");
    if crate::profiling() {
        eprintln!("W5-autograd-overhead: {}", step.profile(std::slice::from_ref(&x), 200).expect("profile"));
    }
}

/// W6: tanh-GELU of 4,194,304 elements with primitive ops, sum, backward — one fused kernel.
fn w6_fusion() {
    const N: usize = 4_194_304;
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = Tensor::randn(&[N], 0.0, 1.0, DType::F32, &mut rng).unwrap().requires_grad_();
    let mut step = compile(|io: &[Tensor]| -> Result<Vec<Tensor>> {
        let x = &io[0];
        let inner = x.add(&x.pow_scalar(3.0).mul_scalar(0.044715))?.mul_scalar(0.797_884_56);
        let y = x.mul_scalar(0.5).mul(&inner.tanh().add_scalar(1.0))?;
        let loss = y.sum_all();
        let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
        Ok(vec![loss, dx])
    });
    let t = time(20, || {
        step.call(std::slice::from_ref(&x)).expect("compiled W6 step");
    });
    report("W6-fusion", "graphgrad-compiled", "n4194304", &t, t.median_s * 1e3, "ms/step");
    if crate::profiling() {
        eprintln!("W6-fusion: {}", step.profile(std::slice::from_ref(&x), 20).expect("profile"));
    }
}

//! Graph memory is freed with the tensors that need it: a long training loop holds no more
//! than one step. (Alone in its test binary: other tests would move the resident size.)

use graphgrad_autodiff::{no_grad, DType, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Resident set size in KiB (Linux), None elsewhere.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn training_loop_memory_does_not_grow() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w1 = Var::new("w1", &Tensor::randn(&[8, 16], 0.0, 0.3, DType::F32, &mut rng).unwrap());
    let w2 = Var::new("w2", &Tensor::randn(&[16, 1], 0.0, 0.3, DType::F32, &mut rng).unwrap());
    let x = Tensor::randn(&[4, 8], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let y = Tensor::randn(&[4, 1], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let step = || {
        let h = x.matmul(&w1).unwrap().tanh();
        let loss = h.matmul(&w2).unwrap().sub(&y).unwrap().square().mean_all();
        loss.backward().unwrap();
        no_grad(|| {
            for w in [&w1, &w2] {
                let updated = w.sub(&w.grad().unwrap().mul_scalar(0.01)).unwrap();
                w.set(&updated).unwrap();
                w.zero_grad();
            }
        });
    };
    for _ in 0..10_000 {
        step();
    }
    let Some(before) = resident_kib() else { return };
    for _ in 0..100_000 {
        step();
    }
    let after = resident_kib().unwrap();
    // A leak of even one 64-byte node per step would add over 6 MiB.
    assert!(after < before + 2048, "resident memory grew from {before} KiB to {after} KiB");
}

//! W9-mlp-infer of `shared/bench/WORKLOADS.md`: the W2 network, forward only, without
//! gradients, on one sample: eagerly (`no_grad`) and as a compiled program of the forward.

use crate::{report, time};
use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{no_grad, DType, Tensor};
use graphgrad::nn::Module;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Forwards timed per sample: the step is microseconds, so many more than a training step.
const REPS: usize = 2000;

/// Runs W9 when selected.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    if !selected("W9-mlp-infer") {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let model = crate::training::w2_network(&mut rng);
    model.eval();
    let x = Tensor::randn(&[1, 784], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let eager = time(REPS, || {
        no_grad(|| model.forward(&x)).expect("forward");
    });
    report("W9-mlp-infer", "graphgrad-eager", "b1", &eager, eager.median_s * 1e6, "us/forward");
    let mut forward = compile(|io: &[Tensor]| no_grad(|| model.forward(&io[0])));
    let inputs = [x];
    let compiled = time(REPS, || {
        forward.call(&inputs).expect("forward");
    });
    report("W9-mlp-infer", "graphgrad-compiled", "b1", &compiled, compiled.median_s * 1e6, "us/forward");
    if crate::profiling() {
        eprintln!("W9-mlp-infer: {}", forward.profile(&inputs, REPS).expect("profile"));
    }
}

//! Function-transform workloads on W2's network (784→512→512→10, ReLU, cross-entropy on
//! integer labels, batch 128, f32, weights stored `[in, out]`), each against its baseline;
//! `benches/reference.py` times the same with `torch.func` and JAX:
//!
//! - `T1-per-sample-grads`: the gradient of every sample's loss in every parameter, by
//!   `vmap(grad)` (param `vmap-b128`, eager and compiled), by a loop of 128 single-sample
//!   gradients (`loop-b128`), and one gradient of the batch's mean loss (`batched-b128`);
//! - `T2-hvp`: a Hessian-vector product of the batch loss in the parameters (`hvp-b128`)
//!   against one gradient (`grad-b128`);
//! - `T3-jvp`: the logits' Jacobian-vector product along a tangent of every parameter
//!   (`jvp-b128`) against the forward pass alone (`forward-b128`).
//!
//! Reported in calls/s, median of timed repetitions.

use crate::{report, time};
use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{func, grad, no_grad, DType, Result, Tensor};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::Reduction;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 128;
const REPS: usize = 20;

/// W2's parameters `[w1, b1, w2, b2, w3, b3]`, uniform in ±1/√fan_in (PyTorch's init).
fn parameters(rng: &mut ChaCha8Rng) -> Vec<Tensor> {
    let mut params = Vec::new();
    for (i, o) in [(784, 512), (512, 512), (512, 10)] {
        let bound = 1.0 / (i as f64).sqrt();
        params.push(Tensor::rand(&[i, o], -bound, bound, DType::F32, rng).unwrap());
        params.push(Tensor::rand(&[o], -bound, bound, DType::F32, rng).unwrap());
    }
    params
}

/// The logits of `x` `[n, 784]`.
fn logits(p: &[Tensor], x: &Tensor) -> Result<Tensor> {
    let h = x.matmul(&p[0])?.add(&p[1])?.relu();
    let h = h.matmul(&p[2])?.add(&p[3])?.relu();
    h.matmul(&p[4])?.add(&p[5])
}

/// Runs the selected transform workloads.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let params = parameters(&mut rng);
    let x = Tensor::randn(&[BATCH, 784], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let labels: Vec<usize> = (0..BATCH).map(|_| rng.gen_range(0..10)).collect();
    let y = Tensor::from_indices(&labels, &[BATCH]).expect("shape");
    let calls = |workload: &str, param: &str, framework: &str, f: &mut dyn FnMut()| {
        let t = time(REPS, f);
        report(workload, framework, param, &t, 1.0 / t.median_s, "calls/s");
    };
    if selected("T1-per-sample-grads") {
        // one sample's loss: [x [784], label [1], parameters...]
        let sample_loss =
            |v: &[Tensor]| cross_entropy(&logits(&v[2..], &v[0].unsqueeze(0)?)?, &v[1], Reduction::Sum);
        let per_sample = func::grad_argnums(sample_loss, &[2, 3, 4, 5, 6, 7]);
        let mut in_axes = vec![Some(0), Some(0)];
        in_axes.extend(params.iter().map(|_| None));
        let vmapped = func::vmap(per_sample, &in_axes, &[0; 6]);
        let mut inputs = vec![x.clone(), y.reshape(&[BATCH, 1]).expect("shape")];
        inputs.extend(params.iter().cloned());
        calls("T1-per-sample-grads", "vmap-b128", "graphgrad-eager", &mut || {
            vmapped(&inputs).expect("vmap(grad)");
        });
        let mut compiled = compile(&vmapped);
        calls("T1-per-sample-grads", "vmap-b128", "graphgrad-compiled", &mut || {
            compiled.call(&inputs).expect("compiled vmap(grad)");
        });
        let leaves: Vec<Tensor> = params.iter().map(Tensor::requires_grad_).collect();
        calls("T1-per-sample-grads", "loop-b128", "graphgrad-eager", &mut || {
            for (b, &label) in labels.iter().enumerate() {
                let xb = x.narrow(0, b, 1).expect("sample");
                let loss = cross_entropy(&logits(&leaves, &xb).expect("forward"), &[label], Reduction::Sum);
                grad(&[loss.expect("loss")], &leaves, false).expect("grad");
            }
        });
        calls("T1-per-sample-grads", "batched-b128", "graphgrad-eager", &mut || {
            let loss = cross_entropy(&logits(&leaves, &x).expect("forward"), &y, Reduction::Mean);
            grad(&[loss.expect("loss")], &leaves, false).expect("grad");
        });
    }
    let tangents: Vec<Tensor> =
        params.iter().map(|p| Tensor::randn(p.shape(), 0.0, 1.0, DType::F32, &mut rng).unwrap()).collect();
    if selected("T2-hvp") {
        let loss = |p: &[Tensor]| cross_entropy(&logits(p, &x)?, &y, Reduction::Mean);
        calls("T2-hvp", "hvp-b128", "graphgrad-eager", &mut || {
            func::hvp(loss, &params, &tangents).expect("hvp");
        });
        let mut compiled = compile(|io: &[Tensor]| func::hvp(loss, &io[..6], &io[6..]));
        let inputs = [params.clone(), tangents.clone()].concat();
        calls("T2-hvp", "hvp-b128", "graphgrad-compiled", &mut || {
            compiled.call(&inputs).expect("compiled hvp");
        });
        let leaves: Vec<Tensor> = params.iter().map(Tensor::requires_grad_).collect();
        calls("T2-hvp", "grad-b128", "graphgrad-eager", &mut || {
            grad(&[loss(&leaves).expect("loss")], &leaves, false).expect("grad");
        });
    }
    if selected("T3-jvp") {
        let f = |p: &[Tensor]| Ok(vec![logits(p, &x)?]);
        calls("T3-jvp", "jvp-b128", "graphgrad-eager", &mut || {
            no_grad(|| func::jvp(f, &params, &tangents)).expect("jvp");
        });
        let mut compiled =
            compile(|io: &[Tensor]| Ok::<_, graphgrad::autodiff::Error>(func::jvp(f, &io[..6], &io[6..])?.1));
        let inputs = [params.clone(), tangents.clone()].concat();
        calls("T3-jvp", "jvp-b128", "graphgrad-compiled", &mut || {
            compiled.call(&inputs).expect("compiled jvp");
        });
        calls("T3-jvp", "forward-b128", "graphgrad-eager", &mut || {
            no_grad(|| logits(&params, &x)).expect("forward");
        });
    }
}

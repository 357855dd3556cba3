//! Compiled-mode workloads (`graphgrad-compiled`): W2 to W6 of `shared/bench/WORKLOADS.md`
//! run through `autodiff::compile`, printing the same JSON lines as the eager harness.
//!
//! Included by `workloads.rs` as `mod compiled;` and run with `compiled::run(&selected)`;
//! it uses the harness's `time` and `report`. Each step is traced and compiled on the warm-up
//! call, so the timings are of replays.

use super::{report, time, STEP_REPS};
use graphgrad::autodiff::compile::{compile, constant_indices, Step};
use graphgrad::autodiff::{grad, DType, Result, Tensor, Var};
use graphgrad::nn::Module;
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs every compiled workload whose id `selected` accepts.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    if selected("W2-mlp-train") {
        w2_mlp_train();
    }
    if selected("W3-cnn-train") {
        w3_cnn_train();
    }
    if selected("W4-transformer-train") {
        w4_transformer_train();
    }
    if selected("W5-autograd-overhead") {
        w5_autograd_overhead();
    }
    if selected("W6-fusion") {
        w6_fusion();
    }
}

/// W2: batch 128, 784→512→512→10, ReLU, softmax cross-entropy (one-hot targets as an
/// input), SGD momentum 0.9 lr 0.01; forward, backward and update in one compiled step.
fn w2_mlp_train() {
    const BATCH: usize = 128;
    let (lr, momentum) = (0.01, 0.9);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut params = Vec::new();
    for (i, (fan_in, fan_out)) in [(784usize, 512usize), (512, 512), (512, 10)].into_iter().enumerate() {
        let std = (2.0 / fan_in as f64).sqrt();
        params.push(Var::new(
            format!("w{i}"),
            &Tensor::randn(&[fan_in, fan_out], 0.0, std, DType::F32, &mut rng),
        ));
        params.push(Var::new(format!("b{i}"), &Tensor::zeros(&[fan_out], DType::F32)));
    }
    let velocity: Vec<Tensor> = params.iter().map(|p| Tensor::zeros(p.shape(), DType::F32)).collect();
    let mut step = compile(move |io: &[Tensor]| -> Result<Step> {
        let (x, target) = (&io[0], &io[1]);
        let mut h = x.clone();
        for (i, layer) in params.chunks(2).enumerate() {
            h = h.matmul(&layer[0])?.add(&layer[1])?;
            if i < 2 {
                h = h.relu();
            }
        }
        let loss = h.log_softmax(-1)?.mul(target)?.sum_all()?.mul_scalar(-1.0 / BATCH as f64);
        let leaves: Vec<Tensor> = params.iter().map(|p| p.tensor().clone()).collect();
        let grads = grad(std::slice::from_ref(&loss), &leaves, false)?;
        let mut out = Step::new(vec![loss]);
        for ((p, v), g) in params.iter().zip(&velocity).zip(&grads) {
            let v_new = v.mul_scalar(momentum).add(g)?;
            out = out.update(p, p.sub(&v_new.mul_scalar(lr))?).update(v, v_new);
        }
        Ok(out)
    });
    let x = Tensor::rand(&[BATCH, 784], 0.0, 1.0, DType::F32, &mut rng);
    let mut onehot = vec![0.0f32; BATCH * 10];
    for row in onehot.chunks_mut(10) {
        row[rng.gen_range(0..10)] = 1.0;
    }
    let target = Tensor::from_vec(onehot, &[BATCH, 10]).expect("shape");
    let t = time(STEP_REPS, || {
        step.call(&[x.clone(), target.clone()]).expect("compiled W2 step");
    });
    report("W2-mlp-train", "graphgrad-compiled", "b128", &t, 1.0 / t.median_s, "steps/s");
}

/// W5: 1000 chained elementwise ops on 16 elements, sum and backward, compiled.
/// W3: the eager harness's CNN and batch; the compiled program computes the loss and the
/// parameter gradients (labels as a one-hot input), and the optimiser applies plain SGD.
fn w3_cnn_train() {
    let (model, x, labels) = crate::eager::w3_setup();
    let mut one_hot = vec![0.0f32; labels.len() * 10];
    for (row, &l) in labels.iter().enumerate() {
        one_hot[row * 10 + l] = 1.0;
    }
    let one_hot = Tensor::from_vec(one_hot, &[labels.len(), 10]).expect("shape");
    let params = model.named_parameters();
    let tensors: Vec<Tensor> = params.iter().map(|(_, v)| v.tensor().clone()).collect();
    let mut program = compile(|io: &[Tensor]| -> Result<Step> {
        let log_probs = model.forward(&io[0])?.log_softmax(-1)?;
        let loss = log_probs.mul(&io[1])?.sum(&[-1], false)?.mean_all()?.neg();
        let mut outputs = vec![loss.clone()];
        outputs.extend(grad(std::slice::from_ref(&loss), &tensors, false)?);
        Ok(Step::new(outputs))
    });
    let mut opt = Sgd::new(params.clone(), SgdConfig::new(0.01)).expect("config");
    let t = time(STEP_REPS, || {
        let outputs = program.call(&[x.clone(), one_hot.clone()]).expect("replay");
        for ((_, var), g) in params.iter().zip(&outputs[1..]) {
            var.set_grad(Some(g)).expect("shapes");
        }
        opt.step().expect("step");
    });
    let batch = crate::eager::W3_BATCH;
    report("W3-cnn-train", "graphgrad-compiled", &format!("b{batch}"), &t, 1.0 / t.median_s, "steps/s");
}

/// W4: the eager harness's transformer; the compiled program computes the loss and the
/// parameter gradients (targets as a one-hot input), and Adam is applied eagerly.
fn w4_transformer_train() {
    let w = crate::eager::w4_setup();
    let vocab = crate::eager::W4_VOCAB;
    let mut one_hot = vec![0.0f32; w.targets.len() * vocab];
    for (row, &t) in w.targets.iter().enumerate() {
        one_hot[row * vocab + t] = 1.0;
    }
    let one_hot = Tensor::from_vec(one_hot, &[w.targets.len(), vocab]).expect("shape");
    let tensors: Vec<Tensor> = w.params.iter().map(|(_, v)| v.tensor().clone()).collect();
    let mut program = compile(|io: &[Tensor]| -> Result<Step> {
        // The token ids are the same every step in this workload (as in the eager one).
        let log_probs = constant_indices(|| crate::eager::w4_logits(&w))?.log_softmax(-1)?;
        let loss = log_probs.mul(&io[0])?.sum(&[-1], false)?.mean_all()?.neg();
        let mut outputs = vec![loss.clone()];
        outputs.extend(grad(std::slice::from_ref(&loss), &tensors, false)?);
        Ok(Step::new(outputs))
    });
    let mut opt = Adam::new(w.params.clone(), AdamConfig::new(1e-3)).expect("config");
    let t = time(STEP_REPS, || {
        let outputs = program.call(std::slice::from_ref(&one_hot)).expect("replay");
        for ((_, var), g) in w.params.iter().zip(&outputs[1..]) {
            var.set_grad(Some(g)).expect("shapes");
        }
        opt.step().expect("step");
    });
    let batch = crate::eager::W4_BATCH;
    report(
        "W4-transformer-train",
        "graphgrad-compiled",
        &format!("b{batch}"),
        &t,
        1.0 / t.median_s,
        "steps/s",
    );
}

fn w5_autograd_overhead() {
    const OPS: usize = 1000;
    let mut step = compile(|io: &[Tensor]| -> Result<Step> {
        let x = &io[0];
        let mut y = x.clone();
        for i in 0..OPS {
            y = match i % 3 {
                0 => y.mul_scalar(1.0001),
                1 => y.add_scalar(0.0001),
                _ => y.tanh(),
            };
        }
        let loss = y.sum_all()?;
        let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
        Ok(Step::new(vec![loss, dx]))
    });
    let x = Tensor::from_vec(vec![0.5f32; 16], &[16]).expect("shape").requires_grad_();
    let t = time(200, || {
        step.call(std::slice::from_ref(&x)).expect("compiled W5 step");
    });
    let per_op_us = t.median_s / OPS as f64 * 1e6;
    report("W5-autograd-overhead", "graphgrad-compiled", "n16", &t, per_op_us, "us/op");
}

/// W6: tanh-GELU of 4,194,304 elements with primitive ops, sum, backward — one fused kernel.
fn w6_fusion() {
    const N: usize = 4_194_304;
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = Tensor::randn(&[N], 0.0, 1.0, DType::F32, &mut rng).requires_grad_();
    let mut step = compile(|io: &[Tensor]| -> Result<Step> {
        let x = &io[0];
        let inner = x.add(&x.pow_scalar(3.0).mul_scalar(0.044715))?.mul_scalar(0.797_884_56);
        let y = x.mul_scalar(0.5).mul(&inner.tanh().add_scalar(1.0))?;
        let loss = y.sum_all()?;
        let dx = grad(std::slice::from_ref(&loss), std::slice::from_ref(x), false)?.remove(0);
        Ok(Step::new(vec![loss, dx]))
    });
    let t = time(20, || {
        step.call(std::slice::from_ref(&x)).expect("compiled W6 step");
    });
    report("W6-fusion", "graphgrad-compiled", "n4194304", &t, t.median_s * 1e3, "ms/step");
}

//! Training-step workloads of `shared/bench/WORKLOADS.md`: W2 (MLP), W3 (CNN) and W4
//! (Transformer), each one full step (forward, cross-entropy on integer labels, backward,
//! optimiser update) on fixed random data, reported in steps/s. Each workload is one step body,
//! run eagerly (`graphgrad-eager`) and compiled whole, update included (`graphgrad-compiled`),
//! switched by `compile_if`.
//!
//! `benches/reference.py` builds the same models, data shapes and optimisers in PyTorch and
//! JAX; keep the two in step. Choices the workload table leaves open, made identically on both
//! sides: W3 uses plain SGD (lr 0.01); W4 is one pre-LN encoder layer (no dropout, exact-erf
//! GELU, no positional encoding, no final norm) between the token embedding and the head,
//! without an attention mask, trained with Adam (lr 1e-3) to predict random tokens.

use crate::{report, time, STEP_REPS};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::{DType, Tensor, Var};
use graphgrad::nn::layers::{
    AttentionMasks, FeedForwardActivation, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{
    prefixed, Conv2dConfig, Embedding, EmbeddingConfig, Flatten, Linear, LinearConfig, MaxPool2d, Module,
    ReLU, Reduction, Sequential,
};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs the selected workloads among W2, W3 and W4, eager then compiled.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    for compiled in [false, true] {
        if selected("W2-mlp-train") {
            w2_mlp_train(compiled);
        }
        if selected("W3-cnn-train") {
            w3_cnn_train(compiled);
        }
        if selected("W4-transformer-train") {
            w4_transformer_train(compiled);
        }
    }
}

/// `n` class labels in `0..classes`, as an i64 tensor.
/// W2's network: 784→512→512→10 with ReLU (also W9's and W10's).
pub(crate) fn w2_network(rng: &mut ChaCha8Rng) -> Sequential {
    Sequential::new()
        .append(LinearConfig::new(784, 512).init(rng).expect("config"))
        .append(ReLU)
        .append(LinearConfig::new(512, 512).init(rng).expect("config"))
        .append(ReLU)
        .append(LinearConfig::new(512, 10).init(rng).expect("config"))
}

pub(crate) fn labels(n: usize, classes: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let values: Vec<usize> = (0..n).map(|_| rng.gen_range(0..classes)).collect();
    Tensor::from_indices(&values, &[n]).expect("shape")
}

/// Times `reps` calls of the training step `step` on `inputs` (eager or compiled whole) and
/// prints steps/s.
pub(crate) fn report_steps<F>(workload: &str, batch: usize, compiled: bool, inputs: &[Tensor], step: F)
where
    F: FnMut(&[Tensor]) -> Result<Tensor>,
{
    let mut step = compile_if(compiled, step);
    let t = time(STEP_REPS, || {
        step.call(inputs).expect("training step");
    });
    let framework = if compiled { "graphgrad-compiled" } else { "graphgrad-eager" };
    report(workload, framework, &format!("b{batch}"), &t, 1.0 / t.median_s, "steps/s");
    if compiled && crate::profiling() {
        eprintln!("{workload}: {}", step.profile(inputs, STEP_REPS).expect("profile"));
        if let Some(p) = step.program(inputs) {
            eprintln!("{}", p.log());
        }
    }
}

/// One step: zero the gradients, forward, cross-entropy against `labels`, backward, update.
pub(crate) fn train_step(
    opt: &mut dyn Optimizer,
    logits: impl FnOnce() -> graphgrad::autodiff::Result<Tensor>,
    labels: &Tensor,
) -> Result<Tensor> {
    opt.zero_grad();
    let loss = cross_entropy(&logits()?, labels, Reduction::Mean)?;
    loss.backward()?;
    opt.step()?;
    Ok(loss)
}

/// W2-mlp-train: batch 128, 784→512→512→10, ReLU, cross-entropy, SGD momentum 0.9 lr 0.01.
fn w2_mlp_train(compiled: bool) {
    const BATCH: usize = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let model = w2_network(&mut rng);
    let x = Tensor::randn(&[BATCH, 784], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let y = labels(BATCH, 10, &mut rng);
    let config = SgdConfig::new(0.01).momentum(0.9);
    let mut opt = Sgd::new(model.named_parameters(), config).expect("config");
    report_steps("W2-mlp-train", BATCH, compiled, &[x, y], |io| {
        train_step(&mut opt, || model.forward(&io[0]), &io[1])
    });
}

/// The W3 model (seed 3) and one batch of inputs and labels.
fn w3_setup() -> (Sequential, Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let conv =
        |i, o, rng: &mut ChaCha8Rng| Conv2dConfig::new(i, o, 3).with_padding(1).init(rng).expect("config");
    let model = Sequential::new()
        .append(conv(1, 16, &mut rng))
        .append(ReLU)
        .append(MaxPool2d::new(2))
        .append(conv(16, 32, &mut rng))
        .append(ReLU)
        .append(MaxPool2d::new(2))
        .append(Flatten::default())
        .append(LinearConfig::new(32 * 7 * 7, 10).init(&mut rng).expect("config"));
    let x = Tensor::randn(&[W3_BATCH, 1, 28, 28], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let y = labels(W3_BATCH, 10, &mut rng);
    (model, x, y)
}

/// W3's batch size.
const W3_BATCH: usize = 32;

/// W3-cnn-train: batch 32 of 1×28×28; conv 1→16 3×3 pad 1, ReLU, max-pool 2; conv 16→32 3×3
/// pad 1, ReLU, max-pool 2; flatten; linear 1568→10; cross-entropy; SGD lr 0.01.
fn w3_cnn_train(compiled: bool) {
    let (model, x, y) = w3_setup();
    let mut opt = Sgd::new(model.named_parameters(), SgdConfig::new(0.01)).expect("config");
    report_steps("W3-cnn-train", W3_BATCH, compiled, &[x, y], |io| {
        train_step(&mut opt, || model.forward(&io[0]), &io[1])
    });
}

/// W4's sizes: batch, sequence, model width, vocabulary.
const W4_BATCH: usize = 16;
const SEQ: usize = 64;
const D_MODEL: usize = 128;
const W4_VOCAB: usize = 64;

/// The W4 model (seed 4), its data (token ids `[batch, seq]`, targets `[batch·seq]`) and its
/// named parameters.
struct W4 {
    embedding: Embedding,
    layer: TransformerEncoderLayer,
    head: Linear,
    tokens: Tensor,
    targets: Tensor,
    params: Vec<(String, Var)>,
}

/// Builds [`W4`].
fn w4_setup() -> W4 {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let embedding = EmbeddingConfig::new(W4_VOCAB, D_MODEL).init(&mut rng).expect("config");
    let layer = TransformerEncoderLayerConfig::new(D_MODEL, 4)
        .with_dim_feedforward(512)
        .with_dropout(0.0)
        .with_activation(FeedForwardActivation::Gelu)
        .with_norm_first(true)
        .init(&mut rng)
        .expect("config");
    let head = LinearConfig::new(D_MODEL, W4_VOCAB).init(&mut rng).expect("config");
    let tokens = labels(W4_BATCH * SEQ, W4_VOCAB, &mut rng).reshape(&[W4_BATCH, SEQ]).expect("shape");
    let targets = labels(W4_BATCH * SEQ, W4_VOCAB, &mut rng);
    let mut params = prefixed("embedding", embedding.named_parameters());
    params.extend(prefixed("layer", layer.named_parameters()));
    params.extend(prefixed("head", head.named_parameters()));
    W4 { embedding, layer, head, tokens, targets, params }
}

/// W4's forward pass on token ids `[batch, seq]`: logits `[batch·seq, vocab]`.
fn w4_logits(w: &W4, tokens: &Tensor) -> graphgrad::autodiff::Result<Tensor> {
    // x: [batch, seq, d_model] → logits: [batch·seq, vocab]
    let x = w.embedding.forward(tokens)?;
    let h = w.layer.forward_with_masks(&x, &AttentionMasks::none())?;
    w.head.forward(&h)?.reshape(&[W4_BATCH * SEQ, W4_VOCAB])
}

/// W4-transformer-train: batch 16, sequence 64, d_model 128, 4 heads, FFN 512 with GELU,
/// pre-LN with residuals; token embedding and head over a vocabulary of 64; cross-entropy on
/// every position; Adam lr 1e-3.
fn w4_transformer_train(compiled: bool) {
    let w = w4_setup();
    let mut opt = Adam::new(w.params.clone(), AdamConfig::new(1e-3)).expect("config");
    let inputs = [w.tokens.clone(), w.targets.clone()];
    report_steps("W4-transformer-train", W4_BATCH, compiled, &inputs, |io| {
        train_step(&mut opt, || w4_logits(&w, &io[0]), &io[1])
    });
}

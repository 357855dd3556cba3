//! Eager training-step workloads of `shared/bench/WORKLOADS.md`: W2 (MLP), W3 (CNN) and W4
//! (Transformer), each one full step (forward, loss, backward, optimiser update) on fixed
//! random data, reported in steps/s as `graphgrad-eager`.
//!
//! `benches/reference.py` builds the same models, data shapes and optimisers in PyTorch and
//! JAX; keep the two in step. Choices the workload table leaves open, made identically on both
//! sides: W3 uses plain SGD (lr 0.01); W4 is one pre-LN encoder layer (no dropout, exact-erf
//! GELU, no positional encoding, no final norm) between the token embedding and the head,
//! without an attention mask, trained with Adam (lr 1e-3) to predict random tokens.

use crate::{report, time, STEP_REPS};
use graphgrad::autodiff::{DType, Tensor, Var};
use graphgrad::nn::layers::{
    AttentionMasks, FeedForwardActivation, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{
    prefixed, Conv2dConfig, Embedding, EmbeddingConfig, Flatten, Linear, LinearConfig, MaxPool2d, Module,
    ReLU, Reduction, Sequential,
};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FRAMEWORK: &str = "graphgrad-eager";

/// Runs the selected workloads among W2, W3 and W4.
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
}

/// `n` class labels in `0..classes`.
pub(crate) fn labels(n: usize, classes: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    (0..n).map(|_| rng.gen_range(0..classes)).collect()
}

/// Times `reps` calls of `step` after a warm-up and prints steps/s.
fn report_steps(workload: &str, batch: usize, reps: usize, step: impl FnMut()) {
    let t = time(reps, step);
    report(workload, FRAMEWORK, &format!("b{batch}"), &t, 1.0 / t.median_s, "steps/s");
}

/// W2-mlp-train: batch 128, 784→512→512→10, ReLU, cross-entropy, SGD momentum 0.9 lr 0.01.
fn w2_mlp_train() {
    const BATCH: usize = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let model = Sequential::new()
        .append(LinearConfig::new(784, 512).init(&mut rng).expect("config"))
        .append(ReLU)
        .append(LinearConfig::new(512, 512).init(&mut rng).expect("config"))
        .append(ReLU)
        .append(LinearConfig::new(512, 10).init(&mut rng).expect("config"));
    let x = Tensor::randn(&[BATCH, 784], 0.0, 1.0, DType::F32, &mut rng);
    let y = labels(BATCH, 10, &mut rng);
    let config = SgdConfig::new(0.01).momentum(0.9);
    let mut opt = Sgd::new(model.named_parameters(), config).expect("config");
    report_steps("W2-mlp-train", BATCH, STEP_REPS, || {
        opt.zero_grad();
        let logits = model.forward(&x).expect("shapes");
        cross_entropy(&logits, &y, Reduction::Mean).and_then(|l| l.backward()).expect("backward");
        opt.step().expect("step");
    });
}

/// The W3 model (seed 3) and one batch of inputs and labels.
pub(crate) fn w3_setup() -> (Sequential, Tensor, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let conv = |i, o, rng: &mut ChaCha8Rng| {
        Conv2dConfig::new(i, o, (3, 3)).with_padding((1, 1)).init(rng).expect("config")
    };
    let model = Sequential::new()
        .append(conv(1, 16, &mut rng))
        .append(ReLU)
        .append(MaxPool2d::new((2, 2)))
        .append(conv(16, 32, &mut rng))
        .append(ReLU)
        .append(MaxPool2d::new((2, 2)))
        .append(Flatten::default())
        .append(LinearConfig::new(32 * 7 * 7, 10).init(&mut rng).expect("config"));
    let x = Tensor::randn(&[W3_BATCH, 1, 28, 28], 0.0, 1.0, DType::F32, &mut rng);
    let y = labels(W3_BATCH, 10, &mut rng);
    (model, x, y)
}

/// W3's batch size.
pub(crate) const W3_BATCH: usize = 32;

/// W3-cnn-train: batch 32 of 1×28×28; conv 1→16 3×3 pad 1, ReLU, max-pool 2; conv 16→32 3×3
/// pad 1, ReLU, max-pool 2; flatten; linear 1568→10; cross-entropy; SGD lr 0.01.
fn w3_cnn_train() {
    let (model, x, y) = w3_setup();
    let mut opt = Sgd::new(model.named_parameters(), SgdConfig::new(0.01)).expect("config");
    report_steps("W3-cnn-train", W3_BATCH, STEP_REPS, || {
        opt.zero_grad();
        let logits = model.forward(&x).expect("shapes");
        cross_entropy(&logits, &y, Reduction::Mean).and_then(|l| l.backward()).expect("backward");
        opt.step().expect("step");
    });
}

/// W4's sizes: batch, sequence, model width, vocabulary.
pub(crate) const W4_BATCH: usize = 16;
const SEQ: usize = 64;
const D_MODEL: usize = 128;
pub(crate) const W4_VOCAB: usize = 64;

/// The W4 model (seed 4), its data and its named parameters.
pub(crate) struct W4 {
    pub embedding: Embedding,
    pub layer: TransformerEncoderLayer,
    pub head: Linear,
    pub tokens: Vec<usize>,
    pub targets: Vec<usize>,
    pub params: Vec<(String, Var)>,
}

/// Builds [`W4`].
pub(crate) fn w4_setup() -> W4 {
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
    let tokens = labels(W4_BATCH * SEQ, W4_VOCAB, &mut rng);
    let targets = labels(W4_BATCH * SEQ, W4_VOCAB, &mut rng);
    let mut params = prefixed("embedding", embedding.named_parameters());
    params.extend(prefixed("layer", layer.named_parameters()));
    params.extend(prefixed("head", head.named_parameters()));
    W4 { embedding, layer, head, tokens, targets, params }
}

/// W4's forward pass: logits `[batch·seq, vocab]`.
pub(crate) fn w4_logits(w: &W4) -> graphgrad::autodiff::Result<Tensor> {
    // x: [batch, seq, d_model] → logits: [batch·seq, vocab]
    let x = w.embedding.lookup(&w.tokens, &[W4_BATCH, SEQ])?;
    let h = w.layer.forward_with_masks(&x, &AttentionMasks::none())?;
    w.head.forward(&h)?.reshape(&[W4_BATCH * SEQ, W4_VOCAB])
}

/// W4-transformer-train: batch 16, sequence 64, d_model 128, 4 heads, FFN 512 with GELU,
/// pre-LN with residuals; token embedding and head over a vocabulary of 64; cross-entropy on
/// every position; Adam lr 1e-3.
fn w4_transformer_train() {
    let w = w4_setup();
    let mut opt = Adam::new(w.params.clone(), AdamConfig::new(1e-3)).expect("config");
    report_steps("W4-transformer-train", W4_BATCH, STEP_REPS, || {
        opt.zero_grad();
        let logits = w4_logits(&w).expect("shapes");
        cross_entropy(&logits, &w.targets, Reduction::Mean).and_then(|l| l.backward()).expect("backward");
        opt.step().expect("step");
    });
}

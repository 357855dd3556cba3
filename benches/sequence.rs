//! W7-lstm-train and W8-gpt-train of `shared/bench/WORKLOADS.md`: one full training step each
//! (forward, cross-entropy on integer labels, backward, optimiser update) on fixed random
//! data, run eagerly and compiled whole by the same body as W2–W4 (`training.rs`).
//!
//! Choices the workload table leaves open, made identically in `benches/reference.py`: W7
//! reads the LSTM's last output (its last hidden state) into the head; W8 adds a learned
//! positional embedding to the token embedding, runs 4 pre-LN encoder layers with a causal
//! mask (no dropout, exact-erf GELU) and a final LayerNorm, and predicts random next tokens
//! at every position; AdamW betas 0.9/0.999, eps 1e-8.

use crate::training::{labels, report_steps, train_step};
use graphgrad::autodiff::{DType, Tensor, Var};
use graphgrad::nn::layers::{
    AttentionMasks, FeedForwardActivation, TransformerEncoder, TransformerEncoderLayerConfig,
};
use graphgrad::nn::{prefixed, EmbeddingConfig, LinearConfig, LstmConfig, Module};
use graphgrad::optim::{Adam, AdamConfig, AdamW, AdamWConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Runs W7 and W8 when selected, eager then compiled.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    for compiled in [false, true] {
        if selected("W7-lstm-train") {
            w7_lstm_train(compiled);
        }
        if selected("W8-gpt-train") {
            w8_gpt_train(compiled);
        }
    }
}

/// W7-lstm-train: batch 32, sequence 64 of 16 features; one LSTM layer, hidden 128; a linear
/// head from the last hidden state to 10 classes; cross-entropy; Adam lr 1e-3.
fn w7_lstm_train(compiled: bool) {
    const BATCH: usize = 32;
    const SEQ: usize = 64;
    const HIDDEN: usize = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let lstm = LstmConfig::new(16, HIDDEN).init(&mut rng).expect("config");
    let head = LinearConfig::new(HIDDEN, 10).init(&mut rng).expect("config");
    let x = Tensor::randn(&[BATCH, SEQ, 16], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let y = labels(BATCH, 10, &mut rng);
    let mut params = prefixed("lstm", lstm.named_parameters());
    params.extend(prefixed("head", head.named_parameters()));
    let mut opt = Adam::new(params, AdamConfig::new(1e-3)).expect("config");
    report_steps("W7-lstm-train", BATCH, compiled, &[x, y], |io| {
        train_step(
            &mut opt,
            || {
                let out = lstm.forward(&io[0])?; // [batch, seq, hidden]
                let last = out.narrow(1, SEQ - 1, 1)?.reshape(&[BATCH, HIDDEN])?;
                head.forward(&last)
            },
            &io[1],
        )
    });
}

/// W8-gpt-train: batch 8, sequence 128, vocabulary 96, learned positional embedding, 4 pre-LN
/// blocks (causal self-attention, 4 heads, d_model 256, FFN 1024 with GELU), final LayerNorm,
/// head to 96; cross-entropy over every position; AdamW lr 3e-4, weight decay 0.1.
fn w8_gpt_train(compiled: bool) {
    const BATCH: usize = 8;
    const SEQ: usize = 128;
    const VOCAB: usize = 96;
    const D: usize = 256;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let tokens_embedding = EmbeddingConfig::new(VOCAB, D).init(&mut rng).expect("config");
    let positions_embedding = EmbeddingConfig::new(SEQ, D).init(&mut rng).expect("config");
    let layer = TransformerEncoderLayerConfig::new(D, 4)
        .with_dim_feedforward(1024)
        .with_dropout(0.0)
        .with_activation(FeedForwardActivation::Gelu)
        .with_norm_first(true);
    let blocks = TransformerEncoder::new(&layer, 4, true, &mut rng).expect("config");
    let head = LinearConfig::new(D, VOCAB).init(&mut rng).expect("config");
    let tokens = labels(BATCH * SEQ, VOCAB, &mut rng).reshape(&[BATCH, SEQ]).expect("shape");
    let targets = labels(BATCH * SEQ, VOCAB, &mut rng);
    let positions = Tensor::from_indices(&(0..SEQ).collect::<Vec<_>>(), &[1, SEQ]).expect("shape");
    let mut params: Vec<(String, Var)> = prefixed("tokens", tokens_embedding.named_parameters());
    params.extend(prefixed("positions", positions_embedding.named_parameters()));
    params.extend(prefixed("blocks", blocks.named_parameters()));
    params.extend(prefixed("head", head.named_parameters()));
    let mut opt = AdamW::new(params, AdamWConfig::new(3e-4).weight_decay(0.1)).expect("config");
    let masks = AttentionMasks::causal();
    report_steps("W8-gpt-train", BATCH, compiled, &[tokens, targets], |io| {
        train_step(
            &mut opt,
            || {
                // [batch, seq, d] + [1, seq, d]
                let x = tokens_embedding.forward(&io[0])?.add(&positions_embedding.forward(&positions)?)?;
                let h = blocks.forward_with_masks(&x, &masks)?;
                head.forward(&h)?.reshape(&[BATCH * SEQ, VOCAB])
            },
            &io[1],
        )
    });
}

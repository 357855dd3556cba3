//! Learning check: a small Transformer encoder learns to sort sequences of digits and sorts
//! held-out sequences correctly.
//!
//! Task (generated): the input is 8 digits drawn uniformly from 0..=9 (repeats allowed); the
//! target at position i is the i-th smallest digit, so every output token must attend to the
//! whole sequence (it is the digit whose rank is i). 1,000 test sequences are drawn first from
//! their own seed; training draws fresh sequences from another seed and skips any test one, so
//! no test sequence is ever trained on.
//!
//! Model: token embedding + learned positional embedding, two pre-LN encoder layers
//! (d_model 64, 4 heads, feed-forward 128 with GELU, no dropout), a final layer norm and a
//! linear head to the 10 digits at every position; Adam, seeded.

use graphgrad::autodiff::{no_grad, DType, Result as TensorResult, Tensor, Var};
use graphgrad::nn::init::normal;
use graphgrad::nn::layers::{FeedForwardActivation, TransformerEncoder, TransformerEncoderLayerConfig};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::metrics::predictions;
use graphgrad::nn::{prefixed, Embedding, EmbeddingConfig, Linear, LinearConfig, Module, Reduction};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::time::Instant;

const LEN: usize = 8;
const DIGITS: usize = 10;
const D_MODEL: usize = 64;
const STEPS: usize = 400;
const BATCH: usize = 64;
const TEST_SEQUENCES: usize = 1000;
/// Thresholds over the held-out sequences: digits in the right place, and sequences sorted
/// entirely right (seeds 1–3 reach 99.6–100% and 97.2–100%).
const TOKEN_ACCURACY: f64 = 0.98;
const SEQUENCE_ACCURACY: f64 = 0.90;

/// Embeddings → encoder → final norm (inside the encoder) → per-position digit logits.
struct Sorter {
    tokens: Embedding,
    /// `[LEN, D_MODEL]`, added to every sequence of the batch.
    positions: Var,
    encoder: TransformerEncoder,
    head: Linear,
}

impl Sorter {
    fn new(rng: &mut ChaCha8Rng) -> TensorResult<Sorter> {
        let layer = TransformerEncoderLayerConfig::new(D_MODEL, 4)
            .with_dim_feedforward(2 * D_MODEL)
            .with_dropout(0.0)
            .with_activation(FeedForwardActivation::Gelu)
            .with_norm_first(true);
        Ok(Sorter {
            tokens: EmbeddingConfig::new(DIGITS, D_MODEL).init(rng)?,
            positions: Var::new("positions", &normal(&[LEN, D_MODEL], 0.0, 1.0, DType::F32, rng)?),
            encoder: TransformerEncoder::new(&layer, 2, true, rng)?,
            head: LinearConfig::new(D_MODEL, DIGITS).init(rng)?,
        })
    }

    /// Logits `[batch·LEN, DIGITS]` for `batch` sequences laid end to end in `seqs`.
    fn logits(&self, seqs: &[usize]) -> TensorResult<Tensor> {
        let batch = seqs.len() / LEN;
        // x: [batch, LEN, D_MODEL]
        let x = self.tokens.lookup(seqs, &[batch, LEN])?.add(&self.positions)?;
        let h = self.encoder.forward(&x)?;
        self.head.forward(&h)?.reshape(&[batch * LEN, DIGITS])
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut params = prefixed("tokens", self.tokens.named_parameters());
        params.push(("positions".to_string(), self.positions.clone()));
        params.extend(prefixed("encoder", self.encoder.named_parameters()));
        params.extend(prefixed("head", self.head.named_parameters()));
        params
    }
}

fn random_sequence(rng: &mut ChaCha8Rng) -> Vec<usize> {
    (0..LEN).map(|_| rng.gen_range(0..DIGITS)).collect()
}

/// The targets of sequences laid end to end: each sequence sorted.
fn sorted(seqs: &[usize]) -> Vec<usize> {
    seqs.chunks(LEN)
        .flat_map(|s| {
            let mut s = s.to_vec();
            s.sort_unstable();
            s
        })
        .collect()
}

#[test]
fn transformer_sorts_held_out_digit_sequences() -> Result<()> {
    let start = Instant::now();
    let mut test_rng = ChaCha8Rng::seed_from_u64(1234);
    let test: Vec<Vec<usize>> = (0..TEST_SEQUENCES).map(|_| random_sequence(&mut test_rng)).collect();
    let held_out: HashSet<Vec<usize>> = test.iter().cloned().collect();

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let model = Sorter::new(&mut rng)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(1e-3))?;
    for _ in 0..STEPS {
        let mut seqs = Vec::with_capacity(BATCH * LEN);
        while seqs.len() < BATCH * LEN {
            let s = random_sequence(&mut rng);
            if !held_out.contains(&s) {
                seqs.extend(s);
            }
        }
        opt.zero_grad();
        cross_entropy(&model.logits(&seqs)?, &sorted(&seqs), Reduction::Mean)?.backward()?;
        opt.step()?;
    }

    let seqs: Vec<usize> = test.concat();
    let predicted = predictions(&no_grad(|| model.logits(&seqs))?)?;
    let target = sorted(&seqs);
    let tokens_right = predicted.iter().zip(&target).filter(|(p, t)| p == t).count();
    let token_accuracy = tokens_right as f64 / target.len() as f64;
    let sequences_right = predicted.chunks(LEN).zip(target.chunks(LEN)).filter(|(p, t)| p == t).count();
    eprintln!(
        "sorting transformer: token accuracy {token_accuracy:.4}, whole sequences {sequences_right}/{TEST_SEQUENCES}, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(token_accuracy >= TOKEN_ACCURACY, "token accuracy {token_accuracy:.4} < {TOKEN_ACCURACY}");
    let sequence_accuracy = sequences_right as f64 / TEST_SEQUENCES as f64;
    assert!(
        sequence_accuracy >= SEQUENCE_ACCURACY,
        "sequence accuracy {sequence_accuracy:.4} < {SEQUENCE_ACCURACY}"
    );
    Ok(())
}

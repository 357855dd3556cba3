//! A small transformer learns to sort: given 8 digits (a vocabulary of 10 tokens), it outputs
//! the sorted sequence, one prediction per position (position i gets the i-th smallest digit).
//!
//! Token embedding + sinusoidal positional encoding → a stack of pre-LN
//! `TransformerEncoderLayer`s (multi-head self-attention, no mask: every position sees the
//! whole input) → a linear read-out to 10 logits per position, trained with Adam on the
//! cross-entropy of every position. The training and test sequences are generated at random
//! and disjoint: no test sequence occurs in the training set. Reports per-token and
//! whole-sequence accuracy on the held-out sequences, prints a few examples, and writes the
//! loss and accuracy curves and the attention maps (every layer and head) for one input.
//!
//! ```text
//! cargo run --release --example attention
//! cargo run --release --example attention -- --steps 4000 --d-model 32 --layers 2 --heads 4 --seed 1
//! cargo run --release --example attention -- --mode compiled
//! ```
//! Flags: `--steps`, `--batch-size`, `--lr`, `--seed`, `--len` (sequence length),
//! `--train-size`, `--test-size`, `--d-model`, `--heads`, `--layers`, `--eval-every`, `--mode eager|compiled`, `--out DIR`.

mod common;

use common::{heat_maps, line_chart, output_dir, progress, AnyResult, Flags, HeatMap, Series};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::{no_grad, DType, Tensor, Var};
use graphgrad::nn::layers::{sinusoidal_positional_encoding, AttentionMasks};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{
    prefixed, Embedding, EmbeddingConfig, Linear, LinearConfig, Module, Reduction, TransformerEncoder,
    TransformerEncoderLayerConfig,
};
use graphgrad::optim::{clip_grad_norm, Adam, AdamConfig, CosineAnnealingLr, LrScheduler, Optimizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::HashSet;
use std::process::ExitCode;

/// Digits 0..9.
const VOCAB: usize = 10;

struct Settings {
    steps: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    len: usize,
    train_size: usize,
    test_size: usize,
    d_model: usize,
    heads: usize,
    layers: usize,
    eval_every: usize,
    compiled: bool,
}

/// Embedding + positions → encoder → per-position logits.
struct Sorter {
    embedding: Embedding,
    positions: Tensor,
    encoder: TransformerEncoder,
    head: Linear,
}

impl Sorter {
    fn new(s: &Settings, rng: &mut ChaCha8Rng) -> AnyResult<Sorter> {
        let layer = TransformerEncoderLayerConfig::new(s.d_model, s.heads)
            .with_dim_feedforward(4 * s.d_model)
            .with_dropout(0.0)
            .with_norm_first(true);
        Ok(Sorter {
            embedding: EmbeddingConfig::new(VOCAB, s.d_model).init(rng)?,
            positions: sinusoidal_positional_encoding(s.len, s.d_model, DType::F32),
            encoder: TransformerEncoder::new(&layer, s.layers, true, rng)?,
            head: LinearConfig::new(s.d_model, VOCAB).init(rng)?,
        })
    }

    /// The encoder's input for token ids `[batch, len]` (i64): `[batch, len, d_model]`.
    fn embed(&self, tokens: &Tensor) -> AnyResult<Tensor> {
        Ok((self.embedding.forward(tokens)? + &self.positions)?)
    }

    /// Logits `[batch, len, VOCAB]`.
    fn logits(&self, tokens: &Tensor) -> AnyResult<Tensor> {
        let h = self.encoder.forward(&self.embed(tokens)?)?;
        Ok(self.head.forward(&h)?)
    }

    /// The attention weights `[heads, len, len]` of every layer for one sequence (eval mode):
    /// each pre-LN layer attends over its normalised input.
    fn attention_maps(&self, tokens: &[usize]) -> AnyResult<Vec<Tensor>> {
        let mut x = self.embed(&Tensor::from_indices(tokens, &[1, tokens.len()])?)?;
        let mut maps = Vec::new();
        for layer in &self.encoder.layers {
            let h = layer.norm1.forward(&x)?;
            let weights = layer.self_attn.forward_attention(&h, &h, &h, &AttentionMasks::none())?.weights;
            maps.push(weights.squeeze(0)?);
            x = layer.forward(&x)?;
        }
        Ok(maps)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut params = prefixed("embedding", self.embedding.named_parameters());
        params.extend(prefixed("encoder", self.encoder.named_parameters()));
        params.extend(prefixed("head", self.head.named_parameters()));
        params
    }
}

/// `n` random sequences of `len` digits, all distinct and none in `exclude`.
fn generate(
    n: usize,
    len: usize,
    exclude: &HashSet<Vec<usize>>,
    rng: &mut ChaCha8Rng,
) -> AnyResult<Vec<Vec<usize>>> {
    let possible = (VOCAB as f64).powi(len as i32) - exclude.len() as f64;
    if n as f64 > possible / 2.0 {
        return Err(format!("cannot draw {n} distinct sequences of length {len}: too few exist").into());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let seq: Vec<usize> = (0..len).map(|_| rng.gen_range(0..VOCAB)).collect();
        if !exclude.contains(&seq) && seen.insert(seq.clone()) {
            out.push(seq);
        }
    }
    Ok(out)
}

fn sorted(seq: &[usize]) -> Vec<usize> {
    let mut s = seq.to_vec();
    s.sort_unstable();
    s
}

/// Predictions for `seqs` (eval mode, no gradients), in chunks.
fn predict(model: &Sorter, seqs: &[Vec<usize>]) -> AnyResult<Vec<Vec<usize>>> {
    model.encoder.set_training(false);
    let result = no_grad(|| -> AnyResult<_> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(256) {
            let tokens: Vec<usize> = chunk.iter().flatten().copied().collect();
            let len = chunk[0].len();
            let logits = model.logits(&Tensor::from_indices(&tokens, &[chunk.len(), len])?)?;
            let flat = logits.argmax(-1)?;
            out.extend(flat.chunks(len).map(<[usize]>::to_vec));
        }
        Ok(out)
    });
    model.encoder.set_training(true);
    result
}

/// (per-token accuracy, whole-sequence accuracy) of the predictions against sorting.
fn accuracy(seqs: &[Vec<usize>], predicted: &[Vec<usize>]) -> (f64, f64) {
    let (mut tokens, mut sequences, mut total) = (0usize, 0usize, 0usize);
    for (seq, pred) in seqs.iter().zip(predicted) {
        let target = sorted(seq);
        let right = target.iter().zip(pred).filter(|(t, p)| t == p).count();
        tokens += right;
        total += target.len();
        sequences += usize::from(right == target.len());
    }
    (tokens as f64 / total.max(1) as f64, sequences as f64 / seqs.len().max(1) as f64)
}

fn show(seq: &[usize]) -> String {
    seq.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" ")
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &[
            "steps",
            "batch-size",
            "lr",
            "seed",
            "len",
            "train-size",
            "test-size",
            "d-model",
            "heads",
            "layers",
            "eval-every",
            "mode",
            "out",
        ],
        &[],
    )?;
    let fast = common::fast_mode();
    let s = Settings {
        steps: flags.get("steps", if fast { 20 } else { 2000 })?,
        batch_size: flags.get("batch-size", 64)?,
        lr: flags.get("lr", 0.001)?,
        seed: flags.get("seed", 0)?,
        len: flags.get("len", 8)?,
        train_size: flags.get("train-size", if fast { 500 } else { 50_000 })?,
        test_size: flags.get("test-size", if fast { 100 } else { 2000 })?,
        d_model: flags.get("d-model", 64)?,
        heads: flags.get("heads", 4)?,
        layers: flags.get("layers", 2)?,
        eval_every: flags.get("eval-every", if fast { 10 } else { 100 })?,
        compiled: common::compiled_mode(&flags)?,
    };
    if s.len < 2 || s.steps == 0 || s.eval_every == 0 || s.batch_size == 0 {
        return Err("--len must be at least 2; --steps, --eval-every and --batch-size positive".into());
    }
    let out = output_dir(&flags, "attention")?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);

    // Held-out sequences first, then training sequences that avoid them.
    let test = generate(s.test_size, s.len, &HashSet::new(), &mut rng)?;
    let test_set: HashSet<Vec<usize>> = test.iter().cloned().collect();
    let train = generate(s.train_size, s.len, &test_set, &mut rng)?;
    debug_assert!(train.iter().all(|t| !test_set.contains(t)));
    println!(
        "task: sort {} digits (vocabulary {VOCAB}); {} training and {} test sequences, disjoint",
        s.len,
        train.len(),
        test.len()
    );

    let model = Sorter::new(&s, &mut rng)?;
    let params = model.named_parameters();
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    println!(
        "model: embedding {VOCAB}×{d} + sinusoidal positions → {} pre-LN encoder layers ({} heads, d_model {d}, feed-forward {}) → linear {d}→{VOCAB}; {n_params} parameters",
        s.layers,
        s.heads,
        4 * s.d_model,
        d = s.d_model,
    );
    let mut optimizer = Adam::new(params.clone(), AdamConfig::new(s.lr))?;
    let mut schedule = LrScheduler::new(CosineAnnealingLr::new(s.steps as u64, s.lr * 0.05), &mut optimizer)?;
    let optimizer = RefCell::new(optimizer);
    // The training step, eager or compiled whole by `--mode`: inputs [tokens, sorted targets].
    let mut train_step = compile_if(s.compiled, |io: &[Tensor]| -> AnyResult<Tensor> {
        let mut optimizer = optimizer.borrow_mut();
        let logits = model.logits(&io[0])?;
        let loss = cross_entropy(&logits.reshape(&[s.batch_size * s.len, VOCAB])?, &io[1], Reduction::Mean)?;
        optimizer.zero_grad();
        loss.backward()?;
        clip_grad_norm(&params, 1.0)?;
        optimizer.step()?;
        Ok(loss)
    });

    let (mut loss_curve, mut token_curve, mut seq_curve) = (Vec::new(), Vec::new(), Vec::new());
    let (mut window_loss, mut window_n) = (0.0, 0usize);
    let bar = progress(s.steps as u64, "training");
    for step in 1..=s.steps {
        let picks: Vec<usize> = (0..s.batch_size).map(|_| rng.gen_range(0..train.len())).collect();
        let tokens: Vec<usize> = picks.iter().flat_map(|&i| train[i].iter().copied()).collect();
        let targets: Vec<usize> = picks.iter().flat_map(|&i| sorted(&train[i])).collect();
        let inputs = [
            Tensor::from_indices(&tokens, &[s.batch_size, s.len])?,
            Tensor::from_indices(&targets, &[targets.len()])?,
        ];
        let loss = train_step.call(&inputs)?[0].item()?;
        schedule.step(&mut *optimizer.borrow_mut())?;
        window_loss += loss;
        window_n += 1;
        if step % s.eval_every == 0 || step == s.steps {
            let (token_acc, seq_acc) = accuracy(&test, &predict(&model, &test)?);
            let mean_loss = window_loss / window_n as f64;
            loss_curve.push((step as f64, mean_loss));
            token_curve.push((step as f64, token_acc));
            seq_curve.push((step as f64, seq_acc));
            (window_loss, window_n) = (0.0, 0);
            let message = format!(
                "loss {mean_loss:.4}, test accuracy: tokens {:.1}%, sequences {:.1}%",
                100.0 * token_acc,
                100.0 * seq_acc
            );
            if bar.is_hidden() {
                // Output to a file or pipe: no bar is drawn, so log the evaluations.
                println!("step {step:>6}: {message}");
            }
            bar.set_message(message);
        }
        bar.inc(1);
    }
    bar.finish();

    let predicted = predict(&model, &test)?;
    let (token_acc, seq_acc) = accuracy(&test, &predicted);
    println!(
        "\nheld-out sequences: per-token accuracy {:.2}%, whole-sequence accuracy {:.2}% ({} of {})",
        100.0 * token_acc,
        100.0 * seq_acc,
        (seq_acc * test.len() as f64).round(),
        test.len()
    );
    // Accuracy per output position (rank): which ranks the model finds hard.
    let per_position: Vec<String> = (0..s.len)
        .map(|p| {
            let right = test.iter().zip(&predicted).filter(|(t, pr)| sorted(t)[p] == pr[p]).count();
            format!("{:.1}", 100.0 * right as f64 / test.len() as f64)
        })
        .collect();
    println!("per-position accuracy (%): {}", per_position.join("  "));
    println!("\nexamples (input → predicted → target):");
    for (seq, pred) in test.iter().zip(&predicted).take(6) {
        let target = sorted(seq);
        let mark = if *pred == target { "✓" } else { "✗" };
        println!("  {} → {} → {}  {mark}", show(seq), show(pred), show(&target));
    }

    // Attention maps for the first test sequence.
    let example = &test[0];
    model.encoder.set_training(false);
    let maps = no_grad(|| model.attention_maps(example))?;
    let labels: Vec<String> = example.iter().enumerate().map(|(i, d)| format!("{i}:{d}")).collect();
    let mut panels = Vec::new();
    for (l, map) in maps.iter().enumerate() {
        let values = map.to_f64_vec();
        for h in 0..s.heads {
            let rows = (0..s.len)
                .map(|q| values[(h * s.len + q) * s.len..(h * s.len + q + 1) * s.len].to_vec())
                .collect();
            panels.push(HeatMap {
                title: format!("layer {} head {}", l + 1, h + 1),
                row_labels: labels.iter().map(|q| format!("query {q}")).collect(),
                column_labels: labels.clone(),
                values: rows,
            });
        }
    }
    let attention_svg = out.join("attention_map.svg");
    heat_maps(
        &attention_svg,
        &format!(
            "attention weights for input [{}] (rows: query position:token, columns: key position:token)",
            show(example)
        ),
        &panels,
    )?;

    let loss_svg = out.join("loss.svg");
    line_chart(
        &loss_svg,
        "sorting transformer: training loss",
        "step",
        "cross-entropy (mean over the steps since the last point)",
        &[Series { label: "train", points: loss_curve }],
    )?;
    let accuracy_svg = out.join("accuracy.svg");
    line_chart(
        &accuracy_svg,
        "sorting transformer: held-out accuracy",
        "step",
        "accuracy",
        &[
            Series { label: "per token", points: token_curve },
            Series { label: "whole sequence", points: seq_curve },
        ],
    )?;
    println!("\nwrote {}, {} and {}", loss_svg.display(), accuracy_svg.display(), attention_svg.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attention: {e}");
            ExitCode::FAILURE
        }
    }
}

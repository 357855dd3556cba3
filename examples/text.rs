//! A text input: a character-level language model (predict the next character from the ones
//! before it) trained on generated English-like text, with held-out metrics.
//!
//! The text: sentences from a small seeded grammar ("the old fisherman mended the nets near
//! the harbour, and the children watched quietly."): subjects, verbs, objects, places and
//! adverbs, optional adjectives and clauses joined by "and"/"but"/"while", lowercase letters,
//! spaces, commas and full stops (29 symbols). The training text and the held-out text come
//! from different seeds, so the model is scored on sentences it has never seen; the
//! validation part chooses when to stop, the test part is touched once at the end.
//!
//! The model (a Bengio-style neural language model, graphgrad::nn layers): the previous
//! C = 12 characters, each an `Embedding` of 16 numbers, concatenated (`Flatten`) into 192
//! inputs → Linear(192 → h) → Tanh → Linear(h → 29) logits of the next character, trained
//! with cross-entropy and Adam on random mini-batches, with early stopping on the validation
//! loss. It reports, on the held-out test text, the cross-entropy in bits per character and
//! the next-character accuracy, beside two baselines counted on the training text (the
//! character frequencies alone, and the previous character's bigram table), and prints a
//! sample the model writes from a prompt.
//!
//! ```text
//! cargo run --release --example text
//! cargo run --release --example text -- --chars 60000 --epochs 30 --hidden 256 --lr 0.003 --seed 0
//! ```
//!
//! Trained by the `Trainer` (`--mode compiled`, `--resume` as in `digits`). Writes
//! `metrics.jsonl`, TensorBoard events, `learning_curves` (cross-entropy in nats and
//! next-character accuracy, train and validation, per epoch) and `checkpoints/` to `out/text`
//! (or `--out DIR`).

mod common;

use common::{classifier_trainer, output_dir, AnyResult, Flags, Schedule};
use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::data::Dataset;
use graphgrad::nn::{EmbeddingConfig, Flatten, LinearConfig, Module, Sequential, Tanh};
use graphgrad::optim::{Adam, AdamConfig};
use graphgrad::train::Metric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::process::ExitCode;

/// The symbols: index 0 is the space.
const ALPHABET: &str = " abcdefghijklmnopqrstuvwxyz,.";
/// Characters of context the model sees.
const CONTEXT: usize = 12;
/// Numbers per character embedding.
const EMBED: usize = 16;

const SUBJECTS: [&str; 10] = [
    "the fisherman",
    "the children",
    "my grandmother",
    "a young doctor",
    "the farmer",
    "the teacher",
    "our neighbour",
    "the old sailor",
    "a tired traveller",
    "the baker",
];
const ADJECTIVES: [&str; 8] = ["old", "small", "bright", "heavy", "quiet", "wooden", "green", "broken"];
const VERBS: [&str; 10] =
    ["mended", "carried", "painted", "found", "watched", "sold", "cleaned", "opened", "lost", "followed"];
const OBJECTS: [&str; 10] = [
    "the nets",
    "a basket",
    "the door",
    "the boat",
    "a letter",
    "the garden",
    "the bread",
    "a lamp",
    "the map",
    "the cart",
];
const PLACES: [&str; 8] = [
    "near the harbour",
    "in the market",
    "by the river",
    "behind the church",
    "at the station",
    "on the hill",
    "in the kitchen",
    "under the bridge",
];
const ADVERBS: [&str; 6] = ["quietly", "slowly", "again", "carefully", "at dawn", "every morning"];
const JOINS: [&str; 3] = ["and", "but", "while"];

/// One clause: subject verb [adjective] object [place] [adverb].
fn clause(rng: &mut ChaCha8Rng) -> String {
    let pick = |list: &[&'static str], rng: &mut ChaCha8Rng| list[rng.gen_range(0..list.len())];
    let subject = pick(&SUBJECTS, rng);
    let verb = pick(&VERBS, rng);
    let (article, noun) = pick(&OBJECTS, rng).split_once(' ').unwrap_or(("the", "lamp"));
    let mut text = format!("{subject} {verb} ");
    if rng.gen_bool(0.4) {
        // "the" before an adjective, so no "a old" (and no "an" to teach)
        let article = if article == "a" { "the" } else { article };
        text += &format!("{article} {} {noun}", pick(&ADJECTIVES, rng));
    } else {
        text += &format!("{article} {noun}");
    }
    if rng.gen_bool(0.6) {
        text += &format!(" {}", pick(&PLACES, rng));
    }
    if rng.gen_bool(0.4) {
        text += &format!(" {}", pick(&ADVERBS, rng));
    }
    text
}

/// At least `chars` characters of sentences from the grammar.
fn generate_text(chars: usize, rng: &mut ChaCha8Rng) -> String {
    let mut text = String::with_capacity(chars + 200);
    while text.len() < chars {
        text.push_str(&clause(rng));
        if rng.gen_bool(0.35) {
            text.push_str(", ");
            text.push_str(JOINS[rng.gen_range(0..JOINS.len())]);
            text.push(' ');
            text.push_str(&clause(rng));
        }
        text.push_str(". ");
    }
    text
}

/// The symbol indices of `text` (every character is in [`ALPHABET`]).
fn encode(text: &str) -> AnyResult<Vec<usize>> {
    text.chars()
        .map(|c| ALPHABET.find(c).ok_or_else(|| format!("{c:?} is not in the alphabet").into()))
        .collect()
}

/// Every position of `codes` after the first [`CONTEXT`]: the previous characters as
/// features, the character as the label.
fn windows(codes: &[usize]) -> AnyResult<Dataset> {
    let n = codes.len().saturating_sub(CONTEXT);
    let mut features = Vec::with_capacity(n * CONTEXT);
    let mut labels = Vec::with_capacity(n);
    for i in CONTEXT..codes.len() {
        features.extend(codes[i - CONTEXT..i].iter().map(|&c| c as f32));
        labels.push(codes[i]);
    }
    Ok(Dataset::classification(features, &[CONTEXT], labels)?)
}

/// Cross-entropy in bits per character of counting models on `test`: the unigram (character
/// frequencies) and the bigram (given the previous character), both counted on `train` with
/// add-one smoothing; and the bigram's accuracy.
fn count_baselines(train: &[usize], test: &[usize]) -> (f64, f64, f64) {
    let v = ALPHABET.len();
    let mut unigram = vec![1.0; v];
    let mut bigram = vec![vec![1.0; v]; v];
    for w in train.windows(2) {
        unigram[w[1]] += 1.0;
        bigram[w[0]][w[1]] += 1.0;
    }
    let total: f64 = unigram.iter().sum();
    let (mut uni_bits, mut bi_bits, mut bi_hits) = (0.0, 0.0, 0usize);
    for w in test.windows(2) {
        uni_bits -= (unigram[w[1]] / total).log2();
        let row = &bigram[w[0]];
        bi_bits -= (row[w[1]] / row.iter().sum::<f64>()).log2();
        let best = (0..v).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
        bi_hits += usize::from(best == w[1]);
    }
    let n = (test.len() - 1) as f64;
    (uni_bits / n, bi_bits / n, bi_hits as f64 / n)
}

/// `len` characters the model writes after `prompt`, sampling each from its softmax at
/// temperature 0.6 (seeded).
fn sample(model: &dyn Module, prompt: &str, len: usize, rng: &mut ChaCha8Rng) -> AnyResult<String> {
    let mut codes = encode(prompt)?;
    let alphabet: Vec<char> = ALPHABET.chars().collect();
    no_grad(|| -> AnyResult<()> {
        for _ in 0..len {
            let context: Vec<f32> = codes[codes.len() - CONTEXT..].iter().map(|&c| c as f32).collect();
            let logits = model.forward(&Tensor::from_vec(context, &[1, CONTEXT])?)?;
            let probs = (logits / 0.6).softmax(-1)?.to_f64_vec();
            let mut u: f64 = rng.gen();
            let mut next = probs.len() - 1;
            for (i, p) in probs.iter().enumerate() {
                if u < *p {
                    next = i;
                    break;
                }
                u -= p;
            }
            codes.push(next);
        }
        Ok(())
    })?;
    Ok(codes.iter().map(|&c| alphabet[c]).collect())
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &["chars", "epochs", "batch-size", "hidden", "lr", "patience", "seed", "mode", "resume", "out"],
        &[],
    )?;
    let fast = common::fast_mode();
    let chars: usize = flags.get("chars", if fast { 6000 } else { 60000 })?;
    let batch_size: usize = flags.get("batch-size", 128)?;
    let hidden: usize = flags.get("hidden", 256)?;
    let lr: f64 = flags.get("lr", 0.003)?;
    let seed: u64 = flags.get("seed", 0)?;
    if chars < 10 * CONTEXT {
        return Err(format!("--chars: need at least {} characters", 10 * CONTEXT).into());
    }
    let out = output_dir(&flags, "text")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Training text and held-out text from different seeds of the grammar.
    let train_text = generate_text(chars, &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(2) + 1000));
    let held_text = generate_text(chars / 3, &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(2) + 1001));
    let (train_codes, held_codes) = (encode(&train_text)?, encode(&held_text)?);
    let (val_codes, test_codes) = held_codes.split_at(held_codes.len() / 2);
    let (train, validation, test) = (windows(&train_codes)?, windows(val_codes)?, windows(test_codes)?);
    println!(
        "text: {} training characters, {} validation, {} test (held-out sentences from another seed); \
         {} symbols; e.g. {:?}",
        train_codes.len(),
        val_codes.len(),
        test_codes.len(),
        ALPHABET.len(),
        &train_text[..train_text.char_indices().nth(90).map_or(train_text.len(), |(i, _)| i)]
    );

    let model = Sequential::new()
        .append(EmbeddingConfig::new(ALPHABET.len(), EMBED).init(&mut rng)?)
        .append(Flatten::new(1, -1))
        .append(LinearConfig::new(CONTEXT * EMBED, hidden).init(&mut rng)?)
        .append(Tanh)
        .append(LinearConfig::new(hidden, ALPHABET.len()).init(&mut rng)?);
    let n_params: usize = model.named_parameters().iter().map(|(_, v)| v.numel()).sum();
    println!(
        "model: {CONTEXT} characters → embedding {EMBED} each → linear {} → {hidden} → tanh → linear {}; \
         {n_params} parameters; Adam lr {lr}, batch {batch_size}",
        CONTEXT * EMBED,
        ALPHABET.len()
    );
    let optimizer = Adam::new(model.named_parameters(), AdamConfig::new(lr))?;
    let schedule = Schedule { epochs: if fast { 2 } else { 30 }, batch_size, patience: 4 };
    let mut trainer = classifier_trainer(
        "text",
        model,
        Box::new(optimizer),
        &flags,
        &out,
        schedule,
        &common::process_group(&flags)?,
    )?
    .metrics(&[Metric::Accuracy])
    .rng(rng.clone());
    trainer.fit(&train, Some(&validation))?;
    let model = trainer.model();

    // The test text: sentences never seen, scored once; cross-entropy in bits (/ ln 2).
    let bits = std::f64::consts::LN_2;
    let scored = trainer.evaluate(&test)?;
    let (test_loss, test_acc) = (scored.loss, scored.metrics["accuracy"]);
    let (uni, bi, bi_acc) = count_baselines(&train_codes, test_codes);
    println!("\nheld-out test text ({} characters):", test.len());
    println!(
        "  model:    {:.3} bits/char, next-character accuracy {:.1}%",
        test_loss / bits,
        100.0 * test_acc
    );
    println!(
        "  bigram:   {bi:.3} bits/char, next-character accuracy {:.1}% (counts of the training text)",
        100.0 * bi_acc
    );
    println!("  unigram:  {uni:.3} bits/char (character frequencies alone)");
    let prompt = "the old sailor ";
    let padded = format!("{}{prompt}", " ".repeat(CONTEXT.saturating_sub(prompt.len())));
    println!("\nsample (temperature 0.6): {:?}", sample(model, &padded, 120, &mut rng)?.trim_start());

    println!(
        "wrote {}/{{metrics.jsonl, learning_curves.{{svg,png}}}}, TensorBoard events and checkpoints/",
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("text: {e}");
            ExitCode::FAILURE
        }
    }
}

//! An end-to-end memory network (MemN2N, Sukhbaatar et al. 2015) answers bAbI-style questions
//! with a single supporting fact:
//!
//! ```text
//! Mary moved to the bathroom. John went to the hallway. Mary travelled to the office.
//! Where is Mary?  →  office
//! ```
//!
//! The stories are generated (seeded): 2 to 10 sentences about 4 people moving between 6
//! places, then a question about someone the story mentions; the answer is where that person
//! went last, and that sentence is the supporting fact. The vocabulary is built from the
//! generated text. Test stories are generated first and the training stories avoid them, so
//! the two sets are disjoint. Each sentence is one memory (most recent first, as in the
//! paper) encoded with position and temporal encoding; 3 hops with adjacent weight tying;
//! trained with Adam on the answer's cross-entropy. Reports test accuracy, how often the
//! strongest attention falls on the supporting fact, and prints the attention over the
//! memories at each hop for one test story, marking the supporting fact. Writes the loss and
//! accuracy curves and that story's attention as a heat map.
//!
//! ```text
//! cargo run --release --example memory_network
//! cargo run --release --example memory_network -- --epochs 60 --hops 2 --embed 32 --train-stories 2000
//! cargo run --release --example memory_network -- --mode compiled
//! ```
//! Flags: `--epochs`, `--batch-size`, `--lr`, `--seed`, `--hops`, `--embed`, `--train-stories`,
//! `--test-stories`, `--out DIR`.

mod common;

use common::{heat_maps, line_chart, output_dir, progress, AnyResult, Flags, HeatMap, Series};
use graphgrad::autodiff::compile::compile_if;
use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{MemN2N, MemN2NConfig, Module, Reduction};
use graphgrad::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::process::ExitCode;

const PEOPLE: [&str; 4] = ["Mary", "John", "Sandra", "Daniel"];
const PLACES: [&str; 6] = ["bathroom", "hallway", "kitchen", "garden", "office", "bedroom"];
const VERBS: [&str; 5] = ["moved to", "went to", "journeyed to", "travelled to", "went back to"];
/// Most sentences in a story: the memory size.
const MAX_SENTENCES: usize = 10;
const PAD: &str = "<pad>";

/// One generated story with its question.
#[derive(Clone, Debug)]
struct Story {
    /// Sentences in story order, as text.
    sentences: Vec<String>,
    question: String,
    answer: String,
    /// Index into `sentences` of the fact that answers the question.
    supporting: usize,
}

impl Story {
    fn generate(rng: &mut ChaCha8Rng) -> Story {
        let n = rng.gen_range(2..=MAX_SENTENCES);
        let mut sentences = Vec::with_capacity(n);
        let mut last_seen: Vec<Option<(usize, &str)>> = vec![None; PEOPLE.len()];
        for i in 0..n {
            let who = rng.gen_range(0..PEOPLE.len());
            let place = *PLACES.choose(rng).expect("places");
            let verb = *VERBS.choose(rng).expect("verbs");
            sentences.push(format!("{} {verb} the {place}.", PEOPLE[who]));
            last_seen[who] = Some((i, place));
        }
        let mentioned: Vec<usize> = (0..PEOPLE.len()).filter(|&p| last_seen[p].is_some()).collect();
        let who = *mentioned.choose(rng).expect("the story mentions someone");
        let (supporting, place) = last_seen[who].expect("mentioned");
        Story {
            sentences,
            question: format!("Where is {}?", PEOPLE[who]),
            answer: place.to_string(),
            supporting,
        }
    }

    /// The text that identifies a story (for keeping train and test disjoint).
    fn key(&self) -> String {
        format!("{} {}", self.sentences.join(" "), self.question)
    }
}

/// Lower-case words without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The words of the generated text, `PAD` first (index 0).
struct Vocabulary {
    words: Vec<String>,
}

impl Vocabulary {
    fn build(stories: &[&Story]) -> Vocabulary {
        let mut set = BTreeSet::new();
        for story in stories {
            for text in story.sentences.iter().chain([&story.question, &story.answer]) {
                set.extend(words(text));
            }
        }
        Vocabulary { words: std::iter::once(PAD.to_string()).chain(set).collect() }
    }

    fn index(&self, word: &str) -> AnyResult<usize> {
        self.words
            .iter()
            .position(|w| w == word)
            .ok_or_else(|| format!("word {word:?} is not in the vocabulary").into())
    }

    /// `text` as `len` word indices, padded.
    fn encode(&self, text: &str, len: usize) -> AnyResult<Vec<usize>> {
        let mut ids = words(text).iter().map(|w| self.index(w)).collect::<AnyResult<Vec<_>>>()?;
        if ids.len() > len {
            return Err(format!("{text:?} has more than {len} words").into());
        }
        ids.resize(len, 0);
        Ok(ids)
    }
}

/// Stories as index tensors: story `[batch, MAX_SENTENCES, sentence_len]` (slot 0 = the most
/// recent sentence, empty slots all padding), query `[batch, query_len]`, answers `[batch]`.
struct Encoded {
    story: Vec<usize>,
    query: Vec<usize>,
    answers: Vec<usize>,
}

fn encode(
    vocab: &Vocabulary,
    stories: &[&Story],
    sentence_len: usize,
    query_len: usize,
) -> AnyResult<Encoded> {
    let mut e = Encoded { story: Vec::new(), query: Vec::new(), answers: Vec::new() };
    for s in stories {
        for slot in 0..MAX_SENTENCES {
            match s.sentences.len().checked_sub(slot + 1) {
                Some(i) => e.story.extend(vocab.encode(&s.sentences[i], sentence_len)?),
                None => e.story.extend(std::iter::repeat_n(0, sentence_len)),
            }
        }
        e.query.extend(vocab.encode(&s.question, query_len)?);
        e.answers.push(vocab.index(&s.answer)?);
    }
    Ok(e)
}

/// Memory slot of sentence `i` of a story of `n` sentences (most recent first).
fn slot_of(i: usize, n: usize) -> usize {
    n - 1 - i
}

/// (accuracy, for each hop the fraction of stories whose strongest attention is on the
/// supporting fact, the attention of every hop and story `[hop][story][slot]`).
#[allow(clippy::type_complexity)]
fn evaluate(
    net: &MemN2N,
    vocab: &Vocabulary,
    stories: &[&Story],
    shape: (usize, usize),
) -> AnyResult<(f64, Vec<f64>, Vec<Vec<Vec<f64>>>)> {
    no_grad(|| {
        let e = encode(vocab, stories, shape.0, shape.1)?;
        let out = net.forward_story(&e.story, [stories.len(), MAX_SENTENCES, shape.0], &e.query)?;
        let predicted = out.logits.argmax(-1)?;
        let correct = predicted.iter().zip(&e.answers).filter(|(p, a)| p == a).count();
        let hops: Vec<Vec<Vec<f64>>> = out
            .attention
            .iter()
            .map(|p| p.to_f64_vec().chunks(MAX_SENTENCES).map(<[f64]>::to_vec).collect())
            .collect();
        let n = stories.len() as f64;
        let on_fact = hops
            .iter()
            .map(|hop| {
                let hits = stories
                    .iter()
                    .zip(hop)
                    .filter(|(s, p)| {
                        let best = (0..MAX_SENTENCES).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
                        best == slot_of(s.supporting, s.sentences.len())
                    })
                    .count();
                hits as f64 / n
            })
            .collect();
        Ok((correct as f64 / n, on_fact, hops))
    })
}

fn run() -> AnyResult<()> {
    let flags = Flags::parse(
        &[
            "epochs",
            "batch-size",
            "lr",
            "seed",
            "hops",
            "embed",
            "train-stories",
            "test-stories",
            "mode",
            "out",
        ],
        &[],
    )?;
    let fast = common::fast_mode();
    let epochs: usize = flags.get("epochs", if fast { 2 } else { 40 })?;
    let batch_size: usize = flags.get("batch-size", 32)?;
    let lr: f64 = flags.get("lr", 0.01)?;
    let seed: u64 = flags.get("seed", 0)?;
    let hops: usize = flags.get("hops", 3)?;
    let embed: usize = flags.get("embed", 20)?;
    let n_train: usize = flags.get("train-stories", if fast { 100 } else { 1000 })?;
    let n_test: usize = flags.get("test-stories", if fast { 50 } else { 1000 })?;
    if batch_size == 0 || n_train == 0 || n_test == 0 {
        return Err("--batch-size, --train-stories and --test-stories must be positive".into());
    }
    let out = output_dir(&flags, "memory_network")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Test stories first; training stories are redrawn until they differ from every test one.
    let test: Vec<Story> = (0..n_test).map(|_| Story::generate(&mut rng)).collect();
    let test_keys: HashSet<String> = test.iter().map(Story::key).collect();
    let mut train = Vec::with_capacity(n_train);
    while train.len() < n_train {
        let story = Story::generate(&mut rng);
        if !test_keys.contains(&story.key()) {
            train.push(story);
        }
    }
    let all: Vec<&Story> = train.iter().chain(&test).collect();
    let vocab = Vocabulary::build(&all);
    let sentence_len = all.iter().flat_map(|s| &s.sentences).map(|t| words(t).len()).max().unwrap_or(1);
    let query_len = all.iter().map(|s| words(&s.question).len()).max().unwrap_or(1);
    println!(
        "bAbI-style task (single supporting fact): {} training and {} test stories (disjoint), 2 to {MAX_SENTENCES} sentences each",
        train.len(),
        test.len()
    );
    println!("vocabulary of {} words: {}", vocab.words.len(), vocab.words.join(" "));

    let net = MemN2NConfig::new(vocab.words.len(), embed, MAX_SENTENCES).with_hops(hops).init(&mut rng)?;
    let params = net.named_parameters();
    let n_params: usize = params.iter().map(|(_, v)| v.numel()).sum();
    println!(
        "model: MemN2N, {hops} hops, embedding {embed}, position + temporal encoding, adjacent tying; {n_params} parameters"
    );
    let optimizer = RefCell::new(Adam::new(params.clone(), AdamConfig::new(lr))?);
    // The training step, eager or compiled whole by `--mode`: inputs [story ids, query ids,
    // answer ids].
    let mut train_step = compile_if(common::compiled_mode(&flags)?, |io: &[Tensor]| -> AnyResult<Tensor> {
        let mut optimizer = optimizer.borrow_mut();
        let logits = net.forward_ids(&io[0], &io[1])?.logits;
        let loss = cross_entropy(&logits, &io[2], Reduction::Mean)?;
        optimizer.zero_grad();
        loss.backward()?;
        clip_grad_norm(&params, 40.0)?; // as in the paper
        optimizer.step()?;
        Ok(loss)
    });
    let train_refs: Vec<&Story> = train.iter().collect();
    let test_refs: Vec<&Story> = test.iter().collect();
    let shape = (sentence_len, query_len);

    let (mut loss_curve, mut train_acc_curve, mut test_acc_curve) = (Vec::new(), Vec::new(), Vec::new());
    let bar = progress(epochs as u64, "training");
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&Story> = chunk.iter().map(|&i| &train[i]).collect();
            let e = encode(&vocab, &batch, sentence_len, query_len)?;
            let n = batch.len();
            let inputs = [
                Tensor::from_indices(&e.story, &[n, MAX_SENTENCES, sentence_len])?,
                Tensor::from_indices(&e.query, &[n, e.query.len() / n])?,
                Tensor::from_indices(&e.answers, &[n])?,
            ];
            let loss = train_step.call(&inputs)?[0].item()?;
            loss_sum += loss * n as f64;
            seen += batch.len();
        }
        let (train_acc, _, _) = evaluate(&net, &vocab, &train_refs, shape)?;
        let (test_acc, _, _) = evaluate(&net, &vocab, &test_refs, shape)?;
        let loss = loss_sum / seen as f64;
        loss_curve.push((epoch as f64, loss));
        train_acc_curve.push((epoch as f64, train_acc));
        test_acc_curve.push((epoch as f64, test_acc));
        let message = format!(
            "epoch {epoch:>3}: loss {loss:.4}, train accuracy {:.1}%, test accuracy {:.1}%",
            100.0 * train_acc,
            100.0 * test_acc
        );
        if bar.is_hidden() && (epoch % 5 == 0 || epoch == epochs) {
            // Output to a file or pipe: no bar is drawn, so log a line now and then.
            println!("{message}");
        }
        bar.set_message(message);
        bar.inc(1);
    }
    bar.finish();

    let (test_acc, on_fact, attention) = evaluate(&net, &vocab, &test_refs, shape)?;
    println!("\ntest accuracy {:.2}% on {} unseen stories", 100.0 * test_acc, test.len());
    let per_hop: Vec<String> =
        on_fact.iter().enumerate().map(|(k, f)| format!("hop {}: {:.1}%", k + 1, 100.0 * f)).collect();
    println!("stories whose strongest attention is on the supporting fact: {}", per_hop.join(", "));

    // One test story with at least four sentences, its attention at every hop.
    let shown = test.iter().position(|s| s.sentences.len() >= 4).unwrap_or(0);
    let story = &test[shown];
    let answer = no_grad(|| -> AnyResult<String> {
        let e = encode(&vocab, &[story], sentence_len, query_len)?;
        let logits = net.forward_story(&e.story, [1, MAX_SENTENCES, sentence_len], &e.query)?.logits;
        Ok(vocab.words[logits.argmax(-1)?[0]].clone())
    })?;
    println!("\nattention over the memories for test story {}:", shown + 1);
    let header: String = (1..=hops).map(|k| format!(" hop {k:<2}")).collect();
    println!("  {:<36}{header}", "sentence");
    let n = story.sentences.len();
    for (i, sentence) in story.sentences.iter().enumerate() {
        let weights: String =
            attention.iter().map(|h| format!(" {:>6.3}", h[shown][slot_of(i, n)])).collect();
        let mark = if i == story.supporting { "  ← supporting fact" } else { "" };
        println!("  {:<36}{weights}{mark}", format!("{}. {sentence}", i + 1));
    }
    println!("  {} → predicted: {answer}, answer: {}", story.question, story.answer);

    let map = HeatMap {
        title: format!("{} → {answer} (answer: {})", story.question, story.answer),
        row_labels: story
            .sentences
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}{s}", if i == story.supporting { "★ " } else { "" }))
            .collect(),
        column_labels: (1..=hops).map(|k| format!("hop {k}")).collect(),
        values: (0..n).map(|i| attention.iter().map(|h| h[shown][slot_of(i, n)]).collect()).collect(),
    };
    let attention_svg = out.join("attention.svg");
    heat_maps(&attention_svg, "MemN2N: attention over the story's sentences (★ = supporting fact)", &[map])?;
    let curves = out.join("learning_curves.svg");
    line_chart(
        &curves,
        "MemN2N: training loss",
        "epoch",
        "cross-entropy",
        &[Series { label: "train", points: loss_curve }],
    )?;
    let accuracy = out.join("accuracy.svg");
    line_chart(
        &accuracy,
        "MemN2N: answer accuracy",
        "epoch",
        "accuracy",
        &[
            Series { label: "train", points: train_acc_curve },
            Series { label: "test", points: test_acc_curve },
        ],
    )?;
    println!("\nwrote {}, {} and {}", curves.display(), accuracy.display(), attention_svg.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory_network: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Learning check: an end-to-end memory network (MemN2N) answers a generated bAbI-style
//! single-supporting-fact task on held-out stories.
//!
//! Task (generated like bAbI task 1): a story is 2–10 sentences "X moved to the Y." (verbs
//! moved / went / journeyed / travelled; 6 people, 6 places); the question "Where is X?"
//! asks about a person the story mentions, and the answer is the place of that person's last
//! sentence, so the network must find the right memory among distractors, several of which
//! may mention the same person. 1,000 test stories come from their own seed; 2,000 training
//! stories from another, skipping any that equals a test story.
//!
//! Model: MemN2N with 3 hops, adjacent weight tying, position and temporal encoding, d = 20;
//! sentences are stored most recent first (slot 0 = last sentence, as in the original
//! implementation), so the temporal tables learn "recency"; empty slots are padding sentences,
//! which the network masks. Adam, seeded.

use graphgrad::autodiff::no_grad;
use graphgrad::nn::layers::{MemN2N, MemN2NConfig};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::metrics::predictions;
use graphgrad::nn::{Module, Reduction};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::time::Instant;

const PEOPLE: [&str; 6] = ["mary", "john", "sandra", "daniel", "emma", "omar"];
const PLACES: [&str; 6] = ["bathroom", "hallway", "garden", "office", "bedroom", "kitchen"];
const VERBS: [&str; 4] = ["moved", "went", "journeyed", "travelled"];
const MEMORIES: usize = 10;
/// Words per sentence: "X moved to the Y".
const WORDS: usize = 5;
/// Words per question: "where is X".
const QUESTION_WORDS: usize = 3;
const TRAIN_STORIES: usize = 2000;
const TEST_STORIES: usize = 1000;
const EPOCHS: usize = 30;
const BATCH: usize = 32;
const TEST_ACCURACY: f64 = 0.95;

/// Word indices: 0 is padding, then people, places, verbs and the function words.
struct Vocab;

impl Vocab {
    const PAD: usize = 0;
    const SIZE: usize = 1 + PEOPLE.len() + PLACES.len() + VERBS.len() + 4;
    fn person(i: usize) -> usize {
        1 + i
    }
    fn place(i: usize) -> usize {
        1 + PEOPLE.len() + i
    }
    fn verb(i: usize) -> usize {
        1 + PEOPLE.len() + PLACES.len() + i
    }
    /// "to", "the", "where", "is".
    fn function_word(i: usize) -> usize {
        1 + PEOPLE.len() + PLACES.len() + VERBS.len() + i
    }
}

/// One story: `MEMORIES × WORDS` word indices (most recent sentence first, padding
/// sentences last), the question and the answer word.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Story {
    memories: Vec<usize>,
    question: [usize; QUESTION_WORDS],
    answer: usize,
}

fn random_story(rng: &mut ChaCha8Rng) -> Story {
    let n = rng.gen_range(2..=MEMORIES);
    // (person, place) of each sentence, in story order
    let events: Vec<(usize, usize)> =
        (0..n).map(|_| (rng.gen_range(0..PEOPLE.len()), rng.gen_range(0..PLACES.len()))).collect();
    let &(asked, _) = events.choose(rng).expect("at least two sentences");
    let answer = events.iter().rev().find(|&&(p, _)| p == asked).expect("the asked person appears").1;
    let mut memories = vec![Vocab::PAD; MEMORIES * WORDS];
    for (slot, &(person, place)) in events.iter().rev().enumerate() {
        let verb = Vocab::verb(rng.gen_range(0..VERBS.len()));
        let sentence = [
            Vocab::person(person),
            verb,
            Vocab::function_word(0),
            Vocab::function_word(1),
            Vocab::place(place),
        ];
        memories[slot * WORDS..(slot + 1) * WORDS].copy_from_slice(&sentence);
    }
    let question = [Vocab::function_word(2), Vocab::function_word(3), Vocab::person(asked)];
    Story { memories, question, answer: Vocab::place(answer) }
}

/// Answer logits `[stories, vocab]` for a batch of stories.
fn answer_logits(
    net: &MemN2N,
    stories: &[&Story],
) -> graphgrad::autodiff::Result<graphgrad::autodiff::Tensor> {
    let story: Vec<usize> = stories.iter().flat_map(|s| s.memories.iter().copied()).collect();
    let question: Vec<usize> = stories.iter().flat_map(|s| s.question).collect();
    Ok(net.forward_story(&story, [stories.len(), MEMORIES, WORDS], &question)?.logits)
}

#[test]
fn memn2n_answers_held_out_single_supporting_fact_stories() -> Result<()> {
    let start = Instant::now();
    let mut test_rng = ChaCha8Rng::seed_from_u64(2024);
    let test: Vec<Story> = (0..TEST_STORIES).map(|_| random_story(&mut test_rng)).collect();
    let held_out: HashSet<&Story> = test.iter().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut train = Vec::with_capacity(TRAIN_STORIES);
    while train.len() < TRAIN_STORIES {
        let story = random_story(&mut rng);
        if !held_out.contains(&story) {
            train.push(story);
        }
    }

    let net = MemN2NConfig::new(Vocab::SIZE, 20, MEMORIES).with_hops(3).init(&mut rng)?;
    let mut opt = Adam::new(net.named_parameters(), AdamConfig::new(1e-2))?;
    for _ in 0..EPOCHS {
        let mut order: Vec<&Story> = train.iter().collect();
        order.shuffle(&mut rng);
        for batch in order.chunks(BATCH) {
            let answers: Vec<usize> = batch.iter().map(|s| s.answer).collect();
            opt.zero_grad();
            cross_entropy(&answer_logits(&net, batch)?, &answers, Reduction::Mean)?.backward()?;
            opt.step()?;
        }
    }

    let all: Vec<&Story> = test.iter().collect();
    let predicted = predictions(&no_grad(|| answer_logits(&net, &all))?)?;
    let right = predicted.iter().zip(&test).filter(|(p, s)| **p == s.answer).count();
    let accuracy = right as f64 / TEST_STORIES as f64;
    eprintln!(
        "MemN2N single supporting fact: test accuracy {accuracy:.4} ({right}/{TEST_STORIES}), {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(accuracy >= TEST_ACCURACY, "test accuracy {accuracy:.4} < {TEST_ACCURACY}");
    Ok(())
}

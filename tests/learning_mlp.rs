//! Learning check: a multilayer perceptron trained on the shipped UCI digits (8×8 images as 64
//! features) reaches at least 95% accuracy on a held-out test split.
//!
//! The data are split once, stratified, into train (65%), validation (15%) and test (20%);
//! training sees only the train part, the validation part picks the epoch to keep (early
//! stopping by restoring the best state dict) and the test part is scored once at the end.
//! Every random choice is seeded, so the run and its accuracy are the same every time.

use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::data::{load_digits, Dataset, SplitFractions};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::metrics::accuracy_from_logits;
use graphgrad::nn::{LinearConfig, Module, ReLU, Reduction, Sequential};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const TEST_ACCURACY: f64 = 0.95;
const EPOCHS: usize = 60;
const BATCH: usize = 32;

/// Accuracy of `model` on every sample of `data`, in one batch, without recording a graph.
fn accuracy(model: &dyn Module, data: &Dataset) -> Result<f64> {
    let all = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
    let logits: Tensor = no_grad(|| model.forward(&all.inputs))?;
    Ok(accuracy_from_logits(&logits, all.labels().expect("class labels"))?)
}

#[test]
fn mlp_reaches_95_percent_on_held_out_digits() -> Result<()> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut digits = load_digits()?;
    digits.scale_features(1.0 / 16.0); // pixel counts 0..=16 → [0, 1]
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.2 }, &mut rng)?;

    // 64 → 256 → 10
    let model = Sequential::new()
        .append(LinearConfig::new(64, 256).init(&mut rng)?)
        .append(ReLU)
        .append(LinearConfig::new(256, 10).init(&mut rng)?);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(1e-3))?;

    let (mut best_val, mut best_state) = (0.0, model.state_dict());
    for _ in 0..EPOCHS {
        for batch in split.train.shuffled_batches(BATCH, false, &mut rng)? {
            opt.zero_grad();
            let logits = model.forward(&batch.inputs)?;
            cross_entropy(&logits, batch.labels().expect("class labels"), Reduction::Mean)?.backward()?;
            opt.step()?;
        }
        let val = accuracy(&model, &split.validation)?;
        if val > best_val {
            (best_val, best_state) = (val, model.state_dict());
        }
    }
    model.load_state_dict(&best_state)?;
    let test = accuracy(&model, &split.test)?;
    eprintln!(
        "digits MLP: validation {best_val:.4}, test {test:.4} on {} held-out samples, {:.1} s",
        split.test.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(test >= TEST_ACCURACY, "test accuracy {test:.4} < {TEST_ACCURACY}");
    Ok(())
}

//! The protocol the digits learning checks share: a seeded, stratified train (65%) /
//! validation (15%) / test (20%) split; Adam on shuffled mini-batches of 32; the validation
//! part picks the epoch to keep (its state dict is restored); the test part is scored once.

use graphgrad::autodiff::no_grad;
use graphgrad::nn::data::{load_digits, Dataset, SplitFractions};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::metrics::accuracy_from_logits;
use graphgrad::nn::{Module, Reduction};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 32;

/// Accuracy of `model` on every sample of `data`, in one batch, without recording a graph.
fn accuracy(model: &dyn Module, data: &Dataset) -> Result<f64> {
    let all = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
    let logits = no_grad(|| model.forward(&all.inputs))?;
    Ok(accuracy_from_logits(&logits, all.labels().expect("class labels"))?)
}

/// The shipped digits with pixels scaled to [0, 1], each sample of `feature_shape`, split.
pub fn digits_split(feature_shape: &[usize], rng: &mut ChaCha8Rng) -> Result<(Dataset, Dataset, Dataset)> {
    let mut digits = load_digits()?.with_feature_shape(feature_shape)?;
    digits.scale_features(1.0 / 16.0); // pixel counts 0..=16 → [0, 1]
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.2 }, rng)?;
    Ok((split.train, split.validation, split.test))
}

/// Trains `model` for `epochs` with Adam at `lr`, keeps the epoch with the best validation
/// accuracy, and returns (best validation accuracy, test accuracy).
pub fn train_and_score(
    model: &dyn Module,
    (train, validation, test): &(Dataset, Dataset, Dataset),
    epochs: usize,
    lr: f64,
    rng: &mut ChaCha8Rng,
) -> Result<(f64, f64)> {
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(lr))?;
    let (mut best_val, mut best_state) = (0.0, model.state_dict());
    for _ in 0..epochs {
        for batch in train.shuffled_batches(BATCH, false, rng)? {
            opt.zero_grad();
            let logits = model.forward(&batch.inputs)?;
            cross_entropy(&logits, batch.labels().expect("class labels"), Reduction::Mean)?.backward()?;
            opt.step()?;
        }
        let val = accuracy(model, validation)?;
        if val > best_val {
            (best_val, best_state) = (val, model.state_dict());
        }
    }
    model.load_state_dict(&best_state)?;
    Ok((best_val, accuracy(model, test)?))
}

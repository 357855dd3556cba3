//! Learning check: a small convolutional network trained on the shipped UCI digits, viewed as
//! 1×8×8 images, reaches at least 97% accuracy on a held-out test split.
//!
//! Same protocol as `learning_mlp.rs`: a seeded, stratified train (65%) / validation (15%) /
//! test (20%) split; the validation part picks the epoch to keep; the test part is scored once.
//! The network is LeNet-shaped and sized for 8×8 inputs:
//! conv 1→32 3×3 pad 1, ReLU, max-pool 2 → [32, 4, 4]; conv 32→64 3×3 pad 1, ReLU, max-pool 2
//! → [64, 2, 2]; flatten; linear 256→10.

use graphgrad::autodiff::{no_grad, Tensor};
use graphgrad::nn::data::{load_digits, Dataset, SplitFractions};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::metrics::accuracy_from_logits;
use graphgrad::nn::{Conv2dConfig, Flatten, LinearConfig, MaxPool2d, Module, ReLU, Reduction, Sequential};
use graphgrad::optim::{Adam, AdamConfig, Optimizer, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const TEST_ACCURACY: f64 = 0.97;
const EPOCHS: usize = 40;
const BATCH: usize = 32;

/// Accuracy of `model` on every sample of `data`, in one batch, without recording a graph.
fn accuracy(model: &dyn Module, data: &Dataset) -> Result<f64> {
    let all = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
    let logits: Tensor = no_grad(|| model.forward(&all.inputs))?;
    Ok(accuracy_from_logits(&logits, all.labels().expect("class labels"))?)
}

#[test]
fn cnn_reaches_97_percent_on_held_out_digit_images() -> Result<()> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut digits = load_digits()?.with_feature_shape(&[1, 8, 8])?;
    digits.scale_features(1.0 / 16.0); // pixel counts 0..=16 → [0, 1]
    let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.2 }, &mut rng)?;

    let model = Sequential::new()
        .append(Conv2dConfig::new(1, 32, (3, 3)).with_padding((1, 1)).init(&mut rng)?)
        .append(ReLU)
        .append(MaxPool2d::new((2, 2)))
        .append(Conv2dConfig::new(32, 64, (3, 3)).with_padding((1, 1)).init(&mut rng)?)
        .append(ReLU)
        .append(MaxPool2d::new((2, 2)))
        .append(Flatten::default())
        .append(LinearConfig::new(64 * 2 * 2, 10).init(&mut rng)?);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(2e-3))?;

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
        "digits CNN: validation {best_val:.4}, test {test:.4} on {} held-out samples, {:.1} s",
        split.test.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(test >= TEST_ACCURACY, "test accuracy {test:.4} < {TEST_ACCURACY}");
    Ok(())
}

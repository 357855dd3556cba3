//! Learning check: a small convolutional network trained on the shipped UCI digits, viewed as
//! 1×8×8 images, reaches at least 97% accuracy on a held-out test split.
//!
//! Same protocol as `learning_mlp.rs`: a seeded, stratified train (65%) / validation (15%) /
//! test (20%) split; the validation part picks the epoch to keep; the test part is scored once.
//! The network is LeNet-shaped and sized for 8×8 inputs:
//! conv 1→32 3×3 pad 1, ReLU, max-pool 2 → [32, 4, 4]; conv 32→64 3×3 pad 1, ReLU, max-pool 2
//! → [64, 2, 2]; flatten; linear 256→10.

mod common;

use graphgrad::nn::{Conv2dConfig, Flatten, LinearConfig, MaxPool2d, ReLU, Sequential};
use graphgrad::optim::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const TEST_ACCURACY: f64 = 0.97;
const EPOCHS: usize = 40;

#[test]
fn cnn_reaches_97_percent_on_held_out_digit_images() -> Result<()> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let data = common::digits_split(&[1, 8, 8], &mut rng)?;

    let model = Sequential::new()
        .append(Conv2dConfig::new(1, 32, 3).with_padding(1).init(&mut rng)?)
        .append(ReLU)
        .append(MaxPool2d::new(2))
        .append(Conv2dConfig::new(32, 64, 3).with_padding(1).init(&mut rng)?)
        .append(ReLU)
        .append(MaxPool2d::new(2))
        .append(Flatten::default())
        .append(LinearConfig::new(64 * 2 * 2, 10).init(&mut rng)?);
    let (best_val, test) = common::train_and_score(&model, &data, EPOCHS, 2e-3, &mut rng)?;
    eprintln!(
        "digits CNN: validation {best_val:.4}, test {test:.4} on {} held-out samples, {:.1} s",
        data.2.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(test >= TEST_ACCURACY, "test accuracy {test:.4} < {TEST_ACCURACY}");
    Ok(())
}

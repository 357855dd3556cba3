//! Learning check: a multilayer perceptron trained on the shipped UCI digits (8×8 images as 64
//! features) reaches at least 95% accuracy on a held-out test split.
//!
//! The data are split once, stratified, into train (65%), validation (15%) and test (20%);
//! training sees only the train part, the validation part picks the epoch to keep (early
//! stopping by restoring the best state dict) and the test part is scored once at the end.
//! Every random choice is seeded, so the run and its accuracy are the same every time.

mod common;

use graphgrad::nn::{LinearConfig, ReLU, Sequential};
use graphgrad::optim::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const TEST_ACCURACY: f64 = 0.95;
const EPOCHS: usize = 60;

#[test]
fn mlp_reaches_95_percent_on_held_out_digits() -> Result<()> {
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let data = common::digits_split(&[64], &mut rng)?;

    // 64 → 256 → 10
    let model = Sequential::new()
        .append(LinearConfig::new(64, 256).init(&mut rng)?)
        .append(ReLU)
        .append(LinearConfig::new(256, 10).init(&mut rng)?);
    let (best_val, test) = common::train_and_score(&model, &data, EPOCHS, 1e-3, &mut rng)?;
    eprintln!(
        "digits MLP: validation {best_val:.4}, test {test:.4} on {} held-out samples, {:.1} s",
        data.2.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(test >= TEST_ACCURACY, "test accuracy {test:.4} < {TEST_ACCURACY}");
    Ok(())
}

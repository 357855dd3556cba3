//! Test helpers shared by every crate's tests: seeded random data and one `assert_close`.

use crate::Element;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `len` values uniform in [-1, 1) from a fixed seed.
pub fn random_vec<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| T::from_f64(rng.gen_range(-1.0..1.0))).collect()
}

/// Panics with the worst offending index unless every `|a - b| <= atol + rtol * |b|`
/// (NaN never compares close).
#[track_caller]
pub fn assert_close<T: Element>(actual: &[T], expected: &[T], atol: f64, rtol: f64) {
    assert_eq!(actual.len(), expected.len(), "assert_close: lengths differ");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a.to_f64(), e.to_f64());
        let excess = (a - e).abs() - (atol + rtol * e.abs());
        let bad = excess > 0.0 || a.is_nan() != e.is_nan();
        if bad && worst.is_none_or(|(_, w)| excess > w || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "assert_close: element {i}: actual {} vs expected {} (atol {atol}, rtol {rtol})",
            actual[i], expected[i]
        );
    }
}

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

/// A mutation fuzzer for byte parsers: runs `parse` on `cases` mutants of `valid` (each one
/// to four `mutate` steps from a generator seeded with `seed`) and fails, naming the cases,
/// when any of them panicked. `parse` should return an error for bad bytes, never panic.
pub fn assert_mutants_never_panic(
    name: &str,
    valid: &[u8],
    seed: u64,
    cases: usize,
    mutate: impl Fn(&mut Vec<u8>, &mut ChaCha8Rng),
    parse: impl Fn(&[u8]),
) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut panics = Vec::new();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..cases {
        let mut bytes = valid.to_vec();
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut bytes, &mut rng);
        }
        if catch_unwind(AssertUnwindSafe(|| parse(&bytes))).is_err() {
            panics.push(case);
        }
    }
    std::panic::set_hook(quiet);
    assert!(panics.is_empty(), "{name}: {} of {cases} mutants panicked (cases {panics:?})", panics.len());
}

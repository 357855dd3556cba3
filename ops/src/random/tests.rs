//! Reproducibility and sample statistics of the random fills.

use super::*;
use rand::SeedableRng;

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0))
}

fn f64s<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|v| v.to_f64()).collect()
}

#[test]
fn same_seed_same_values_different_seed_different() {
    fn draws<T: Element>(seed: u64) -> Vec<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = vec![T::ZERO; 3 * 1001];
        fill_uniform(&mut rng, &mut v[..1001], T::from_f64(-2.0), T::from_f64(3.0));
        fill_normal(&mut rng, &mut v[1001..2002], T::ONE, T::from_f64(0.5));
        fill_bernoulli(&mut rng, &mut v[2002..], 0.4);
        v
    }
    assert_eq!(f64s(&draws::<f32>(7)), f64s(&draws::<f32>(7)));
    assert_eq!(f64s(&draws::<f64>(7)), f64s(&draws::<f64>(7)));
    let (a, b) = (draws::<f64>(7), draws::<f64>(8));
    for part in [0..1001, 1001..2002, 2002..3003] {
        assert_ne!(f64s(&a[part.clone()]), f64s(&b[part]));
    }
    // The values are the documented function of the raw ChaCha8 words.
    let mut raw = ChaCha8Rng::seed_from_u64(7);
    let want: Vec<f64> =
        (0..5).map(|_| -2.0 + 5.0 * ((raw.next_u64() >> 11) as f64 / 2f64.powi(53))).collect();
    assert_eq!(f64s(&a[..5]), want);
}

#[test]
fn uniform_stays_in_range_with_right_mean() {
    let n = 1 << 20;
    let mut rng = ChaCha8Rng::seed_from_u64(81);
    let mut v = vec![0.0f32; n];
    fill_uniform(&mut rng, &mut v, -1.5, 2.5);
    assert!(v.iter().all(|&x| (-1.5..2.5).contains(&x)));
    let (m, var) = mean_var(&f64s(&v));
    let se = 4.0 / (12.0 * n as f64).sqrt();
    assert!((m - 0.5).abs() < 5.0 * se, "uniform mean {m}");
    assert!((var - 16.0 / 12.0).abs() < 0.01, "uniform variance {var}");
    // A range of only a few floats: rounding up to `high` must never escape.
    let mut w = vec![0.0f32; 10_000];
    let (lo, hi) = (1.0f32, 1.0f32 + 4.0 * f32::EPSILON);
    fill_uniform(&mut rng, &mut w, lo, hi);
    assert!(w.iter().all(|&x| x >= lo && x < hi));
    let mut d = vec![0.0f64; 10_000];
    fill_uniform(&mut rng, &mut d, 0.0, 1e-300);
    assert!(d.iter().all(|&x| (0.0..1e-300).contains(&x)));
}

#[test]
fn normal_moments_within_five_standard_errors() {
    let n = 1 << 20;
    for (mu, sigma) in [(0.0, 1.0), (3.0, 0.25)] {
        let mut rng = ChaCha8Rng::seed_from_u64(82);
        let mut v = vec![0.0f64; n];
        fill_normal(&mut rng, &mut v, mu, sigma);
        let (m, var) = mean_var(&v);
        let s2 = sigma * sigma;
        assert!((m - mu).abs() < 5.0 * sigma / (n as f64).sqrt(), "normal mean {m}");
        assert!((var - s2).abs() < 5.0 * s2 * (2.0 / (n as f64 - 1.0)).sqrt(), "normal variance {var}");
        // Shape: P(|z| < 1) = 0.682689...
        let p = v.iter().filter(|&&x| ((x - mu) / sigma).abs() < 1.0).count() as f64 / n as f64;
        let q = 0.682_689_492_137_086;
        assert!((p - q).abs() < 5.0 * (q * (1.0 - q) / n as f64).sqrt(), "P(|z|<1) = {p}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(83);
    let mut v = vec![0.0f32; n + 1];
    fill_normal(&mut rng, &mut v, -1.0, 2.0);
    let (m, var) = mean_var(&f64s(&v));
    assert!((m + 1.0).abs() < 5.0 * 2.0 / (n as f64).sqrt(), "f32 normal mean {m}");
    assert!((var - 4.0).abs() < 5.0 * 4.0 * (2.0 / n as f64).sqrt(), "f32 normal variance {var}");
}

#[test]
fn bernoulli_frequency_within_five_standard_errors() {
    let n = 1 << 20;
    let mut rng = ChaCha8Rng::seed_from_u64(84);
    let mut v = vec![0.5f32; n];
    for p in [0.3, 0.0, 1.0, 0.999] {
        fill_bernoulli(&mut rng, &mut v, p);
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
        let freq = v.iter().filter(|&&x| x == 1.0).count() as f64 / n as f64;
        assert!((freq - p).abs() <= 5.0 * (p * (1.0 - p) / n as f64).sqrt(), "p {p}: {freq}");
    }
}

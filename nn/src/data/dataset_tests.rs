//! Tests of `Dataset`: construction checks, batches, seeded shuffles, disjoint splits.

use super::*;
use rand::SeedableRng;
use std::collections::HashSet;

/// Sample i has features [i, 10·i] and label i % 3.
fn toy(n: usize) -> Dataset {
    let features = (0..n).flat_map(|i| [i as f32, 10.0 * i as f32]).collect();
    Dataset::classification(features, &[2], (0..n).map(|i| i % 3).collect()).unwrap()
}

#[test]
fn construction_checks_lengths() {
    assert!(Dataset::classification(vec![0.0; 5], &[2], vec![0, 1]).is_err());
    assert!(Dataset::classification(vec![0.0; 4], &[2], vec![0]).is_err());
    assert!(Dataset::regression(vec![0.0; 4], &[2], vec![0.0; 3], 2).is_err());
    assert!(Dataset::classification(vec![], &[0], vec![]).is_err());
    let ds = toy(5);
    assert_eq!((ds.len(), ds.num_features(), ds.num_classes()), (5, 2, 3));
    assert_eq!(ds.sample_features(3), Some(&[3.0, 30.0][..]));
}

#[test]
fn batches_cover_every_sample_once_and_keep_pairs_together() -> Result<()> {
    let ds = toy(10);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batches: Vec<Batch> = ds.shuffled_batches(4, false, &mut rng)?.collect();
    assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "a seeded shuffle of 10 should move something");
    for b in &batches {
        let x = b.inputs.to_vec::<f32>()?;
        for (row, (&i, &label)) in b.indices.iter().zip(b.labels().unwrap()).enumerate() {
            assert_eq!((x[2 * row], x[2 * row + 1], label), (i as f32, 10.0 * i as f32, i % 3));
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(ds.batches(4, true)?.count(), 2);
    assert_eq!(ds.batches(4, true)?.num_batches(), 2);
    assert!(ds.batches(0, false).is_err());
    Ok(())
}

#[test]
fn same_seed_same_order() -> Result<()> {
    let ds = toy(20);
    let order = |seed| -> Result<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(ds.shuffled_batches(7, false, &mut rng)?.flat_map(|b| b.indices).collect())
    };
    assert_eq!(order(5)?, order(5)?);
    assert_ne!(order(5)?, order(6)?);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = ds.random_batch(6, &mut rng)?;
    assert_eq!(b.indices.iter().collect::<HashSet<_>>().len(), 6, "a random batch has distinct samples");
    assert!(ds.random_batch(21, &mut rng).is_err());
    Ok(())
}

#[test]
fn split_parts_are_disjoint_and_cover_everything() -> Result<()> {
    for (n, validation, test) in
        [(100, 0.15, 0.2), (7, 0.3, 0.3), (1, 0.5, 0.5), (0, 0.1, 0.1), (10, 0.0, 1.0)]
    {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let idx = split_indices(n, SplitFractions { validation, test }, &mut rng)?;
        let (tr, va, te): (HashSet<_>, HashSet<_>, HashSet<_>) =
            (idx.train.iter().collect(), idx.validation.iter().collect(), idx.test.iter().collect());
        assert!(tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te), "n = {n}");
        assert_eq!(tr.len() + va.len() + te.len(), n, "no duplicates and nothing lost");
        assert_eq!(idx.train.len() + idx.validation.len() + idx.test.len(), n);
    }
    // 100 samples, 15% / 20% → 15 validation, 20 test, 65 train
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let split = toy(100).split(SplitFractions { validation: 0.15, test: 0.2 }, &mut rng)?;
    assert_eq!((split.train.len(), split.validation.len(), split.test.len()), (65, 15, 20));
    // Every sample is unique (feature 0 = its index), so disjoint parts share no feature 0.
    let ids = |d: &Dataset| d.features().chunks(2).map(|r| r[0] as usize).collect::<HashSet<_>>();
    let (a, b, c) = (ids(&split.train), ids(&split.validation), ids(&split.test));
    assert!(a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c));
    assert_eq!(a.len() + b.len() + c.len(), 100);
    for bad in [(0.6, 0.6), (-0.1, 0.2), (f64::NAN, 0.1)] {
        assert!(split_indices(10, SplitFractions { validation: bad.0, test: bad.1 }, &mut rng).is_err());
    }
    Ok(())
}

#[test]
fn stratified_split_keeps_class_proportions() -> Result<()> {
    // 30 samples, labels i % 3 → 10 per class; 20% test → 2 per class in test
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let split = toy(30).stratified_split(SplitFractions { validation: 0.1, test: 0.2 }, &mut rng)?;
    let count = |d: &Dataset, c| d.labels().unwrap().iter().filter(|&&l| l == c).count();
    for c in 0..3 {
        assert_eq!((count(&split.train, c), count(&split.validation, c), count(&split.test, c)), (7, 1, 2));
    }
    let ids = |d: &Dataset| d.features().chunks(2).map(|r| r[0] as usize).collect::<HashSet<_>>();
    assert!(ids(&split.train).is_disjoint(&ids(&split.test)));
    Ok(())
}

#[test]
fn regression_batches_and_standardisation() -> Result<()> {
    // features 1, 3 → mean 2, std 1 → standardised −1, 1
    let mut ds = Dataset::regression(vec![1.0, 3.0], &[1], vec![0.5, 1.5, 2.5, 3.5], 2)?;
    let (mean, std) = ds.feature_stats()?;
    assert_eq!((mean, std.clone()), (vec![2.0], vec![1.0]));
    ds.standardize(&[2.0], &std)?;
    assert_eq!(ds.features(), &[-1.0, 1.0]);
    let b = ds.batch(&[1, 0])?;
    assert_eq!(b.values().unwrap().shape(), &[2, 2]);
    assert_eq!(b.values().unwrap().to_vec::<f32>()?, vec![2.5, 3.5, 0.5, 1.5]);
    assert!(b.labels().is_none());
    assert!(ds.batch(&[2]).is_err());
    let images = toy(4).with_feature_shape(&[1, 2, 1])?;
    assert_eq!(images.batch(&[0, 1])?.inputs.shape(), &[2, 1, 2, 1]);
    Ok(())
}

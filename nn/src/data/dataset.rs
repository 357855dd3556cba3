//! `Dataset`: samples held in memory (f32 features + class labels or f32 targets), seeded
//! shuffling, mini-batches and train/validation/test splits.
//!
//! Invariants: `features.len() == len · numel(feature_shape)`; targets hold exactly `len`
//! labels or `len · target_dim` values. Every random choice takes a `ChaCha8Rng`, so the same
//! seed gives the same shuffles, batches and splits on every platform.

use graphgrad_autodiff::{bail, Result, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// What a data set predicts.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class index per sample.
    Classes(Vec<usize>),
    /// `dim` real values per sample, row-major.
    Values {
        /// `len · dim` values.
        data: Vec<f32>,
        /// Values per sample.
        dim: usize,
    },
}

/// The targets of one mini-batch.
#[derive(Clone, Debug)]
pub enum BatchTargets {
    /// Class indices, one per sample.
    Classes(Vec<usize>),
    /// `[batch, dim]` f32 values.
    Values(Tensor),
}

/// A mini-batch: inputs `[batch, ...feature_shape]` (f32) and their targets.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[batch, ...feature_shape]`, f32.
    pub inputs: Tensor,
    /// Labels or values of the same samples, in the same order.
    pub targets: BatchTargets,
    /// The samples' positions in the data set the batch came from.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The class labels, if this is a classification batch.
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            BatchTargets::Classes(labels) => Some(labels),
            BatchTargets::Values(_) => None,
        }
    }

    /// The class labels as an `i64` tensor `[batch]`: the form losses take inside a compiled
    /// step, where each call reads new labels. An error for a regression batch.
    pub fn label_tensor(&self) -> Result<Tensor> {
        match &self.targets {
            BatchTargets::Classes(labels) => Tensor::from_indices(labels, &[labels.len()]),
            BatchTargets::Values(_) => {
                bail!("Batch::label_tensor", "a regression batch has values, not class labels")
            }
        }
    }

    /// The target values `[batch, dim]`, if this is a regression batch.
    pub fn values(&self) -> Option<&Tensor> {
        match &self.targets {
            BatchTargets::Values(values) => Some(values),
            BatchTargets::Classes(_) => None,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True for a batch of no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Samples held in memory: f32 features of a fixed per-sample shape, and targets.
///
/// ```
/// use graphgrad_nn::data::Dataset;
/// use rand::SeedableRng;
/// // four samples of two features, two classes
/// let ds = Dataset::classification(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[2], vec![0, 1, 1, 0])?;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// for batch in ds.shuffled_batches(3, false, &mut rng)? {
///     assert_eq!(batch.inputs.shape()[1], 2); // [batch, 2]
///     assert_eq!(batch.labels().unwrap().len(), batch.len());
/// }
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    feature_shape: Vec<usize>,
    targets: Targets,
}

/// Fractions of a data set for [`Dataset::split`]; train gets what the others leave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitFractions {
    /// Fraction held out for validation.
    pub validation: f64,
    /// Fraction held out for testing.
    pub test: f64,
}

/// Disjoint index sets that together cover `0..n` once.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitIndices {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub validation: Vec<usize>,
    /// Test samples.
    pub test: Vec<usize>,
}

/// A data set divided into training, validation and test parts with no sample in two parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training part.
    pub train: Dataset,
    /// Validation part (may be empty).
    pub validation: Dataset,
    /// Test part (may be empty).
    pub test: Dataset,
}

/// A label read from a file as a class index: a non-negative integer of at most 2^53 (the
/// integers f64 holds exactly), or `None`.
pub(crate) fn class_index(value: f64) -> Option<usize> {
    const LARGEST: f64 = (1u64 << 53) as f64;
    ((0.0..=LARGEST).contains(&value) && value.fract() == 0.0).then_some(value as usize)
}

impl Dataset {
    /// A classification data set: `features` row-major, `feature_shape` per sample (for example
    /// `[64]` or `[1, 8, 8]`), one label per sample.
    pub fn classification(
        features: Vec<f32>,
        feature_shape: &[usize],
        labels: Vec<usize>,
    ) -> Result<Dataset> {
        Dataset::new(features, feature_shape, Targets::Classes(labels))
    }

    /// A regression data set with `target_dim` values per sample.
    pub fn regression(
        features: Vec<f32>,
        feature_shape: &[usize],
        targets: Vec<f32>,
        target_dim: usize,
    ) -> Result<Dataset> {
        Dataset::new(features, feature_shape, Targets::Values { data: targets, dim: target_dim })
    }

    /// A data set from features and any [`Targets`] (checked for consistent lengths).
    pub fn new(features: Vec<f32>, feature_shape: &[usize], targets: Targets) -> Result<Dataset> {
        let per_sample = match graphgrad_ops::checked_numel(feature_shape) {
            Some(0) => bail!("Dataset", "feature shape {feature_shape:?} has no elements"),
            Some(n) => n,
            None => bail!("Dataset", "feature shape {feature_shape:?} has more elements than memory holds"),
        };
        if features.len().rem_euclid(per_sample) != 0 {
            bail!(
                "Dataset",
                "{} feature values do not divide into samples of shape {feature_shape:?}",
                features.len()
            );
        }
        let len = features.len() / per_sample;
        match &targets {
            Targets::Classes(labels) if labels.len() != len => {
                bail!("Dataset", "{len} samples but {} labels", labels.len())
            }
            Targets::Classes(labels) if labels.contains(&usize::MAX) => {
                bail!("Dataset", "label {} is not a class index (num_classes would overflow)", usize::MAX)
            }
            Targets::Values { dim: 0, .. } => bail!("Dataset", "target dimension must be positive"),
            Targets::Values { data, dim } if len.checked_mul(*dim) != Some(data.len()) => {
                bail!("Dataset", "{len} samples need {dim} target values each, got {}", data.len())
            }
            _ => {}
        }
        Ok(Dataset { features, feature_shape: feature_shape.to_vec(), targets })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.len() / self.num_features()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Feature values per sample.
    pub fn num_features(&self) -> usize {
        self.feature_shape.iter().product()
    }

    /// Shape of one sample's features.
    pub fn feature_shape(&self) -> &[usize] {
        &self.feature_shape
    }

    /// The same samples viewed with another per-sample shape of the same size (for example
    /// `[64]` → `[1, 8, 8]` for a convolutional network).
    pub fn with_feature_shape(mut self, shape: &[usize]) -> Result<Dataset> {
        if shape.iter().product::<usize>() != self.num_features() {
            bail!(
                "Dataset::with_feature_shape",
                "cannot view samples of shape {:?} as {shape:?}",
                self.feature_shape
            );
        }
        self.feature_shape = shape.to_vec();
        Ok(self)
    }

    /// All features, row-major `[len, ...feature_shape]`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// Mutable features, for preprocessing in place (scaling, normalisation).
    pub fn features_mut(&mut self) -> &mut [f32] {
        &mut self.features
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Class labels, for a classification data set.
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            Targets::Classes(labels) => Some(labels),
            Targets::Values { .. } => None,
        }
    }

    /// `1 + the largest label` (0 for an empty or regression data set).
    pub fn num_classes(&self) -> usize {
        // labels are below usize::MAX (checked when the data set is made)
        self.labels().and_then(|l| l.iter().max()).map_or(0, |m| m + 1)
    }

    /// The features of sample `i`.
    pub fn sample_features(&self, i: usize) -> Option<&[f32]> {
        let n = self.num_features();
        // below len, i·n and (i + 1)·n are within the features
        (i < self.len()).then(|| &self.features[i * n..(i + 1) * n])
    }

    /// Multiplies every feature by `factor` (e.g. `1/16` for the digits' 0..16 pixels).
    pub fn scale_features(&mut self, factor: f32) {
        self.features.iter_mut().for_each(|v| *v *= factor);
    }

    /// Per-feature mean and standard deviation over the samples (population std), to fit on a
    /// training set and [`standardize`](Dataset::standardize) every split with.
    pub fn feature_stats(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        if self.is_empty() {
            bail!("Dataset::feature_stats", "no samples");
        }
        let (n, d) = (self.len() as f64, self.num_features());
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for row in self.features.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| ((s / n - m * m).max(0.0)).sqrt() as f32).collect();
        Ok((mean.into_iter().map(|m| m as f32).collect(), std))
    }

    /// `(x − mean) / std` per feature; a feature with std 0 is only centred. Means must be
    /// finite and standard deviations finite and non-negative.
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        let d = self.num_features();
        if mean.len() != d || std.len() != d {
            bail!("Dataset::standardize", "{} means and {} stds for {d} features", mean.len(), std.len());
        }
        if let Some(j) = (0..d).find(|&j| !(mean[j].is_finite() && std[j].is_finite() && std[j] >= 0.0)) {
            bail!(
                "Dataset::standardize",
                "feature {j}: mean {:?} must be finite and std {:?} finite and >= 0",
                mean[j],
                std[j]
            );
        }
        for row in self.features.chunks_exact_mut(d) {
            for ((v, &m), &s) in row.iter_mut().zip(mean).zip(std) {
                *v = if s > 0.0 { (*v - m) / s } else { *v - m };
            }
        }
        Ok(())
    }

    /// A new data set of the samples at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            bail!("Dataset::subset", "index {bad} is out of range for {} samples", self.len());
        }
        let d = self.num_features();
        let features =
            indices.iter().flat_map(|&i| self.features[i * d..(i + 1) * d].iter().copied()).collect();
        let targets = match &self.targets {
            Targets::Classes(labels) => Targets::Classes(indices.iter().map(|&i| labels[i]).collect()),
            Targets::Values { data, dim } => Targets::Values {
                data: indices.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect(),
                dim: *dim,
            },
        };
        Ok(Dataset { features, feature_shape: self.feature_shape.clone(), targets })
    }

    /// The samples at `indices` as one batch (errors on an index out of range).
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let part = self.subset(indices)?;
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.feature_shape);
        let inputs = Tensor::from_vec(part.features, &shape)?;
        let targets = match part.targets {
            Targets::Classes(labels) => BatchTargets::Classes(labels),
            Targets::Values { data, dim } => {
                BatchTargets::Values(Tensor::from_vec(data, &[indices.len(), dim])?)
            }
        };
        Ok(Batch { inputs, targets, indices: indices.to_vec() })
    }

    /// Batches of `batch_size` samples in data-set order; the last one is smaller unless
    /// `drop_last`.
    pub fn batches(&self, batch_size: usize, drop_last: bool) -> Result<Batches<'_>> {
        Batches::new(self, (0..self.len()).collect(), batch_size, drop_last)
    }

    /// One epoch of batches in a random order drawn from `rng` (every sample once).
    pub fn shuffled_batches(
        &self,
        batch_size: usize,
        drop_last: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Batches<'_>> {
        Batches::new(self, shuffled_indices(self.len(), rng), batch_size, drop_last)
    }

    /// `batch_size` distinct samples drawn at random (errors when there are fewer samples).
    pub fn random_batch(&self, batch_size: usize, rng: &mut ChaCha8Rng) -> Result<Batch> {
        if batch_size == 0 || batch_size > self.len() {
            bail!("Dataset::random_batch", "batch size {batch_size} must be in 1..={}", self.len());
        }
        let indices = rand::seq::index::sample(rng, self.len(), batch_size).into_vec();
        self.batch(&indices)
    }

    /// The same samples in a random order.
    pub fn shuffled(&self, rng: &mut ChaCha8Rng) -> Dataset {
        self.subset(&shuffled_indices(self.len(), rng))
            .expect("internal invariant: a permutation is in range")
    }

    /// Divides the samples at random into train, validation and test parts (see
    /// [`split_indices`]); no sample appears in two parts.
    pub fn split(&self, fractions: SplitFractions, rng: &mut ChaCha8Rng) -> Result<Split> {
        let idx = split_indices(self.len(), fractions, rng)?;
        Ok(Split {
            train: self.subset(&idx.train)?,
            validation: self.subset(&idx.validation)?,
            test: self.subset(&idx.test)?,
        })
    }

    /// Like [`split`](Dataset::split) but within each class, so every part keeps the class
    /// proportions (each class is split with the same fractions and rounding).
    pub fn stratified_split(&self, fractions: SplitFractions, rng: &mut ChaCha8Rng) -> Result<Split> {
        let Some(labels) = self.labels() else {
            bail!("Dataset::stratified_split", "needs class labels; this data set has real-valued targets");
        };
        let mut all = SplitIndices { train: vec![], validation: vec![], test: vec![] };
        for class in 0..self.num_classes() {
            let members: Vec<usize> = (0..self.len()).filter(|&i| labels[i] == class).collect();
            let part = split_indices(members.len(), fractions, rng)?;
            all.train.extend(part.train.iter().map(|&i| members[i]));
            all.validation.extend(part.validation.iter().map(|&i| members[i]));
            all.test.extend(part.test.iter().map(|&i| members[i]));
        }
        for part in [&mut all.train, &mut all.validation, &mut all.test] {
            part.shuffle(rng);
        }
        Ok(Split {
            train: self.subset(&all.train)?,
            validation: self.subset(&all.validation)?,
            test: self.subset(&all.test)?,
        })
    }
}

/// A random permutation of `0..n` (Fisher–Yates, driven by `rng`).
pub fn shuffled_indices(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
}

/// A random partition of `0..n`: `round(n·test)` test and `round(n·validation)` validation
/// indices, the rest for training. Errors unless both fractions are in `[0, 1]` and sum to
/// at most 1. The three parts are disjoint and together cover every index exactly once.
pub fn split_indices(n: usize, fractions: SplitFractions, rng: &mut ChaCha8Rng) -> Result<SplitIndices> {
    let SplitFractions { validation, test } = fractions;
    let valid = |f: f64| (0.0..=1.0).contains(&f);
    if !valid(validation) || !valid(test) || validation + test > 1.0 {
        bail!(
            "split",
            "fractions validation {validation} and test {test} must be in [0, 1] and sum to at most 1"
        );
    }
    let n_test = ((n as f64) * test).round() as usize;
    let n_val = (((n as f64) * validation).round() as usize).min(n - n_test.min(n));
    let order = shuffled_indices(n, rng);
    let (test_part, rest) = order.split_at(n_test.min(n));
    let (val_part, train_part) = rest.split_at(n_val);
    Ok(SplitIndices { train: train_part.to_vec(), validation: val_part.to_vec(), test: test_part.to_vec() })
}

/// An iterator of mini-batches over an order of sample indices.
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    position: usize,
}

impl<'a> Batches<'a> {
    fn new(data: &'a Dataset, order: Vec<usize>, batch_size: usize, drop_last: bool) -> Result<Batches<'a>> {
        if batch_size == 0 {
            bail!("Dataset::batches", "batch size must be positive");
        }
        Ok(Batches { data, order, batch_size, drop_last, position: 0 })
    }

    /// Number of batches the iterator yields in total.
    pub fn num_batches(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let remaining = self.order.len() - self.position;
        if remaining == 0 || (self.drop_last && remaining < self.batch_size) {
            return None;
        }
        let take = remaining.min(self.batch_size);
        let indices = &self.order[self.position..self.position + take];
        self.position += take;
        Some(self.data.batch(indices).expect("internal invariant: batch indices come from 0..len"))
    }
}

#[cfg(test)]
#[path = "dataset_tests.rs"]
mod tests;

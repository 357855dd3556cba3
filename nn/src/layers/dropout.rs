//! `Dropout`: inverted dropout (PyTorch's `nn.Dropout`), active only in training mode.
//!
//! The layer owns its random stream (a [`Generator`] seeded from the rng given to `init`), so a
//! model built from one seed drops the same elements run after run, and a compiled step draws a
//! new mask at every call: the same masks as an eager run from the same seed.

use crate::{Module, Visitor};
use graphgrad_autodiff::{bail, Flag, Generator, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Configuration of a [`Dropout`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutConfig {
    /// Probability of zeroing an element (default 0.5).
    pub p: f64,
}

impl DropoutConfig {
    /// Drops each element with probability `p`.
    pub fn new(p: f64) -> DropoutConfig {
        DropoutConfig { p }
    }

    /// Creates the layer, in training mode, with a random stream seeded from `rng`.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&self.p) {
            bail!("Dropout", "probability must be in [0, 1], got {}", self.p);
        }
        Ok(Dropout { p: self.p, training: Flag::new(true), generator: Generator::new(rng.gen()) })
    }
}

impl Default for DropoutConfig {
    fn default() -> Self {
        DropoutConfig { p: 0.5 }
    }
}

/// In training, zeroes each element with probability `p` and scales the others by
/// 1/(1 − p), so the expected output equals the input; in eval mode, the identity.
///
/// # Shapes
/// - input: any shape
/// - output: the input's shape
///
/// ```
/// use graphgrad_nn::{DropoutConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let dropout = DropoutConfig::new(0.5).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let x = Tensor::ones(&[4, 4], DType::F32)?;
/// let y = dropout.forward(&x)?; // each value is 0 or 2
/// assert!(y.to_vec::<f32>()?.iter().all(|&v| v == 0.0 || v == 2.0));
/// dropout.set_training(false);
/// assert_eq!(dropout.forward(&x)?.to_vec::<f32>()?, x.to_vec::<f32>()?);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f64,
    training: Flag,
    generator: Generator,
}

impl Dropout {
    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.get()
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.dropout(self.p, self.training.get(), &self.generator)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.mode(&self.training);
        v.random_stream("generator", &self.generator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphgrad_autodiff::DType;
    use rand::SeedableRng;

    fn layer(p: f64, seed: u64) -> Dropout {
        DropoutConfig::new(p).init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn training_drops_and_scales() {
        // p = 0.25: kept values are 1/(1 − 0.25) = 4/3, about a quarter are zero
        let x = Tensor::ones(&[100, 100], DType::F64).unwrap();
        let d = layer(0.25, 1);
        assert!(d.is_training());
        let y = d.forward(&x).unwrap().to_f64_vec();
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-12));
        assert!((zeros as f64 / 1e4 - 0.25).abs() < 0.02, "{zeros} zeros");
        // the mean is preserved in expectation
        let mean = y.iter().sum::<f64>() / 1e4;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        // two calls draw different masks; the same seed repeats them
        let y2 = d.forward(&x).unwrap().to_f64_vec();
        assert_ne!(y, y2);
        assert_eq!(layer(0.25, 1).forward(&x).unwrap().to_f64_vec(), y);
    }

    #[test]
    fn gradient_follows_mask() {
        // y = m ⊙ x / (1 − p), so dL/dx for L = Σ y is the scaled mask itself
        let x = Tensor::full(&[50], 3.0, DType::F64).unwrap().requires_grad_();
        let d = layer(0.5, 2);
        let y = d.forward(&x).unwrap();
        y.sum_all().backward().unwrap();
        let mask: Vec<f64> = y.to_f64_vec().iter().map(|v| v / 3.0).collect();
        assert_eq!(x.grad().unwrap().to_f64_vec(), mask);
    }

    #[test]
    fn eval_is_identity_and_bad_p_rejected() {
        let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3]).unwrap();
        let d = layer(0.9, 3);
        d.set_training(false);
        assert_eq!(d.forward(&x).unwrap().to_vec::<f32>().unwrap(), vec![1.0, -2.0, 3.0]);
        // p = 1 in training zeroes everything, p = 0 is the identity
        assert!(layer(1.0, 0).forward(&x).unwrap().to_f64_vec().iter().all(|&v| v == 0.0));
        assert_eq!(layer(0.0, 0).forward(&x).unwrap().to_vec::<f32>().unwrap(), vec![1.0, -2.0, 3.0]);
        assert!(DropoutConfig::new(1.5).init(&mut ChaCha8Rng::seed_from_u64(0)).is_err());
        assert!(DropoutConfig::new(-0.1).init(&mut ChaCha8Rng::seed_from_u64(0)).is_err());
    }
}

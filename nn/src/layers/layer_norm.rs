//! `LayerNorm`: normalisation over the trailing axes of each sample (PyTorch's
//! `nn.LayerNorm`): y = (x − mean) / √(var + eps) · weight + bias, with the biased variance.

use crate::{Module, Visitor};
use graphgrad_autodiff::{bail, DType, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Configuration of a [`LayerNorm`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// The trailing shape normalised over (often just `[features]`).
    pub normalized_shape: Vec<usize>,
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Whether there is a learnable per-element weight (default true).
    pub elementwise_affine: bool,
    /// Whether there is a learnable bias, when affine (default true).
    pub bias: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl LayerNormConfig {
    /// Normalises over the trailing `normalized_shape`, with PyTorch's defaults.
    pub fn new(normalized_shape: &[usize]) -> LayerNormConfig {
        LayerNormConfig {
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
            dtype: DType::F32,
        }
    }

    /// Sets eps.
    pub fn with_eps(mut self, eps: f64) -> LayerNormConfig {
        self.eps = eps;
        self
    }

    /// Sets whether there are a learnable weight and bias.
    pub fn with_elementwise_affine(mut self, affine: bool) -> LayerNormConfig {
        self.elementwise_affine = affine;
        self
    }

    /// Sets whether there is a learnable bias.
    pub fn with_bias(mut self, bias: bool) -> LayerNormConfig {
        self.bias = bias;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> LayerNormConfig {
        self.dtype = dtype;
        self
    }

    /// Creates the layer: weight ones, bias zeros (`rng` is unused; taken for uniformity).
    pub fn init(&self, _rng: &mut ChaCha8Rng) -> Result<LayerNorm> {
        let shape = &self.normalized_shape;
        if shape.is_empty() || shape.contains(&0) {
            bail!("LayerNorm", "normalized_shape must be non-empty with positive sizes, got {shape:?}");
        }
        if self.eps < 0.0 || self.eps.is_nan() {
            bail!("LayerNorm", "eps must be non-negative, got {}", self.eps);
        }
        let affine = self.elementwise_affine;
        Ok(LayerNorm {
            normalized_shape: shape.clone(),
            eps: self.eps,
            weight: affine
                .then(|| Tensor::ones(shape, self.dtype).map(|t| Var::new("weight", &t)))
                .transpose()?,
            bias: (affine && self.bias)
                .then(|| Tensor::zeros(shape, self.dtype).map(|t| Var::new("bias", &t)))
                .transpose()?,
        })
    }
}

/// Normalises each sample over its trailing `normalized_shape` axes.
///
/// # Shapes
/// - input: `[*, normalized_shape...]`
/// - output: the input's shape
/// - `weight`, `bias`: `normalized_shape`
///
/// ```
/// use graphgrad_nn::{LayerNormConfig, Module};
/// use graphgrad_autodiff::Tensor;
/// use rand::SeedableRng;
/// let ln = LayerNormConfig::new(&[2]).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// // [1, 3]: mean 2, variance 1 → [−1, 1]/√(1 + 1e-5)
/// let y = ln.forward(&Tensor::from_vec(vec![1.0f32, 3.0], &[1, 2])?)?;
/// assert!((y.to_vec::<f32>()?[1] - 1.0).abs() < 1e-4);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// The trailing shape normalised over.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f64,
    /// Per-element scale, when affine.
    pub weight: Option<Var>,
    /// Per-element shift, when affine with bias.
    pub bias: Option<Var>,
}

impl Module for LayerNorm {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.layer_norm(&self.normalized_shape, self.weight.as_deref(), self.bias.as_deref(), self.eps)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        if let Some(weight) = &self.weight {
            v.parameter("weight", weight);
        }
        if let Some(bias) = &self.bias {
            v.parameter("bias", bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_module_gradients;
    use graphgrad_ops::testing::{assert_close, random_vec};
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0)
    }

    #[test]
    fn matches_reference_over_trailing_axes() {
        // normalise [*, 3, 4] over the last two axes (12 elements per sample)
        let ln = LayerNormConfig::new(&[3, 4]).with_dtype(DType::F64).init(&mut rng()).unwrap();
        let (w, b) = (random_vec::<f64>(12, 1), random_vec::<f64>(12, 2));
        ln.weight.as_ref().unwrap().set(&Tensor::from_vec(w.clone(), &[3, 4]).unwrap()).unwrap();
        ln.bias.as_ref().unwrap().set(&Tensor::from_vec(b.clone(), &[3, 4]).unwrap()).unwrap();
        let x = Tensor::from_vec(random_vec::<f64>(2 * 12, 3), &[2, 3, 4]).unwrap();
        let xv = x.to_f64_vec();
        let mut expected = Vec::new();
        for sample in xv.chunks(12) {
            let mean = sample.iter().sum::<f64>() / 12.0;
            let var = sample.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0;
            for (k, v) in sample.iter().enumerate() {
                expected.push((v - mean) / (var + 1e-5).sqrt() * w[k] + b[k]);
            }
        }
        assert_close(&ln.forward(&x).unwrap().to_f64_vec(), &expected, 1e-10, 1e-10);
        check_module_gradients(&ln, &x);
    }

    #[test]
    fn hand_computed_without_affine() {
        // [2, 4, 6]: mean 4, biased variance 8/3; eps 0 → [−2, 0, 2]/√(8/3)
        let ln =
            LayerNormConfig::new(&[3]).with_eps(0.0).with_elementwise_affine(false).with_dtype(DType::F64);
        let ln = ln.init(&mut rng()).unwrap();
        assert!(ln.named_parameters().is_empty());
        let y = ln.forward(&Tensor::from_vec(vec![2.0f64, 4.0, 6.0], &[3]).unwrap()).unwrap();
        let s = (8.0f64 / 3.0).sqrt();
        assert_close(&y.to_f64_vec(), &[-2.0 / s, 0.0, 2.0 / s], 1e-12, 1e-12);
        let x = Tensor::from_vec(random_vec::<f64>(8, 4), &[2, 4]).unwrap();
        let plain = LayerNormConfig::new(&[4]).with_elementwise_affine(false).with_dtype(DType::F64);
        check_module_gradients(&plain.init(&mut rng()).unwrap(), &x);
    }

    #[test]
    fn defaults_and_errors() {
        let ln = LayerNormConfig::new(&[5]).with_bias(false).init(&mut rng()).unwrap();
        let names: Vec<String> = ln.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight"]);
        assert_eq!(ln.weight.as_ref().unwrap().to_f64_vec(), vec![1.0; 5]);
        assert!(ln.forward(&Tensor::zeros(&[2, 4], DType::F32).unwrap()).is_err());
        assert!(LayerNormConfig::new(&[]).init(&mut rng()).is_err());
        assert!(LayerNormConfig::new(&[3]).with_eps(-1.0).init(&mut rng()).is_err());
    }
}

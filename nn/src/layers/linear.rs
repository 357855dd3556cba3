//! `Linear`: the affine map y = x·Wᵀ + b (PyTorch's `nn.Linear`).
//!
//! The weight is stored `[out_features, in_features]` as in PyTorch; the product uses the
//! transposed-operand matmul, so no transpose is materialised.

use crate::init;
use crate::{Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Configuration of a [`Linear`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearConfig {
    /// Size of each input sample.
    pub in_features: usize,
    /// Size of each output sample.
    pub out_features: usize,
    /// Whether to add a learnable bias (default true).
    pub bias: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl LinearConfig {
    /// A layer mapping `in_features` to `out_features`, with bias, in f32.
    pub fn new(in_features: usize, out_features: usize) -> LinearConfig {
        LinearConfig { in_features, out_features, bias: true, dtype: DType::F32 }
    }

    /// Sets whether the layer has a bias.
    pub fn with_bias(mut self, bias: bool) -> LinearConfig {
        self.bias = bias;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> LinearConfig {
        self.dtype = dtype;
        self
    }

    /// Creates the layer with PyTorch's default initialisation: weight and bias from
    /// U(−1/√in_features, 1/√in_features).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Linear> {
        if self.in_features == 0 || self.out_features == 0 {
            bail!(
                "Linear",
                "in_features and out_features must be positive, got {} and {}",
                self.in_features,
                self.out_features
            );
        }
        let shape = [self.out_features, self.in_features];
        graphgrad_autodiff::reported_as("Linear", || {
            let weight = init::default_uniform(&shape, self.in_features, self.dtype, rng)?;
            let bias = if self.bias {
                Some(init::default_uniform(&[self.out_features], self.in_features, self.dtype, rng)?)
            } else {
                None
            };
            Linear::from_tensors(&weight, bias.as_ref())
        })
    }
}

/// Applies y = x·Wᵀ + b to the last axis of the input.
///
/// # Shapes
/// - input: `[*, in_features]` (any number of leading axes, including none)
/// - output: `[*, out_features]`
/// - `weight`: `[out_features, in_features]`, `bias`: `[out_features]`
///
/// ```
/// use graphgrad_nn::{LinearConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let layer = LinearConfig::new(3, 2).init(&mut rng)?;
/// let x = Tensor::ones(&[4, 3], DType::F32)?;
/// let y = layer.forward(&x)?; // y: [batch 4, out 2]
/// assert_eq!(y.shape(), &[4, 2]);
/// let names: Vec<String> = layer.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Var,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Var>,
}

impl Linear {
    /// `in_features → out_features` with a bias, initialised as PyTorch's `nn.Linear(in, out)`
    /// from `rng`: the shortcut for `LinearConfig::new(in, out).init(rng)`.
    ///
    /// ```
    /// use graphgrad_nn::Linear;
    /// use rand::SeedableRng;
    /// let layer = Linear::new(784, 10, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
    /// assert_eq!(layer.weight.shape(), &[10, 784]);
    /// # Ok::<(), graphgrad_autodiff::Error>(())
    /// ```
    pub fn new(in_features: usize, out_features: usize, rng: &mut ChaCha8Rng) -> Result<Linear> {
        LinearConfig::new(in_features, out_features).init(rng)
    }

    /// A layer holding copies of the given weight `[out, in]` and optional bias `[out]`.
    pub fn from_tensors(weight: &Tensor, bias: Option<&Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            bail!("Linear", "weight must be [out_features, in_features], got {:?}", weight.shape());
        }
        if let Some(b) = bias {
            if b.shape() != [weight.shape()[0]] {
                return Err(Error::ShapeMismatch {
                    op: "Linear",
                    lhs: weight.shape().into(),
                    rhs: b.shape().into(),
                });
            }
        }
        Ok(Linear { weight: Var::new("weight", weight), bias: bias.map(|b| Var::new("bias", b)) })
    }

    /// Size of each input sample.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Size of each output sample.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let in_features = self.in_features();
        if input.rank() == 0 || input.shape()[input.rank() - 1] != in_features {
            return Err(Error::ShapeMismatch {
                op: "Linear",
                lhs: input.shape().into(),
                rhs: self.weight.shape().into(),
            });
        }
        // A single sample [in] is treated as a batch of one, then squeezed back.
        let x = if input.rank() == 1 { input.unsqueeze(0)? } else { input.clone() };
        // y: [*, out] = x: [*, in] · Wᵀ: [in, out]
        let mut y = x.matmul_with(&self.weight, false, true)?;
        if let Some(b) = &self.bias {
            y = y.add(b)?;
        }
        if input.rank() == 1 {
            y = y.squeeze(0)?;
        }
        Ok(y)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.parameter("weight", &self.weight);
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

    #[test]
    fn forward_matches_reference_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let layer = LinearConfig::new(5, 3).with_dtype(DType::F64).init(&mut rng).unwrap();
        let x = Tensor::from_vec(random_vec::<f64>(2 * 4 * 5, 2), &[2, 4, 5]).unwrap();
        let y = layer.forward(&x).unwrap();
        assert_eq!(y.shape(), &[2, 4, 3]);
        let (xv, w, b) =
            (x.to_f64_vec(), layer.weight.to_f64_vec(), layer.bias.as_ref().unwrap().to_f64_vec());
        let mut expected = vec![0.0; 8 * 3];
        for r in 0..8 {
            for o in 0..3 {
                expected[r * 3 + o] = b[o] + (0..5).map(|i| xv[r * 5 + i] * w[o * 5 + i]).sum::<f64>();
            }
        }
        assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-12);
        // a single sample [5] gives [3], equal to the first row
        let y1 = layer
            .forward(&x.narrow(0, 0, 1).unwrap().narrow(1, 0, 1).unwrap().reshape(&[5]).unwrap())
            .unwrap();
        assert_eq!(y1.shape(), &[3]);
        assert_close(&y1.to_f64_vec(), &expected[..3], 1e-12, 1e-12);
    }

    #[test]
    fn hand_computed_values() {
        // W = [[1, 2], [3, 4], [5, 6]], b = [0.5, -1, 0], x = [1, -1]:
        // y = [1 - 2 + 0.5, 3 - 4 - 1, 5 - 6 + 0] = [-0.5, -2, -1]
        let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        let b = Tensor::from_vec(vec![0.5f64, -1.0, 0.0], &[3]).unwrap();
        let layer = Linear::from_tensors(&w, Some(&b)).unwrap();
        let y = layer.forward(&Tensor::from_vec(vec![1.0f64, -1.0], &[1, 2]).unwrap()).unwrap();
        assert_eq!(y.to_f64_vec(), vec![-0.5, -2.0, -1.0]);
        let no_bias = Linear::from_tensors(&w, None).unwrap();
        assert_eq!(no_bias.named_parameters().len(), 1);
    }

    #[test]
    fn default_init_bounds_and_seed() {
        let a = LinearConfig::new(16, 8).init(&mut ChaCha8Rng::seed_from_u64(7)).unwrap();
        let b = LinearConfig::new(16, 8).init(&mut ChaCha8Rng::seed_from_u64(7)).unwrap();
        assert_eq!(a.weight.to_vec::<f32>().unwrap(), b.weight.to_vec::<f32>().unwrap());
        assert_eq!(a.weight.dtype(), DType::F32);
        // bound 1/√16 = 0.25
        assert!(a
            .weight
            .to_f64_vec()
            .iter()
            .chain(&a.bias.as_ref().unwrap().to_f64_vec())
            .all(|v| v.abs() <= 0.25));
        assert!(LinearConfig::new(0, 3).init(&mut ChaCha8Rng::seed_from_u64(0)).is_err());
    }

    #[test]
    fn rejects_wrong_input_width() {
        let layer = LinearConfig::new(4, 2).init(&mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let err = layer.forward(&Tensor::zeros(&[3, 5], DType::F32).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Linear"), "{err}");
        assert!(layer.forward(&Tensor::scalar(1.0f32)).is_err());
    }

    #[test]
    fn gradcheck_input_weight_bias() {
        let x = Tensor::from_vec(random_vec::<f64>(3 * 4, 3), &[3, 4]).unwrap();
        let layer =
            LinearConfig::new(4, 2).with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        check_module_gradients(&layer, &x);
        let x3 = Tensor::from_vec(random_vec::<f64>(2 * 2 * 4, 5), &[2, 2, 4]).unwrap();
        check_module_gradients(&layer, &x3);
        let no_bias = LinearConfig::new(4, 3).with_bias(false).with_dtype(DType::F64);
        check_module_gradients(&no_bias.init(&mut ChaCha8Rng::seed_from_u64(5)).unwrap(), &x);
    }
}

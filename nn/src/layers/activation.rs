//! Activation functions as modules (PyTorch's `nn.ReLU`, `nn.GELU`, ...): no parameters,
//! elementwise unless stated (softmax and log-softmax normalise along one axis).
//!
//! # Shapes
//! - input: any shape
//! - output: the input's shape

use crate::{Module, Visitor};
use graphgrad_autodiff::{Result, Tensor};

macro_rules! stateless_module {
    ($ty:ty, |$self_:ident, $x:ident| $body:expr) => {
        impl Module for $ty {
            fn forward(&$self_, $x: &Tensor) -> Result<Tensor> {
                $body
            }

            /// No parameters, buffers or mode.
            fn visit(&self, _v: &mut dyn Visitor) {}
        }
    };
}

/// max(x, 0).
///
/// ```
/// use graphgrad_nn::{Module, ReLU};
/// use graphgrad_autodiff::Tensor;
/// let y = ReLU.forward(&Tensor::from_vec(vec![-1.0f32, 2.0], &[2])?)?;
/// assert_eq!(y.to_vec::<f32>()?, vec![0.0, 2.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReLU;
stateless_module!(ReLU, |self, x| Ok(x.relu()));

/// x for x > 0, `negative_slope`·x otherwise (default slope 0.01).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    /// Slope for negative inputs.
    pub negative_slope: f64,
}

impl LeakyReLU {
    /// With the given negative slope.
    pub fn new(negative_slope: f64) -> LeakyReLU {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU { negative_slope: 0.01 }
    }
}
stateless_module!(LeakyReLU, |self, x| Ok(x.leaky_relu(self.negative_slope)));

/// x for x > 0, α·(eˣ − 1) otherwise (default α = 1).
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ELU {
    /// α, the negative saturation value.
    pub alpha: f64,
}

impl ELU {
    /// With the given α.
    pub fn new(alpha: f64) -> ELU {
        ELU { alpha }
    }
}

impl Default for ELU {
    fn default() -> Self {
        ELU { alpha: 1.0 }
    }
}
stateless_module!(ELU, |self, x| Ok(x.elu(self.alpha)));

/// Which formula [`GELU`] uses (PyTorch's `approximate` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximate {
    /// Exact: x·Φ(x) with the normal CDF via erf (`approximate='none'`).
    #[default]
    None,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (`approximate='tanh'`).
    Tanh,
}

/// Gaussian error linear unit, exact by default.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GELU {
    /// Exact or tanh approximation.
    pub approximate: GeluApproximate,
}

impl GELU {
    /// With the given formula.
    pub fn new(approximate: GeluApproximate) -> GELU {
        GELU { approximate }
    }
}

stateless_module!(GELU, |self, x| match self.approximate {
    GeluApproximate::None => Ok(x.gelu()),
    GeluApproximate::Tanh => {
        let inner =
            x.add(&x.pow_scalar(3.0).mul_scalar(0.044715))?.mul_scalar((2.0 / std::f64::consts::PI).sqrt());
        x.mul(&inner.tanh().add_scalar(1.0)).map(|t| t.mul_scalar(0.5))
    }
});

/// 1 / (1 + e⁻ˣ).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sigmoid;
stateless_module!(Sigmoid, |self, x| Ok(x.sigmoid()));

/// Hyperbolic tangent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tanh;
stateless_module!(Tanh, |self, x| Ok(x.tanh()));

/// (1/β)·ln(1 + e^{βx}), reverting to x where βx > `threshold` (defaults β = 1,
/// threshold = 20, as PyTorch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softplus {
    /// β, the sharpness.
    pub beta: f64,
    /// Above this value of βx the output is x.
    pub threshold: f64,
}

impl Softplus {
    /// With the given β and threshold.
    pub fn new(beta: f64, threshold: f64) -> Softplus {
        Softplus { beta, threshold }
    }
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus { beta: 1.0, threshold: 20.0 }
    }
}

stateless_module!(Softplus, |self, x| {
    let bx = x.mul_scalar(self.beta);
    let smooth = bx.softplus().mul_scalar(1.0 / self.beta);
    Tensor::where_(&bx.gt_scalar(self.threshold), x, &smooth)
});

/// e^{xᵢ} / Σⱼ e^{xⱼ} along `dim` (negative counts from the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softmax {
    /// The normalised axis.
    pub dim: isize,
}

impl Softmax {
    /// Along axis `dim`.
    pub fn new(dim: isize) -> Softmax {
        Softmax { dim }
    }
}
stateless_module!(Softmax, |self, x| x.softmax(self.dim));

/// xᵢ − log Σⱼ e^{xⱼ} along `dim` (negative counts from the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSoftmax {
    /// The normalised axis.
    pub dim: isize,
}

impl LogSoftmax {
    /// Along axis `dim`.
    pub fn new(dim: isize) -> LogSoftmax {
        LogSoftmax { dim }
    }
}
stateless_module!(LogSoftmax, |self, x| x.log_softmax(self.dim));

/// x·σ(x), the SiLU or swish (PyTorch's `nn.SiLU`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SiLU;
stateless_module!(SiLU, |self, x| Ok(x.silu()));

/// ln σ(x), computed stably (PyTorch's `nn.LogSigmoid`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogSigmoid;
stateless_module!(LogSigmoid, |self, x| Ok(x.log_sigmoid()));

/// x limited to `[min_val, max_val]` (default [−1, 1]), with gradient 0 at and beyond the
/// bounds (PyTorch's `nn.Hardtanh`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardtanh {
    /// Lower bound.
    pub min_val: f64,
    /// Upper bound.
    pub max_val: f64,
}

impl Hardtanh {
    /// With the given bounds (checked when the module runs).
    pub fn new(min_val: f64, max_val: f64) -> Hardtanh {
        Hardtanh { min_val, max_val }
    }
}

impl Default for Hardtanh {
    fn default() -> Self {
        Hardtanh { min_val: -1.0, max_val: 1.0 }
    }
}
stateless_module!(Hardtanh, |self, x| x.hardtanh(self.min_val, self.max_val));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_module_gradients;
    use graphgrad_ops::testing::assert_close;

    fn x() -> Tensor {
        // avoid the kinks at 0 so finite differences are valid
        Tensor::from_vec(vec![-2.5f64, -1.0, -0.3, 0.2, 0.7, 1.5, 3.0, 25.0], &[2, 4]).unwrap()
    }

    /// Checks `module` against `reference` applied to each element, then gradchecks it.
    fn check_elementwise(module: &dyn Module, reference: impl Fn(f64) -> f64) {
        let input = x();
        let expected: Vec<f64> = input.to_f64_vec().into_iter().map(reference).collect();
        let y = module.forward(&input).unwrap();
        assert_eq!(y.shape(), input.shape());
        assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-12);
        check_module_gradients(module, &input);
        assert!(module.named_parameters().is_empty());
    }

    #[test]
    fn elementwise_activations_match_formulas() {
        check_elementwise(&ReLU, |v| v.max(0.0));
        check_elementwise(&LeakyReLU::default(), |v| if v > 0.0 { v } else { 0.01 * v });
        check_elementwise(&LeakyReLU::new(0.2), |v| if v > 0.0 { v } else { 0.2 * v });
        check_elementwise(&ELU::default(), |v| if v > 0.0 { v } else { v.exp() - 1.0 });
        check_elementwise(&ELU::new(0.5), |v| if v > 0.0 { v } else { 0.5 * (v.exp() - 1.0) });
        check_elementwise(&Sigmoid, |v| 1.0 / (1.0 + (-v).exp()));
        check_elementwise(&Tanh, f64::tanh);
        check_elementwise(&SiLU, |v| v / (1.0 + (-v).exp()));
        check_elementwise(&LogSigmoid, |v| -(1.0 + (-v).exp()).ln());
        check_elementwise(&Hardtanh::new(-0.5, 1.0), |v| v.clamp(-0.5, 1.0));
        // GELU tanh form: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
        let c = (2.0 / std::f64::consts::PI).sqrt();
        check_elementwise(&GELU::new(GeluApproximate::Tanh), |v| {
            0.5 * v * (1.0 + (c * (v + 0.044715 * v.powi(3))).tanh())
        });
        // Softplus with β = 2, threshold 20: ln(1 + e^{2x})/2, and x itself where 2x > 20 (x = 25)
        check_elementwise(&Softplus::new(2.0, 20.0), |v| {
            if 2.0 * v > 20.0 {
                v
            } else {
                (1.0 + (2.0 * v).exp()).ln() / 2.0
            }
        });
        check_elementwise(&Softplus::default(), |v| if v > 20.0 { v } else { (1.0 + v.exp()).ln() });
    }

    #[test]
    fn gelu_exact_hand_values() {
        // GELU(x) = xΦ(x): Φ(1) = 0.8413447460685429, Φ(-1) = 0.15865525393145707, Φ(0) = 1/2
        let y =
            GELU::default().forward(&Tensor::from_vec(vec![1.0f64, -1.0, 0.0, 2.0], &[4]).unwrap()).unwrap();
        // Φ(2) = 0.9772498680518208
        let expected = [0.8413447460685429, -0.15865525393145707, 0.0, 2.0 * 0.9772498680518208];
        assert_close(&y.to_f64_vec(), &expected, 1e-7, 1e-7);
        check_module_gradients(&GELU::default(), &x());
    }

    #[test]
    fn softmax_and_log_softmax_along_dim() {
        // rows [0, ln 2, ln 5]: e^x = [1, 2, 5], sum 8 -> [1/8, 2/8, 5/8]
        let l2 = 2f64.ln();
        let l5 = 5f64.ln();
        let input = Tensor::from_vec(vec![0.0, l2, l5, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
        let s = Softmax::new(1).forward(&input).unwrap();
        assert_close(&s.to_f64_vec(), &[0.125, 0.25, 0.625, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], 1e-12, 1e-12);
        let ls = LogSoftmax::new(-1).forward(&input).unwrap();
        let expected: Vec<f64> = s.to_f64_vec().iter().map(|v| v.ln()).collect();
        assert_close(&ls.to_f64_vec(), &expected, 1e-12, 1e-12);
        // along dim 0 the columns sum to one
        let s0 = Softmax::new(0).forward(&input).unwrap().to_f64_vec();
        for c in 0..3 {
            assert!((s0[c] + s0[3 + c] - 1.0).abs() < 1e-12);
        }
        check_module_gradients(&Softmax::new(1), &x());
        check_module_gradients(&LogSoftmax::new(0), &x());
        assert!(Softmax::new(2).forward(&input).is_err());
    }
}

//! AdamW: Adam with decoupled weight decay, following `torch.optim.AdamW`. The parameter is
//! first shrunk by `1 − lr·λ`, then takes Adam's step; the decay never enters the moments.
//! The fused kernel is Adam's (see `adam.rs`).

use crate::adam::{AdamKernel, ADAM_SLOTS};
use crate::{Num, ParamOptimizer, Result, UpdateRule};

/// Hyper-parameters of [`AdamW`] (PyTorch's defaults: lr 1e-3, β = (0.9, 0.999), ε = 1e-8,
/// weight decay 1e-2).
///
/// ```
/// use graphgrad_optim::AdamWConfig;
/// let config = AdamWConfig::new(1e-3).weight_decay(0.05);
/// assert_eq!((config.beta1, config.weight_decay), (0.9, 0.05));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay λ: each step multiplies the parameter by `1 − lr·λ`.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> AdamWConfig {
        AdamWConfig::new(1e-3)
    }
}

impl AdamWConfig {
    /// AdamW with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> AdamWConfig {
        AdamWConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }

    /// Sets β₁ and β₂.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> AdamWConfig {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> AdamWConfig {
        self.eps = eps;
        self
    }

    /// Sets the decoupled weight decay λ.
    pub fn weight_decay(mut self, weight_decay: f64) -> AdamWConfig {
        self.weight_decay = weight_decay;
        self
    }

    /// Switches AMSGrad on or off.
    pub fn amsgrad(mut self, amsgrad: bool) -> AdamWConfig {
        self.amsgrad = amsgrad;
        self
    }

    fn kernel(&self) -> AdamKernel {
        AdamKernel {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            l2: 0.0,
            decoupled: self.weight_decay,
            amsgrad: self.amsgrad,
        }
    }
}

/// AdamW over parameter groups: `AdamW::new(params, AdamWConfig::new(lr))`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{AdamW, AdamWConfig, Optimizer};
/// let w = Var::new("w", &Tensor::from_vec(vec![2.0f64], &[1])?);
/// let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::new(0.1).weight_decay(0.5))?;
/// w.mul(&w)?.sum_all().backward()?; // g = 4
/// opt.step()?; // w·(1 − 0.1·0.5) − 0.1·g/|g| = 1.9 − 0.1 = 1.8 (up to ε)
/// assert!((w.to_vec::<f64>()?[0] - 1.8).abs() < 1e-8);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub type AdamW = ParamOptimizer<AdamWConfig>;

impl UpdateRule for AdamWConfig {
    const NAME: &'static str = "AdamW";
    const SLOTS: &'static [&'static str] = ADAM_SLOTS;

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("amsgrad", f64::from(u8::from(self.amsgrad))),
        ]
    }

    fn set_hyper(&mut self, name: &str, value: f64) -> bool {
        match name {
            "lr" => self.lr = value,
            "beta1" => self.beta1 = value,
            "beta2" => self.beta2 = value,
            "eps" => self.eps = value,
            "weight_decay" => self.weight_decay = value,
            "amsgrad" => self.amsgrad = value != 0.0,
            _ => return false,
        }
        true
    }

    fn validate(&self) -> Result<()> {
        self.kernel().validate("AdamW", "weight_decay")
    }

    fn uses_slot(&self, slot: usize) -> bool {
        slot < 2 || self.amsgrad
    }

    fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S> {
        self.kernel().coefficients(lr, t)
    }

    #[inline(always)]
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        self.kernel().update(k, p, g, slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_steps, Case};

    /// p0 = [1, −2], lr 0.1, λ 0.1: each step first multiplies p by 1 − 0.01 = 0.99.
    /// step 1, g = [0.5, 1]: p = 0.99·p − m/(|g| + ε) = [0.99 − 0.099999998, −1.98 − 0.099999999]
    /// = [0.890000002, −2.079999999] (the moments see the raw gradient, unlike Adam's L2 decay).
    /// step 2, g = [−0.25, 0.5]: p = 0.99·p₁ − (0.1/0.19)·m/(√(v/0.001999) + ε), with Adam's
    /// m = [0.02, 0.14], v = [3.1225e-4, 1.249e-3]: [0.8544662986878463, −2.152417961711839].
    #[test]
    fn adamw_matches_hand_computed_steps() {
        let expected = [[0.890000002, -2.079999999], [0.8544662986878463, -2.152417961711839]];
        assert_steps(AdamWConfig::new(0.1).weight_decay(0.1), Case::standard(), &expected);
    }
}

//! Adam (with optional AMSGrad and L2 weight decay), following `torch.optim.Adam`, and the
//! fused kernel that [`AdamW`](crate::AdamW) shares:
//!
//! ```text
//! p = p·(1 − lr·λ)                      (AdamW's decoupled decay λ only)
//! g = g + wd·p                          (Adam's L2 decay wd only)
//! m = m + (1 − β₁)·(g − m)              v = β₂·v + (1 − β₂)·g²
//! v̂ = max(v̂, v)                        (AMSGrad; v̂ replaces v below)
//! p = p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```

use crate::error::check_range;
use crate::Num;
use crate::{ParamOptimizer, Result, UpdateRule};

/// Hyper-parameters of [`Adam`] (PyTorch's defaults: lr 1e-3, β = (0.9, 0.999), ε = 1e-8).
///
/// ```
/// use graphgrad_optim::AdamConfig;
/// let config = AdamConfig::new(3e-4).betas(0.9, 0.98).amsgrad(true);
/// assert_eq!((config.beta2, config.eps), (0.98, 1e-8));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// L2 penalty added to the gradient (for decoupled decay use [`AdamW`](crate::AdamW)).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> AdamConfig {
        AdamConfig::new(1e-3)
    }
}

impl AdamConfig {
    /// Adam with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> AdamConfig {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }

    /// Sets β₁ and β₂.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> AdamConfig {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> AdamConfig {
        self.eps = eps;
        self
    }

    /// Sets the L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> AdamConfig {
        self.weight_decay = weight_decay;
        self
    }

    /// Switches AMSGrad on or off.
    pub fn amsgrad(mut self, amsgrad: bool) -> AdamConfig {
        self.amsgrad = amsgrad;
        self
    }
}

/// Adam over parameter groups: `Adam::new(params, AdamConfig::new(lr))`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Adam, AdamConfig, Optimizer};
/// let w = Var::new("w", &Tensor::from_vec(vec![3.0f64], &[1])?);
/// let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::new(0.1))?;
/// w.mul(&w)?.sum_all().backward()?; // g = 6
/// opt.step()?; // the first Adam step moves by lr·g/|g| (up to ε): w ≈ 2.9
/// assert!((w.to_vec::<f64>()?[0] - 2.9).abs() < 1e-8);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub type Adam = ParamOptimizer<AdamConfig>;

/// The Adam family's update with its two kinds of weight decay.
pub(crate) struct AdamKernel {
    pub(crate) lr: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    /// Adam's L2 decay, added to the gradient.
    pub(crate) l2: f64,
    /// AdamW's decoupled decay, applied to the parameter.
    pub(crate) decoupled: f64,
    pub(crate) amsgrad: bool,
}

pub(crate) const ADAM_SLOTS: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

impl AdamKernel {
    /// Checks the ranges PyTorch checks.
    pub(crate) fn validate(&self, what: &'static str, decay_name: &str) -> Result<()> {
        check_range(what, "lr", self.lr, 0.0, f64::MAX)?;
        check_range(what, "beta1", self.beta1, 0.0, 1.0 - f64::EPSILON)?;
        check_range(what, "beta2", self.beta2, 0.0, 1.0 - f64::EPSILON)?;
        check_range(what, "eps", self.eps, 0.0, f64::MAX)?;
        check_range(what, decay_name, self.l2 + self.decoupled, 0.0, f64::MAX)
    }

    /// `[−lr/(1 − β₁ᵗ), √(1 − β₂ᵗ), 1 − lr·λ]`.
    pub(crate) fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S> {
        let bias1 = t.exp_of(self.beta1).scale(-1.0).shift(1.0);
        let bias2_sqrt = t.exp_of(self.beta2).scale(-1.0).shift(1.0).sqrt();
        vec![lr.scale(-1.0).div(&bias1), bias2_sqrt, lr.scale(-self.decoupled).shift(1.0)]
    }

    /// One update of a parameter and its moments (see the module docs).
    #[inline(always)]
    pub(crate) fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        let [neg_step_size, bias2_sqrt, keep] = k else {
            panic!("internal invariant: Adam has three coefficients")
        };
        let [m, v, v_max] = slots else { panic!("internal invariant: Adam has three slots") };
        let p = if self.decoupled != 0.0 { p.mul(keep) } else { p.clone() };
        let g = if self.l2 != 0.0 { g.add(&p.scale(self.l2)) } else { g.clone() };
        *m = m.add(&g.sub(m).scale(1.0 - self.beta1));
        *v = v.scale(self.beta2).add(&g.scale(1.0 - self.beta2).mul(&g));
        let second = if self.amsgrad {
            *v_max = v_max.max(v);
            &*v_max
        } else {
            &*v
        };
        p.add(&neg_step_size.mul(m).div(&second.sqrt().div(bias2_sqrt).shift(self.eps)))
    }
}

impl AdamConfig {
    fn kernel(&self) -> AdamKernel {
        AdamKernel {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            l2: self.weight_decay,
            decoupled: 0.0,
            amsgrad: self.amsgrad,
        }
    }
}

impl UpdateRule for AdamConfig {
    const NAME: &'static str = "Adam";
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
        self.kernel().validate("Adam", "weight_decay")
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

    /// p0 = [1, −2], lr 0.1, β = (0.9, 0.999), ε = 1e-8.
    /// step 1, g = [0.5, 1]: m = 0.1·g = [0.05, 0.1], v = 0.001·g² = [2.5e-4, 1e-3];
    /// lr/(1−β₁) = 1, √v/√(1−β₂) = |g| = [0.5, 1]; p = p − m/(|g| + ε)
    /// = [1 − 0.05/0.50000001, −2 − 0.1/1.00000001] = [0.900000002, −2.099999999].
    /// step 2, g = [−0.25, 0.5]: m = 0.9·m + 0.1·g = [0.02, 0.14],
    /// v = 0.999·v + 0.001·g² = [3.1225e-4, 1.249e-3]; 1−β₁² = 0.19, 1−β₂² = 0.001999;
    /// p = p − (0.1/0.19)·m/(√(v/0.001999) + ε) = [0.8733662987078463, −2.193217961701839].
    #[test]
    fn adam_matches_hand_computed_steps() {
        let expected = [[0.900000002, -2.099999999], [0.8733662987078463, -2.193217961701839]];
        assert_steps(AdamConfig::new(0.1), Case::standard(), &expected);
    }

    /// As above with L2 decay 0.1 added to the gradient: step 1 g = [0.5 + 0.1, 1 − 0.2] =
    /// [0.6, 0.8], so m/(|g|+ε) = [1/(1+ε/0.6), 1/(1+ε/0.8)]·0.1:
    /// p = [0.9000000016666666, −2.09999999875]; step 2 likewise with g = g₂ + 0.1·p₁:
    /// p = [0.8544413674617625, −2.1883622761652832].
    #[test]
    fn adam_l2_weight_decay_matches_hand_computed_steps() {
        let expected = [[0.9000000016666666, -2.09999999875], [0.8544413674617625, -2.1883622761652832]];
        assert_steps(AdamConfig::new(0.1).weight_decay(0.1), Case::standard(), &expected);
    }

    /// AMSGrad: gradients [0.5, 1], [0.01, 0.02], [0.02, −0.01]. Step 1 is Adam's. At step 2
    /// v₂ = 0.999·[2.5e-4, 1e-3] + 0.001·[1e-4, 4e-4] = [2.4985e-4, 9.994e-4] < v₁, so
    /// v̂₂ = v₁ and the denominators differ from plain Adam from step 2 on:
    /// AMSGrad p₂ = [0.8315394161677112, −2.1684605858002257],
    ///         p₃ = [0.7760904142944676, −2.2207155373263943];
    /// Adam    p₂ = [0.8315188687457401, −2.1684811332227776],
    ///         p₃ = [0.7760698668724965, −2.2207753043953953].
    #[test]
    fn amsgrad_uses_the_running_maximum() {
        let case = Case { p0: [1.0, -2.0], grads: vec![[0.5, 1.0], [0.01, 0.02], [0.02, -0.01]] };
        let ams = [
            [0.900000002, -2.099999999],
            [0.8315394161677112, -2.1684605858002257],
            [0.7760904142944676, -2.2207155373263943],
        ];
        assert_steps(AdamConfig::new(0.1).amsgrad(true), case.clone(), &ams);
        let plain = [
            [0.900000002, -2.099999999],
            [0.8315188687457401, -2.1684811332227776],
            [0.7760698668724965, -2.2207753043953953],
        ];
        assert_steps(AdamConfig::new(0.1), case, &plain);
    }
}

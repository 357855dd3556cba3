//! The Adam family, following torch 2.x, where `AdamW` is `Adam` with decoupled weight decay:
//! one settings struct, [`AdamSettings<DECOUPLED>`](AdamSettings), one fused update, and two
//! names, [`Adam`] / [`AdamConfig`] (`DECOUPLED = false`, `torch.optim.Adam`: an L2 penalty
//! added to the gradient) and [`AdamW`] / [`AdamWConfig`] (`DECOUPLED = true`,
//! `torch.optim.AdamW`: the parameter shrinks by `1 − lr·λ` and the decay never enters the
//! moments). Each keeps its own name in checkpoints and errors and its own default decay
//! (0 and 1e-2, PyTorch's); AMSGrad is available to both.
//!
//! ```text
//! p = p·(1 − lr·λ)                      (AdamW only)
//! g = g + λ·p                           (Adam only)
//! m = m + (1 − β₁)·(g − m)              v = β₂·v + (1 − β₂)·g²
//! v̂ = max(v̂, v)                        (AMSGrad; v̂ replaces v below)
//! p = p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The decay's kind is a const parameter rather than a stored flag, so the two keep distinct
//! types (a checkpoint of one does not load into the other) and hyper-parameter lists
//! identical to the ones their checkpoints have always stored.

use crate::{settings, Num, ParamOptimizer, UpdateRule};

settings! {
    /// Hyper-parameters of the Adam family: use [`AdamConfig`] (for [`Adam`]) or
    /// [`AdamWConfig`] (for [`AdamW`]). PyTorch's defaults: lr 1e-3, β = (0.9, 0.999),
    /// ε = 1e-8, weight decay 0 for Adam and 1e-2 for AdamW, no AMSGrad.
    ///
    /// ```
    /// use graphgrad_optim::{AdamConfig, AdamWConfig};
    /// let config = AdamConfig::new(3e-4).betas(0.9, 0.98).amsgrad(true);
    /// assert_eq!((config.beta2, config.eps, config.weight_decay), (0.98, 1e-8, 0.0));
    /// let config = AdamWConfig::new(1e-3);
    /// assert_eq!((config.beta1, config.weight_decay), (0.9, 1e-2));
    /// ```
    pub struct AdamSettings<const DECOUPLED: bool>(if DECOUPLED { "AdamW" } else { "Adam" }, lr = 1e-3) {
        /// Decay of the first-moment average.
        beta1: f64 = 0.9, BelowOne;
        /// Decay of the second-moment average.
        beta2: f64 = 0.999, BelowOne;
        /// Added to the denominator for stability.
        eps: f64 = 1e-8, NonNegative;
        /// Weight decay λ: Adam adds the L2 penalty `λ·p` to the gradient; AdamW multiplies
        /// the parameter by `1 − lr·λ` each step (decoupled decay).
        weight_decay: f64 = if DECOUPLED { 1e-2 } else { 0.0 }, NonNegative;
        /// Use the running maximum of the second moment (AMSGrad).
        amsgrad: bool = false;
    }
}

/// Hyper-parameters of [`Adam`]: weight decay is an L2 penalty added to the gradient.
pub type AdamConfig = AdamSettings<false>;

/// Hyper-parameters of [`AdamW`]: Adam's, with decoupled weight decay (default 1e-2).
pub type AdamWConfig = AdamSettings<true>;

impl<const DECOUPLED: bool> AdamSettings<DECOUPLED> {
    /// Sets β₁ and β₂.
    pub fn betas(self, beta1: f64, beta2: f64) -> Self {
        self.beta1(beta1).beta2(beta2)
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

impl<const DECOUPLED: bool> UpdateRule for AdamSettings<DECOUPLED> {
    const SLOTS: &'static [&'static str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

    fn uses_slot(&self, slot: usize) -> bool {
        slot < 2 || self.amsgrad
    }

    /// `[−lr/(1 − β₁ᵗ), √(1 − β₂ᵗ), 1 − lr·λ]` (the last is 1 for Adam).
    fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S> {
        let bias1 = t.exp_of(self.beta1).scale(-1.0).shift(1.0);
        let bias2_sqrt = t.exp_of(self.beta2).scale(-1.0).shift(1.0).sqrt();
        let decoupled = if DECOUPLED { self.weight_decay } else { 0.0 };
        vec![lr.scale(-1.0).div(&bias1), bias2_sqrt, lr.scale(-decoupled).shift(1.0)]
    }

    /// One update of a parameter and its moments (see the module docs).
    #[inline(always)]
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        let [neg_step_size, bias2_sqrt, keep] = k else {
            panic!("internal invariant: Adam has three coefficients")
        };
        let [m, v, v_max] = slots else { panic!("internal invariant: Adam has three slots") };
        let decay = self.weight_decay != 0.0;
        let p = if DECOUPLED && decay { p.mul(keep) } else { p.clone() };
        let g = if !DECOUPLED && decay { g.add(&p.scale(self.weight_decay)) } else { g.clone() };
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

    /// AdamW with AMSGrad, λ 0.1, on the AMSGrad case above. The decay never enters the
    /// moments, so each step is Adam-AMSGrad's step Δₜ (pₜ − pₜ₋₁ there: Δ₁ = [−0.099999998,
    /// −0.099999999], Δ₂ = [−0.0684605858322888, −0.0684605868002257], Δ₃ =
    /// [−0.0554490018732436, −0.0522549515261686]) added to 0.99·pₜ₋₁:
    /// p₁ = [0.890000002, −2.079999999], p₂ = 0.99·p₁ + Δ₂ = [0.8126394161477112,
    /// −2.1276605858102258], p₃ = 0.99·p₂ + Δ₃ = [0.7490640201129904, −2.158638931478292].
    #[test]
    fn adamw_with_amsgrad_matches_hand_computed_steps() {
        let case = Case { p0: [1.0, -2.0], grads: vec![[0.5, 1.0], [0.01, 0.02], [0.02, -0.01]] };
        let expected = [
            [0.890000002, -2.079999999],
            [0.8126394161477112, -2.1276605858102258],
            [0.7490640201129904, -2.158638931478292],
        ];
        assert_steps(AdamWConfig::new(0.1).weight_decay(0.1).amsgrad(true), case, &expected);
    }
}

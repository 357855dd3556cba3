//! Adagrad (with learning-rate decay, L2 weight decay and an initial accumulator value),
//! following `torch.optim.Adagrad`:
//!
//! ```text
//! g = g + wd·p                      (when wd ≠ 0)
//! lr_t = lr / (1 + (t − 1)·lr_decay)
//! s = s + g²                        (s starts at initial_accumulator_value)
//! p = p − lr_t·g / (√s + ε)
//! ```

use crate::{settings, Num, ParamOptimizer, UpdateRule};

settings! {
    /// Hyper-parameters of [`Adagrad`] (PyTorch's defaults: lr 1e-2, ε 1e-10, the rest 0).
    ///
    /// ```
    /// use graphgrad_optim::AdagradConfig;
    /// let config = AdagradConfig::new(0.1).lr_decay(1e-3).initial_accumulator_value(0.1);
    /// assert_eq!(config.eps, 1e-10);
    /// ```
    pub struct AdagradConfig("Adagrad", lr = 1e-2) {
        /// Learning-rate decay per step.
        lr_decay: f64 = 0.0, NonNegative;
        /// L2 penalty added to the gradient.
        weight_decay: f64 = 0.0, NonNegative;
        /// Starting value of the squared-gradient sum.
        initial_accumulator_value: f64 = 0.0, NonNegative;
        /// Added to the denominator for stability.
        eps: f64 = 1e-10, NonNegative;
    }
}

/// Adagrad over parameter groups: `Adagrad::new(params, AdagradConfig::new(lr))`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Adagrad, AdagradConfig, Optimizer};
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f64], &[1])?);
/// let mut opt = Adagrad::new(vec![("w".into(), w.clone())], AdagradConfig::new(0.1))?;
/// w.mul(&w)?.sum_all().backward()?; // g = 2, s = 4
/// opt.step()?; // w = 1 − 0.1·2/(2 + ε)
/// assert!((w.to_vec::<f64>()?[0] - 0.9).abs() < 1e-9);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub type Adagrad = ParamOptimizer<AdagradConfig>;

impl UpdateRule for AdagradConfig {
    const SLOTS: &'static [&'static str] = &["sum"];

    fn initial_slot_value(&self, _slot: usize) -> f64 {
        self.initial_accumulator_value
    }

    /// `[−lr/(1 + (t − 1)·lr_decay)]`.
    fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S> {
        vec![lr.scale(-1.0).div(&t.shift(-1.0).scale(self.lr_decay).shift(1.0))]
    }

    #[inline(always)]
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        let [neg_clr] = k else { panic!("internal invariant: Adagrad has one coefficient") };
        let [sum] = slots else { panic!("internal invariant: Adagrad has one slot") };
        let g = if self.weight_decay != 0.0 { g.add(&p.scale(self.weight_decay)) } else { g.clone() };
        *sum = sum.add(&g.mul(&g));
        p.add(&neg_clr.mul(&g).div(&sum.sqrt().shift(self.eps)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_steps, Case};

    /// p0 = [1, −2], lr 0.1.
    /// step 1, g = [0.5, 1]: s = g² = [0.25, 1]; p = p − 0.1·g/(|g| + 1e-10)
    /// = [0.90000000002, −2.09999999999].
    /// step 2, g = [−0.25, 0.5]: s = [0.3125, 1.25]; p = p − 0.1·g/√s
    /// = [0.9 + 0.025/0.5590169943749474, −2.1 − 0.05/1.118033988749895]
    /// = [0.9447213595619958, −2.1447213595359957].
    #[test]
    fn adagrad_matches_hand_computed_steps() {
        let expected = [[0.90000000002, -2.09999999999], [0.9447213595619958, -2.1447213595359957]];
        assert_steps(AdagradConfig::new(0.1), Case::standard(), &expected);
    }

    /// lr 0.1, lr_decay 0.5, wd 0.1, initial accumulator 0.1.
    /// step 1: lr₁ = 0.1; g = [0.6, 0.8]; s = 0.1 + g² = [0.46, 0.74];
    /// p = p − 0.1·g/√s = [0.9115348263201052, −2.0929981109842446].
    /// step 2: lr₂ = 0.1/(1 + 0.5) = 0.0666…; g = g₂ + 0.1·p₁; s += g²:
    /// p = [0.926737207748413, −2.11434118579785].
    #[test]
    fn adagrad_with_decays_and_initial_accumulator_matches_hand_computed_steps() {
        let config = AdagradConfig::new(0.1).lr_decay(0.5).weight_decay(0.1).initial_accumulator_value(0.1);
        let expected = [[0.9115348263201052, -2.0929981109842446], [0.926737207748413, -2.11434118579785]];
        assert_steps(config, Case::standard(), &expected);
    }
}

//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
//! decay, following `torch.optim.SGD`:
//!
//! ```text
//! d = g + wd·p                              (when wd ≠ 0)
//! b = d                                     (first step)
//! b = μ·b + (1 − dampening)·d               (later steps; when μ ≠ 0)
//! d = d + μ·b  (Nesterov)   or   d = b
//! p = p − lr·d
//! ```

use crate::error::invalid;
use crate::{settings, Num, ParamOptimizer, Result, Settings, UpdateRule};

settings! {
    /// Hyper-parameters of [`Sgd`] (PyTorch's defaults: lr 1e-3, the rest 0 or off).
    ///
    /// ```
    /// use graphgrad_optim::SgdConfig;
    /// let config = SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(1e-4);
    /// assert_eq!((config.momentum, config.dampening), (0.9, 0.0));
    /// ```
    pub struct SgdConfig("SGD", lr = 1e-3) {
        /// Momentum factor μ (0 = plain SGD).
        momentum: f64 = 0.0, NonNegative;
        /// Dampening of the gradient added to the momentum buffer.
        dampening: f64 = 0.0, UpToOne;
        /// L2 penalty added to the gradient.
        weight_decay: f64 = 0.0, NonNegative;
        /// Nesterov momentum (needs momentum > 0 and dampening = 0).
        nesterov: bool = false;
    }
}

/// SGD over parameter groups: `Sgd::new(params, SgdConfig::new(lr))`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Optimizer, Sgd, SgdConfig};
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f64], &[1])?);
/// let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(0.5).momentum(0.5))?;
/// for _ in 0..2 {
///     opt.zero_grad();
///     w.mul(&w)?.sum_all().backward()?; // g = 2w
///     opt.step()?;
/// }
/// // step 1: g = 2, b = 2, w = 1 − 0.5·2 = 0; step 2: g = 0, b = 0.5·2 + 0 = 1, w = −0.5
/// assert_eq!(w.to_vec::<f64>()?, vec![-0.5]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub type Sgd = ParamOptimizer<SgdConfig>;

impl UpdateRule for SgdConfig {
    const SLOTS: &'static [&'static str] = &["momentum_buffer"];

    fn validate(&self) -> Result<()> {
        self.check_ranges()?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            invalid!(
                Self::NAME,
                "Nesterov momentum needs momentum > 0 and dampening = 0, got momentum {} and dampening {}",
                self.momentum,
                self.dampening
            );
        }
        Ok(())
    }

    fn uses_slot(&self, _slot: usize) -> bool {
        self.momentum != 0.0
    }

    /// `[−lr, a, b]` with the momentum update `buf = a·buf + b·d`: `a = 0, b = 1` at the
    /// first step (the buffer starts as the gradient, as PyTorch), `a = μ, b = 1 − dampening`
    /// after it. The first-step switch is arithmetic (`max(0, 2 − t)` is 1 at t = 1, else 0),
    /// so a compiled step computes it from its step count.
    fn coefficients<S: Num>(&self, lr: &S, t: &S) -> Vec<S> {
        let first = t.scale(-1.0).shift(2.0).max(&t.scale(0.0));
        let later = first.scale(-1.0).shift(1.0);
        vec![lr.scale(-1.0), later.scale(self.momentum), later.scale(-self.dampening).shift(1.0)]
    }

    #[inline(always)]
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        let [neg_lr, a, b] = k else { panic!("internal invariant: SGD has three coefficients") };
        let d = if self.weight_decay != 0.0 { g.add(&p.scale(self.weight_decay)) } else { g.clone() };
        if self.momentum == 0.0 {
            return p.add(&neg_lr.mul(&d));
        }
        let [buf] = slots else { panic!("internal invariant: SGD has one slot") };
        *buf = a.mul(buf).add(&b.mul(&d));
        let d = if self.nesterov { d.add(&buf.scale(self.momentum)) } else { buf.clone() };
        p.add(&neg_lr.mul(&d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_steps, Case};

    /// p0 = [1, −2], lr 0.1, μ 0.9, dampening 0.1, wd 0.01.
    /// step 1, g = [0.5, 1]: d = g + 0.01·p = [0.51, 0.98]; b = d; p = p − 0.1·b = [0.949, −2.098].
    /// step 2, g = [−0.25, 0.5]: d = [−0.25 + 0.00949, 0.5 − 0.02098] = [−0.24051, 0.47902];
    /// b = 0.9·[0.51, 0.98] + 0.9·d = [0.242541, 1.313118]; p = p − 0.1·b = [0.9247459, −2.2293118].
    #[test]
    fn momentum_dampening_weight_decay_match_hand_computed_steps() {
        let config = SgdConfig::new(0.1).momentum(0.9).dampening(0.1).weight_decay(0.01);
        assert_steps(config, Case::standard(), &[[0.949, -2.098], [0.9247459, -2.2293118]]);
    }

    /// p0 = [1, −2], lr 0.1, μ 0.9, Nesterov.
    /// step 1, g = [0.5, 1]: b = g; d = g + 0.9·b = [0.95, 1.9]; p = [0.905, −2.19].
    /// step 2, g = [−0.25, 0.5]: b = 0.9·[0.5, 1] + g = [0.2, 1.4]; d = g + 0.9·b = [−0.07, 1.76];
    /// p = [0.905 + 0.007, −2.19 − 0.176] = [0.912, −2.366].
    #[test]
    fn nesterov_matches_hand_computed_steps() {
        let config = SgdConfig::new(0.1).momentum(0.9).nesterov(true);
        assert_steps(config, Case::standard(), &[[0.905, -2.19], [0.912, -2.366]]);
    }

    /// Plain SGD: p = p − 0.1·g: [1 − 0.05, −2 − 0.1] = [0.95, −2.1], then
    /// [0.95 + 0.025, −2.1 − 0.05] = [0.975, −2.15].
    #[test]
    fn plain_sgd_matches_hand_computed_steps() {
        assert_steps(SgdConfig::new(0.1), Case::standard(), &[[0.95, -2.1], [0.975, -2.15]]);
    }

    #[test]
    fn invalid_hyper_parameters_are_rejected_with_their_name() {
        let err = SgdConfig::new(0.1).nesterov(true).validate().unwrap_err().to_string();
        assert!(err.contains("Nesterov") && err.contains("momentum 0"), "{err}");
        let err = SgdConfig::new(-1.0).validate().unwrap_err().to_string();
        assert!(err.contains("lr") && err.contains("-1"), "{err}");
    }
}

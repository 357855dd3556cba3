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

use crate::error::{check_range, invalid};
use crate::Num;
use crate::{ParamOptimizer, Result, UpdateRule};

/// Hyper-parameters of [`Sgd`] (PyTorch's defaults except `lr`, which has none).
///
/// ```
/// use graphgrad_optim::SgdConfig;
/// let config = SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(1e-4);
/// assert_eq!(config.momentum, 0.9);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor μ (0 = plain SGD).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening = 0).
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> SgdConfig {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }

    /// Sets the momentum factor.
    pub fn momentum(mut self, momentum: f64) -> SgdConfig {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening.
    pub fn dampening(mut self, dampening: f64) -> SgdConfig {
        self.dampening = dampening;
        self
    }

    /// Sets the L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> SgdConfig {
        self.weight_decay = weight_decay;
        self
    }

    /// Switches Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> SgdConfig {
        self.nesterov = nesterov;
        self
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
    const NAME: &'static str = "SGD";
    const SLOTS: &'static [&'static str] = &["momentum_buffer"];

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("weight_decay", self.weight_decay),
            ("nesterov", f64::from(u8::from(self.nesterov))),
        ]
    }

    fn set_hyper(&mut self, name: &str, value: f64) -> bool {
        match name {
            "lr" => self.lr = value,
            "momentum" => self.momentum = value,
            "dampening" => self.dampening = value,
            "weight_decay" => self.weight_decay = value,
            "nesterov" => self.nesterov = value != 0.0,
            _ => return false,
        }
        true
    }

    fn validate(&self) -> Result<()> {
        check_range("SGD", "lr", self.lr, 0.0, f64::MAX)?;
        check_range("SGD", "momentum", self.momentum, 0.0, f64::MAX)?;
        check_range("SGD", "dampening", self.dampening, 0.0, 1.0)?;
        check_range("SGD", "weight_decay", self.weight_decay, 0.0, f64::MAX)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            invalid!(
                "SGD",
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

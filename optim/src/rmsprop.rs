//! RMSprop (optionally centred, with momentum and L2 weight decay), following
//! `torch.optim.RMSprop`:
//!
//! ```text
//! g = g + wd·p                                   (when wd ≠ 0)
//! s = α·s + (1 − α)·g²
//! ḡ = ḡ + (1 − α)·(g − ḡ);  a = √(s − ḡ²) + ε    (centred)
//! a = √s + ε                                     (otherwise)
//! b = μ·b + g/a;  p = p − lr·b                   (momentum μ > 0)
//! p = p − lr·g/a                                 (otherwise)
//! ```

use crate::{settings, Num, ParamOptimizer, UpdateRule};

settings! {
    /// Hyper-parameters of [`RmsProp`] (PyTorch's defaults: lr 1e-2, α 0.99, ε 1e-8).
    ///
    /// ```
    /// use graphgrad_optim::RmsPropConfig;
    /// let config = RmsPropConfig::new(1e-3).momentum(0.9).centered(true);
    /// assert_eq!(config.alpha, 0.99);
    /// ```
    pub struct RmsPropConfig("RMSprop", lr = 1e-2) {
        /// Smoothing constant α of the squared-gradient average.
        alpha: f64 = 0.99, UpToOne;
        /// Added to the denominator for stability.
        eps: f64 = 1e-8, NonNegative;
        /// L2 penalty added to the gradient.
        weight_decay: f64 = 0.0, NonNegative;
        /// Momentum factor (0 = none).
        momentum: f64 = 0.0, NonNegative;
        /// Normalise by the estimated variance instead of the raw second moment (centred).
        centered: bool = false;
    }
}

/// RMSprop over parameter groups: `RmsProp::new(params, RmsPropConfig::new(lr))`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Optimizer, RmsProp, RmsPropConfig};
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f64], &[1])?);
/// let mut opt = RmsProp::new(vec![("w".into(), w.clone())], RmsPropConfig::new(0.01).alpha(0.75))?;
/// w.mul(&w)?.sum_all().backward()?; // g = 2
/// opt.step()?; // s = 0.25·4 = 1, w = 1 − 0.01·2/(1 + ε)
/// assert!((w.to_vec::<f64>()?[0] - 0.98).abs() < 1e-9);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub type RmsProp = ParamOptimizer<RmsPropConfig>;

impl UpdateRule for RmsPropConfig {
    const SLOTS: &'static [&'static str] = &["square_avg", "momentum_buffer", "grad_avg"];

    fn uses_slot(&self, slot: usize) -> bool {
        match slot {
            1 => self.momentum > 0.0,
            2 => self.centered,
            _ => true,
        }
    }

    /// `[−lr]`.
    fn coefficients<S: Num>(&self, lr: &S, _t: &S) -> Vec<S> {
        vec![lr.scale(-1.0)]
    }

    #[inline(always)]
    fn update<X: Num>(&self, k: &[X], p: &X, g: &X, slots: &mut [X]) -> X {
        let [neg_lr] = k else { panic!("internal invariant: RMSprop has one coefficient") };
        let [square_avg, momentum_buffer, grad_avg] = slots else {
            panic!("internal invariant: RMSprop has three slots")
        };
        let g = if self.weight_decay != 0.0 { g.add(&p.scale(self.weight_decay)) } else { g.clone() };
        *square_avg = square_avg.scale(self.alpha).add(&g.scale(1.0 - self.alpha).mul(&g));
        let denom = if self.centered {
            *grad_avg = grad_avg.add(&g.sub(grad_avg).scale(1.0 - self.alpha));
            square_avg.sub(&grad_avg.mul(grad_avg)).sqrt().shift(self.eps)
        } else {
            square_avg.sqrt().shift(self.eps)
        };
        if self.momentum > 0.0 {
            *momentum_buffer = momentum_buffer.scale(self.momentum).add(&g.div(&denom));
            p.add(&neg_lr.mul(momentum_buffer))
        } else {
            p.add(&neg_lr.mul(&g).div(&denom))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_steps, Case};

    /// p0 = [1, −2], lr 0.01, α 0.99.
    /// step 1, g = [0.5, 1]: s = 0.01·g² = [0.0025, 0.01], √s = [0.05, 0.1];
    /// p = p − 0.01·g/(√s + ε) = [1 − 0.01·0.5/0.05000001, −2 − 0.01·1/0.10000001]
    /// = [0.900000019999996, −2.099999990000001].
    /// step 2, g = [−0.25, 0.5]: s = 0.99·s + 0.01·g² = [0.003100, 0.0124];
    /// p = p − 0.01·g/(√s + ε) = [0.9449013374421751, −2.144901311474437].
    #[test]
    fn rmsprop_matches_hand_computed_steps() {
        let expected = [[0.900000019999996, -2.099999990000001], [0.9449013374421751, -2.144901311474437]];
        assert_steps(RmsPropConfig::new(0.01), Case::standard(), &expected);
    }

    /// Centred, momentum 0.9, L2 decay 0.1, lr 0.01, α 0.99.
    /// step 1: g = [0.5 + 0.1, 1 − 0.2] = [0.6, 0.8]; s = 0.01·g² = [0.0036, 0.0064];
    /// ḡ = 0.01·g = [0.006, 0.008]; a = √(s − ḡ²) + ε = √[0.003564, 0.006336] + ε;
    /// b = g/a; p = p − 0.01·b = [0.8994962353090928, −2.10050376889966].
    /// step 2: g = g₂ + 0.1·p₁, s, ḡ and a as above, b = 0.9·b + g/a:
    /// p = [0.8350018999541212, −2.2254660536192086].
    #[test]
    fn centered_rmsprop_with_momentum_matches_hand_computed_steps() {
        let config = RmsPropConfig::new(0.01).centered(true).momentum(0.9).weight_decay(0.1);
        let expected = [[0.8994962353090928, -2.10050376889966], [0.8350018999541212, -2.2254660536192086]];
        assert_steps(config, Case::standard(), &expected);
    }
}

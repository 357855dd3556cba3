//! Regression losses on elementwise differences d = input − target (PyTorch's `l1_loss`,
//! `mse_loss`, `smooth_l1_loss`, `huber_loss`). Input and target have the same shape; the
//! unreduced loss has that shape too.

use super::{same_shape, Reduction};
use graphgrad_autodiff::{bail, reported_as, Result, Tensor};

/// |input − target|, reduced.
///
/// ```
/// use graphgrad_nn::loss::{l1_loss, Reduction};
/// use graphgrad_autodiff::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 4.0], &[2])?;
/// let y = Tensor::from_vec(vec![2.0f32, 2.0], &[2])?;
/// assert_eq!(l1_loss(&x, &y, Reduction::Mean)?.item()?, 1.5);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reported_as("l1_loss", || {
        same_shape("l1_loss", input, target)?;
        Ok(reduction.apply(input.sub(target)?.abs()))
    })
}

/// (input − target)², reduced.
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reported_as("mse_loss", || {
        same_shape("mse_loss", input, target)?;
        Ok(reduction.apply(input.sub(target)?.square()))
    })
}

/// 0.5·d²/β where |d| < β, |d| − 0.5·β elsewhere (β ≥ 0; β = 0 is the L1 loss). PyTorch's
/// default β is 1.
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Result<Tensor> {
    reported_as("smooth_l1_loss", || {
        same_shape("smooth_l1_loss", input, target)?;
        if beta < 0.0 || beta.is_nan() {
            bail!("smooth_l1_loss", "beta must be non-negative, got {beta}");
        }
        if beta == 0.0 {
            return l1_loss(input, target, reduction);
        }
        let d = input.sub(target)?.abs();
        let quadratic = d.square().mul_scalar(0.5 / beta);
        let linear = d.add_scalar(-0.5 * beta);
        Ok(reduction.apply(Tensor::where_(&d.lt_scalar(beta), &quadratic, &linear)?))
    })
}

/// 0.5·d² where |d| ≤ δ, δ·(|d| − 0.5·δ) elsewhere (δ > 0; PyTorch's default is 1). Equals
/// δ·smooth_l1(β = δ).
pub fn huber_loss(input: &Tensor, target: &Tensor, delta: f64, reduction: Reduction) -> Result<Tensor> {
    reported_as("huber_loss", || {
        same_shape("huber_loss", input, target)?;
        if delta <= 0.0 || delta.is_nan() {
            bail!("huber_loss", "delta must be positive, got {delta}");
        }
        let d = input.sub(target)?.abs();
        let quadratic = d.square().mul_scalar(0.5);
        let linear = d.add_scalar(-0.5 * delta).mul_scalar(delta);
        Ok(reduction.apply(Tensor::where_(&d.le_scalar(delta), &quadratic, &linear)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::tests::{assert_loss, check_grad, t};
    use graphgrad_autodiff::DType;

    // x = [0.5, −1, 2, 3.5], y = [1, −1.2, 0, 3.4] ⇒ d = x − y = [−0.5, 0.2, 2, 0.1]
    fn x() -> Tensor {
        t(&[0.5, -1.0, 2.0, 3.5], &[2, 2])
    }
    fn y() -> Tensor {
        t(&[1.0, -1.2, 0.0, 3.4], &[2, 2])
    }

    const ALL: [Reduction; 3] = [Reduction::None, Reduction::Sum, Reduction::Mean];

    #[test]
    fn l1_hand_computed() {
        // |d| = [0.5, 0.2, 2, 0.1]: sum 2.8, mean 0.7
        assert_loss(l1_loss(&x(), &y(), Reduction::None), &[0.5, 0.2, 2.0, 0.1]);
        assert_loss(l1_loss(&x(), &y(), Reduction::Sum), &[2.8]);
        assert_loss(l1_loss(&x(), &y(), Reduction::Mean), &[0.7]);
        assert_eq!(l1_loss(&x(), &y(), Reduction::None).unwrap().shape(), &[2, 2]);
        for r in ALL {
            check_grad(|v| l1_loss(&v[0], &v[1], r), &[x(), y()]);
        }
    }

    #[test]
    fn mse_hand_computed() {
        // d² = [0.25, 0.04, 4, 0.01]: sum 4.3, mean 1.075
        assert_loss(mse_loss(&x(), &y(), Reduction::None), &[0.25, 0.04, 4.0, 0.01]);
        assert_loss(mse_loss(&x(), &y(), Reduction::Sum), &[4.3]);
        assert_loss(mse_loss(&x(), &y(), Reduction::Mean), &[1.075]);
        for r in ALL {
            check_grad(|v| mse_loss(&v[0], &v[1], r), &[x(), y()]);
        }
    }

    #[test]
    fn smooth_l1_hand_computed() {
        // β = 1: |d| < 1 ⇒ 0.5d² = [0.125, 0.02, ·, 0.005]; |d| = 2 ⇒ 2 − 0.5 = 1.5
        assert_loss(smooth_l1_loss(&x(), &y(), 1.0, Reduction::None), &[0.125, 0.02, 1.5, 0.005]);
        assert_loss(smooth_l1_loss(&x(), &y(), 1.0, Reduction::Sum), &[1.65]);
        assert_loss(smooth_l1_loss(&x(), &y(), 1.0, Reduction::Mean), &[0.4125]);
        // β = 0.3: 0.5 − 0.15 = 0.35; 0.5·0.04/0.3 = 1/15; 2 − 0.15 = 1.85; 0.5·0.01/0.3 = 1/60
        let expected = [0.35, 1.0 / 15.0, 1.85, 1.0 / 60.0];
        assert_loss(smooth_l1_loss(&x(), &y(), 0.3, Reduction::None), &expected);
        assert_loss(smooth_l1_loss(&x(), &y(), 0.3, Reduction::Sum), &[expected.iter().sum()]);
        // β = 0 is L1
        assert_loss(smooth_l1_loss(&x(), &y(), 0.0, Reduction::Mean), &[0.7]);
        for r in ALL {
            check_grad(|v| smooth_l1_loss(&v[0], &v[1], 0.3, r), &[x(), y()]);
            check_grad(|v| smooth_l1_loss(&v[0], &v[1], 1.0, r), &[x(), y()]);
        }
        assert!(smooth_l1_loss(&x(), &y(), -1.0, Reduction::Mean).is_err());
    }

    #[test]
    fn huber_hand_computed() {
        // δ = 0.3: |d| ≤ 0.3 ⇒ 0.5d² = 0.02, 0.005; else 0.3·(0.5 − 0.15) = 0.105,
        // 0.3·(2 − 0.15) = 0.555; sum 0.685, mean 0.17125
        assert_loss(huber_loss(&x(), &y(), 0.3, Reduction::None), &[0.105, 0.02, 0.555, 0.005]);
        assert_loss(huber_loss(&x(), &y(), 0.3, Reduction::Sum), &[0.685]);
        assert_loss(huber_loss(&x(), &y(), 0.3, Reduction::Mean), &[0.17125]);
        // δ = 1 equals smooth L1 with β = 1
        assert_loss(huber_loss(&x(), &y(), 1.0, Reduction::Mean), &[0.4125]);
        for r in ALL {
            check_grad(|v| huber_loss(&v[0], &v[1], 0.3, r), &[x(), y()]);
        }
        assert!(huber_loss(&x(), &y(), 0.0, Reduction::Mean).is_err());
    }

    #[test]
    fn shape_and_dtype_mismatch_are_errors() {
        let z = t(&[1.0, 2.0], &[2]);
        assert!(l1_loss(&x(), &z, Reduction::Mean).is_err());
        assert!(mse_loss(&x(), &y().to_dtype(DType::F32), Reduction::Mean).is_err());
        // mean of nothing is NaN, as PyTorch
        let empty = Tensor::zeros(&[0], DType::F64).unwrap();
        assert!(mse_loss(&empty, &empty, Reduction::Mean).unwrap().item().unwrap().is_nan());
    }
}

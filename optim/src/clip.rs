//! Gradient clipping, like `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
//!
//! Both are tensor ops on the gradients, so they run eagerly and inside a compiled step alike.
//! The global norm is accumulated in f64 whatever the parameters' element type (PyTorch
//! accumulates in the parameters' type; f64 makes the returned norm independent of how the
//! parameters are split into tensors). A non-finite norm is an error and leaves every gradient
//! unchanged (PyTorch's `error_if_nonfinite=True`): a NaN must never reach the weights. In a
//! compiled step the finiteness check is a guard, so a call whose norm is not finite writes
//! nothing and ends with the same error.

use crate::grad::replace_grad;
use crate::{Error, Range, Result};
use graphgrad_autodiff::{DType, Tensor, Var};

/// Scales all gradients by `max_norm / (‖g‖ + 1e-6)` when the global L2 norm `‖g‖` of every
/// gradient taken together exceeds `max_norm`; returns `‖g‖` before clipping, as an f64 scalar
/// tensor (like PyTorch). Parameters without a gradient are ignored.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::clip_grad_norm;
/// let w = Var::new("w", &Tensor::from_vec(vec![1.5f64, 2.0], &[2])?);
/// w.mul(&w)?.sum_all().backward()?; // g = 2w = [3, 4], ‖g‖ = 5
/// let norm = clip_grad_norm(&[("w".to_string(), w.clone())], 1.0)?;
/// assert_eq!(norm.item()?, 5.0);
/// let g = w.grad().unwrap().to_vec::<f64>()?; // [3, 4]·1/(5 + 1e-6) ≈ [0.6, 0.8]
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub fn clip_grad_norm(params: &[(String, Var)], max_norm: f64) -> Result<Tensor> {
    Range::NonNegative.check("clip_grad_norm", "max_norm", max_norm)?;
    let grads: Vec<(&String, &Var, Tensor)> =
        params.iter().filter_map(|(name, var)| var.grad().map(|g| (name, var, g))).collect();
    let parts: Vec<Tensor> =
        grads.iter().map(|(_, _, g)| g.to_dtype(DType::F64).square().sum_all()).collect();
    let mut sum_sq = Tensor::scalar(0.0f64);
    for part in &parts {
        sum_sq = sum_sq.add(part)?;
    }
    let norm = sum_sq.sqrt();
    // x − x is 0 exactly when x is finite
    if norm.sub(&norm)?.eq_scalar(0.0).item()? != 1.0 {
        let first_bad = grads.iter().zip(&parts).find(|(_, p)| !p.read().to_f64_vec()[0].is_finite());
        let param = first_bad.map(|((name, _, _), _)| name.to_string()).unwrap_or_default();
        return Err(Error::NonFiniteGradient {
            op: "clip_grad_norm",
            param,
            norm: Some(norm.read().to_f64_vec()[0]),
        });
    }
    // min(1, max_norm / (‖g‖ + 1e-6)): multiplying by exactly 1 leaves small gradients alone
    let coef = Tensor::scalar(max_norm).div(&norm.add_scalar(1e-6))?.minimum_scalar(1.0);
    for (_, var, g) in &grads {
        replace_grad(var, &g.mul(&coef.to_dtype(g.dtype()))?.detach())?;
    }
    Ok(norm)
}

/// Clamps every gradient element into `[-clip_value, clip_value]`.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::clip_grad_value;
/// let w = Var::new("w", &Tensor::from_vec(vec![-2.0f32, 0.1], &[2])?);
/// w.mul(&w)?.sum_all().backward()?; // g = [−4, 0.2]
/// clip_grad_value(&[("w".to_string(), w.clone())], 1.0)?;
/// assert_eq!(w.grad().unwrap().to_vec::<f32>()?, vec![-1.0, 0.2]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub fn clip_grad_value(params: &[(String, Var)], clip_value: f64) -> Result<()> {
    Range::NonNegative.check("clip_grad_value", "clip_value", clip_value)?;
    for (_, var) in params {
        if let Some(grad) = var.grad() {
            replace_grad(var, &grad.clamp(-clip_value, clip_value)?.detach())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::replace_grad;
    use graphgrad_autodiff::Tensor;

    fn var_with_grad(name: &str, grad: Vec<f64>) -> (String, Var) {
        let n = grad.len();
        let var = Var::new(name, &Tensor::zeros(&[n], graphgrad_autodiff::DType::F64).unwrap());
        replace_grad(&var, &Tensor::from_vec(grad, &[n]).unwrap()).unwrap();
        (name.to_string(), var)
    }

    /// Two tensors, g = [3, 0] and [0, 4]: ‖g‖ = 5 across both; max_norm 2.5 scales by
    /// 2.5/(5 + 1e-6) = 0.49999990000002, giving [1.49999970000006, 0] and [0, 1.99999960000008].
    #[test]
    fn norm_is_global_across_tensors_and_scaling_matches_pytorch() {
        let params = vec![var_with_grad("a", vec![3.0, 0.0]), var_with_grad("b", vec![0.0, 4.0])];
        assert_eq!(clip_grad_norm(&params, 2.5).unwrap().item().unwrap(), 5.0);
        let coef = 2.5 / (5.0 + 1e-6);
        assert_eq!(params[0].1.grad().unwrap().to_vec::<f64>().unwrap(), vec![3.0 * coef, 0.0]);
        assert_eq!(params[1].1.grad().unwrap().to_vec::<f64>().unwrap(), vec![0.0, 4.0 * coef]);
    }

    #[test]
    fn small_gradients_are_left_alone() {
        let params = vec![var_with_grad("a", vec![0.3, 0.4])];
        assert!((clip_grad_norm(&params, 1.0).unwrap().item().unwrap() - 0.5).abs() < 1e-15);
        assert_eq!(params[0].1.grad().unwrap().to_vec::<f64>().unwrap(), vec![0.3, 0.4]);
    }

    #[test]
    fn non_finite_norm_is_an_error_and_changes_nothing() {
        let params = vec![var_with_grad("ok", vec![10.0]), var_with_grad("bad", vec![f64::NAN])];
        let err = clip_grad_norm(&params, 1.0).unwrap_err();
        assert!(err.to_string().contains("`bad`"), "{err}");
        assert_eq!(params[0].1.grad().unwrap().to_vec::<f64>().unwrap(), vec![10.0]);
    }

    #[test]
    fn value_clipping_clamps_each_element() {
        let params = vec![var_with_grad("a", vec![-3.0, 0.5, 7.0])];
        clip_grad_value(&params, 1.0).unwrap();
        assert_eq!(params[0].1.grad().unwrap().to_vec::<f64>().unwrap(), vec![-1.0, 0.5, 1.0]);
        assert!(clip_grad_value(&params, -1.0).is_err());
    }
}

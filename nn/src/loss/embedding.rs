//! Distances and similarities between embeddings, and the cosine embedding loss (PyTorch's
//! `pairwise_distance`, `cosine_similarity`, `cosine_embedding_loss`). Vectors lie along the
//! last axis unless a `dim` is given.

use super::{same_shape, Reduction};
use graphgrad_autodiff::{bail, reported_as, Result, Tensor};

/// The p-norm distance ‖x1 − x2 + eps‖_p along the last axis (p = 1: L1, p = 2: L2 (PyTorch's
/// default), any p > 0, or `f64::INFINITY`: the largest difference). `eps` (PyTorch: 1e-6)
/// keeps the gradient finite for equal vectors. Shapes broadcast; the last axis is removed
/// unless `keepdim`.
///
/// ```
/// use graphgrad_nn::loss::pairwise_distance;
/// use graphgrad_autodiff::Tensor;
/// let a = Tensor::from_vec(vec![0.0f64, 0.0], &[1, 2])?;
/// let b = Tensor::from_vec(vec![3.0f64, 4.0], &[1, 2])?;
/// assert_eq!(pairwise_distance(&a, &b, 2.0, 0.0, false)?.to_vec::<f64>()?, vec![5.0]);
/// assert_eq!(pairwise_distance(&a, &b, 1.0, 0.0, false)?.to_vec::<f64>()?, vec![7.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn pairwise_distance(x1: &Tensor, x2: &Tensor, p: f64, eps: f64, keepdim: bool) -> Result<Tensor> {
    reported_as("pairwise_distance", || {
        const OP: &str = "pairwise_distance";
        if p.is_nan() || p <= 0.0 {
            bail!(OP, "p must be positive, got {p}");
        }
        let d = x1.sub(x2)?.add_scalar(eps);
        if d.rank() == 0 {
            bail!(OP, "needs vectors along a last axis, got scalars");
        }
        if p == 1.0 {
            d.abs().sum(&[-1], keepdim)
        } else if p == 2.0 {
            Ok(d.square().sum(&[-1], keepdim)?.sqrt())
        } else if p.is_infinite() {
            d.abs().max(&[-1], keepdim)
        } else {
            Ok(d.abs().pow_scalar(p).sum(&[-1], keepdim)?.pow_scalar(1.0 / p))
        }
    })
}

/// x1·x2 / (max(‖x1‖, eps)·max(‖x2‖, eps)) along `dim` (PyTorch's defaults: dim 1,
/// eps 1e-8). Shapes broadcast; `dim` is removed.
pub fn cosine_similarity(x1: &Tensor, x2: &Tensor, dim: isize, eps: f64) -> Result<Tensor> {
    reported_as("cosine_similarity", || {
        // each vector divided by its (clamped) norm first, as PyTorch, for stability
        let n1 = x1.square().sum(&[dim], true)?.sqrt().maximum_scalar(eps);
        let n2 = x2.square().sum(&[dim], true)?.sqrt().maximum_scalar(eps);
        x1.div(&n1)?.mul(&x2.div(&n2)?)?.sum(&[dim], false)
    })
}

/// Cosine embedding loss (PyTorch's `cosine_embedding_loss`) for pairs along the last axis
/// and labels y ∈ {1, −1}: `1 − cos(x1, x2)` for y = 1, `max(0, cos(x1, x2) − margin)` for
/// y = −1 (any other label contributes 0). The cosine uses
/// `Σ x1x2 / √((Σ x1² + 1e-12)(Σ x2² + 1e-12))`, as PyTorch.
///
/// # Shapes
/// - x1, x2: `[batch, dim]` or `[dim]`; y: `[batch]` or `[]`
/// - unreduced output: y's shape
pub fn cosine_embedding_loss(
    x1: &Tensor,
    x2: &Tensor,
    y: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("cosine_embedding_loss", || {
        const OP: &str = "cosine_embedding_loss";
        const EPSILON: f64 = 1e-12;
        same_shape(OP, x1, x2)?;
        if !(x1.rank() == 1 || x1.rank() == 2) || y.shape() != &x1.shape()[..x1.rank() - 1] {
            bail!(
                OP,
                "expects x1, x2 [batch, dim] or [dim] and y [batch] or [], got {:?} and y {:?}",
                x1.shape(),
                y.shape()
            );
        }
        let prod = x1.mul(x2)?.sum(&[-1], false)?;
        let mag1 = x1.square().sum(&[-1], false)?.add_scalar(EPSILON);
        let mag2 = x2.square().sum(&[-1], false)?.add_scalar(EPSILON);
        let cos = prod.div(&mag1.mul(&mag2)?.sqrt())?;
        let zero = Tensor::scalar_of(0.0, cos.dtype());
        let positive = Tensor::where_(&y.eq_scalar(1.0), &cos.neg().add_scalar(1.0), &zero)?;
        let negative = Tensor::where_(&y.eq_scalar(-1.0), &cos.add_scalar(-margin).relu(), &zero)?;
        Ok(reduction.apply(positive.add(&negative)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::tests::{assert_loss, check_grad, t};

    const ALL: [Reduction; 3] = [Reduction::None, Reduction::Sum, Reduction::Mean];

    #[test]
    fn pairwise_distance_l1_l2() {
        // rows: [0, 0] vs [3, 4] → L2 5, L1 7; [1, 2] vs [2, 0] → d = [−1, 2]: L2 √5, L1 3
        let a = t(&[0.0, 0.0, 1.0, 2.0], &[2, 2]);
        let b = t(&[3.0, 4.0, 2.0, 0.0], &[2, 2]);
        assert_loss(pairwise_distance(&a, &b, 2.0, 0.0, false), &[5.0, 5f64.sqrt()]);
        assert_loss(pairwise_distance(&a, &b, 1.0, 0.0, false), &[7.0, 3.0]);
        // p = 3: (27 + 64)^(1/3); (1 + 8)^(1/3)
        assert_loss(pairwise_distance(&a, &b, 3.0, 0.0, false), &[91f64.cbrt(), 9f64.cbrt()]);
        assert_loss(pairwise_distance(&a, &b, f64::INFINITY, 0.0, false), &[4.0, 2.0]);
        assert_eq!(pairwise_distance(&a, &b, 2.0, 0.0, true).unwrap().shape(), &[2, 1]);
        // eps is added to the difference: [0, 0] vs [0, 0] with eps 1e-6 → √2·1e-6
        let z = t(&[0.0, 0.0], &[2]);
        assert_loss(pairwise_distance(&z, &z, 2.0, 1e-6, false), &[2f64.sqrt() * 1e-6]);
        for p in [1.0, 2.0, 3.0] {
            check_grad(|v| pairwise_distance(&v[0], &v[1], p, 1e-6, false), &[a.clone(), b.clone()]);
        }
        assert!(pairwise_distance(&a, &b, 0.0, 0.0, false).is_err());
    }

    #[test]
    fn cosine_similarity_hand_computed() {
        // dim 1: [1, 0]·[0, 1] = 0; [3, 4]·[4, 3] = 24 over 5·5 → 0.96
        let a = t(&[1.0, 0.0, 3.0, 4.0], &[2, 2]);
        let b = t(&[0.0, 1.0, 4.0, 3.0], &[2, 2]);
        assert_loss(cosine_similarity(&a, &b, 1, 1e-8), &[0.0, 0.96]);
        // dim 0: columns [1, 3]·[0, 4] = 12 over √10·4, and [0, 4]·[1, 3] = 12 over 4·√10
        let c = 3.0 / 10f64.sqrt();
        assert_loss(cosine_similarity(&a, &b, 0, 1e-8), &[c, c]);
        check_grad(|v| cosine_similarity(&v[0], &v[1], 1, 1e-8), &[a.clone(), b.clone()]);
        check_grad(|v| cosine_similarity(&v[0], &v[1], 0, 1e-8), &[a.clone(), b.clone()]);
        // a zero vector gives 0, not NaN (its norm is clamped to eps)
        assert_loss(cosine_similarity(&t(&[0.0, 0.0], &[2]), &t(&[1.0, 0.0], &[2]), 0, 1e-8), &[0.0]);
    }

    #[test]
    fn cosine_embedding_loss_hand_computed() {
        // pairs: [1, 0]/[0, 1] cos 0, y = 1 → 1
        //        [1, 1]/[1, 0] cos 1/√2, y = −1, margin 0.5 → 1/√2 − 0.5
        //        [3, 4]/[4, 3] cos 0.96, y = 1 → 0.04
        //        [1, 0]/[−1, 0.5] cos < 0, y = −1 → 0
        let x1 = t(&[1.0, 0.0, 1.0, 1.0, 3.0, 4.0, 1.0, 0.0], &[4, 2]);
        let x2 = t(&[0.0, 1.0, 1.0, 0.0, 4.0, 3.0, -1.0, 0.5], &[4, 2]);
        let y = t(&[1.0, -1.0, 1.0, -1.0], &[4]);
        let l = [1.0, 0.5f64.sqrt() - 0.5, 0.04, 0.0];
        assert_loss(cosine_embedding_loss(&x1, &x2, &y, 0.5, Reduction::None), &l);
        assert_loss(cosine_embedding_loss(&x1, &x2, &y, 0.5, Reduction::Sum), &[l.iter().sum()]);
        assert_loss(
            cosine_embedding_loss(&x1, &x2, &y, 0.5, Reduction::Mean),
            &[l.iter().sum::<f64>() / 4.0],
        );
        for r in ALL {
            check_grad(|v| cosine_embedding_loss(&v[0], &v[1], &y, 0.5, r), &[x1.clone(), x2.clone()]);
        }
        assert!(cosine_embedding_loss(&x1, &x2, &t(&[1.0], &[1]), 0.0, Reduction::Mean).is_err());
    }
}

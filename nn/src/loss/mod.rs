//! Loss functions, as PyTorch's `torch.nn.functional` ones, grouped by family:
//! [`regression`] (L1, smooth L1, Huber, MSE), [`classification`] (cross-entropy, NLL,
//! binary cross-entropy, KL divergence), [`margin`] (multi-margin, margin ranking, hinge
//! embedding, triplet) and [`embedding`] (pairwise distance, cosine similarity, cosine
//! embedding).
//!
//! Every loss takes a [`Reduction`]: `Mean` (the default, as PyTorch), `Sum` or `None`
//! (the per-element or per-sample losses). Class targets are `&[usize]` class indices, one
//! per sample; other targets are tensors of the input's shape (no implicit broadcasting).
//! Losses are built from differentiable tensor ops, so they gradcheck and differentiate twice.

pub mod classification;
pub mod embedding;
pub mod margin;
pub mod regression;

pub use classification::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, kl_div, nll_loss, one_hot,
    CrossEntropyLoss, NllLoss,
};
pub use embedding::{cosine_embedding_loss, cosine_similarity, pairwise_distance};
pub use margin::{
    hinge_embedding_loss, margin_ranking_loss, multi_margin_loss, triplet_margin_loss, TripletMarginLoss,
};
pub use regression::{huber_loss, l1_loss, mse_loss, smooth_l1_loss};

use graphgrad_autodiff::{Error, Result, Tensor};

/// How per-element losses are combined (PyTorch's `reduction` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (weighted mean for losses with class weights).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: the unreduced losses.
    None,
}

impl Reduction {
    /// Applies the reduction to unreduced losses (the mean of no elements is NaN, as PyTorch).
    /// It cannot fail, so it returns a `Tensor`.
    pub fn apply(self, losses: Tensor) -> Tensor {
        match self {
            Reduction::Mean => losses.mean_all(),
            Reduction::Sum => losses.sum_all(),
            Reduction::None => losses,
        }
    }
}

/// Errors unless `a` and `b` have the same shape and element type.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch { op, lhs: a.shape().into(), rhs: b.shape().into() });
    }
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use graphgrad_autodiff::{gradcheck, GradcheckOptions, Result, Tensor};
    use graphgrad_ops::testing::assert_close;

    /// An f64 tensor.
    pub(crate) fn t(values: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape).unwrap()
    }

    /// Asserts the loss value(s).
    #[track_caller]
    pub(crate) fn assert_loss(loss: Result<Tensor>, expected: &[f64]) {
        let loss = loss.unwrap();
        assert_close(&loss.to_f64_vec(), expected, 1e-12, 1e-10);
    }

    /// Gradchecks `f` at `inputs` (f64).
    #[track_caller]
    pub(crate) fn check_grad(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
        gradcheck(f, inputs, GradcheckOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    }
}

//! Margin losses (PyTorch's `multi_margin_loss`, `margin_ranking_loss`,
//! `hinge_embedding_loss`, `triplet_margin_loss`).

use super::classification::{class_rows, class_targets, one_hot};
use super::embedding::pairwise_distance;
use super::{same_shape, Reduction};
use graphgrad_autodiff::{bail, reported_as, Error, IntoIndices, Result, Tensor};

/// Multi-class hinge loss (PyTorch's `MultiMarginLoss`): for scores x and target class y,
/// `l = Σ_{j≠y} w[y]·max(0, margin − x[y] + x[j])^p / C` with p ∈ {1, 2} (default 1, margin 1).
///
/// # Shapes
/// - input: `[batch, classes]` or `[classes]`, one target per sample
/// - unreduced output: `[batch]` or `[]`; `weight`: `[classes]`
pub fn multi_margin_loss(
    input: &Tensor,
    target: impl IntoIndices,
    p: u32,
    margin: f64,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("multi_margin_loss", || {
        const OP: &str = "multi_margin_loss";
        if p != 1 && p != 2 {
            bail!(OP, "only p = 1 and p = 2 are supported, got {p}");
        }
        if input.rank() > 2 {
            bail!(OP, "expects [batch, classes] or [classes], got {:?}", input.shape());
        }
        let (rows, out_shape) = class_rows(OP, input)?;
        let (samples, classes) = (rows.shape()[0], rows.shape()[1]);
        let target = class_targets(OP, target, samples)?;
        // x_y: [samples, 1] (the gather reports a target that is not a class)
        let x_y = rows.gather(1, &target.reshape(&[samples, 1])?, None)?;
        // hinge: [samples, classes] = max(0, margin − x[y] + x[j])^p
        let mut hinge = rows.sub(&x_y)?.add_scalar(margin).relu();
        if p == 2 {
            hinge = hinge.square();
        }
        // the target class itself is excluded
        let others = one_hot(&target, classes, rows.dtype())?.neg().add_scalar(1.0);
        let mut losses = hinge.mul(&others)?.sum(&[1], false)?.mul_scalar(1.0 / classes as f64);
        if let Some(w) = weight {
            if w.shape() != [classes] {
                return Err(Error::ShapeMismatch { op: OP, lhs: rows.shape().into(), rhs: w.shape().into() });
            }
            losses = losses.mul(&w.index_select(0, &target)?)?;
        }
        Ok(reduction.apply(losses.reshape(&out_shape)?))
    })
}

/// `max(0, −y·(x1 − x2) + margin)` for labels y ∈ {1, −1} (y = 1: x1 should rank higher).
/// All three tensors have the same shape.
pub fn margin_ranking_loss(
    x1: &Tensor,
    x2: &Tensor,
    y: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("margin_ranking_loss", || {
        const OP: &str = "margin_ranking_loss";
        same_shape(OP, x1, x2)?;
        same_shape(OP, x1, y)?;
        Ok(reduction.apply(y.mul(&x1.sub(x2)?)?.neg().add_scalar(margin).relu()))
    })
}

/// Hinge embedding loss for labels y ∈ {1, −1} (PyTorch's): `x` where y = 1,
/// `max(0, margin − x)` where y = −1 (inputs are typically distances; default margin 1).
pub fn hinge_embedding_loss(
    input: &Tensor,
    target: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("hinge_embedding_loss", || {
        const OP: &str = "hinge_embedding_loss";
        same_shape(OP, input, target)?;
        let zero = Tensor::scalar_of(0.0, input.dtype());
        // as PyTorch: where(y ≠ 1, max(0, margin − x), 0) + where(y ≠ −1, x, 0)
        let margin_part =
            Tensor::where_(&target.ne_scalar(1.0), &input.neg().add_scalar(margin).relu(), &zero)?;
        let self_part = Tensor::where_(&target.ne_scalar(-1.0), input, &zero)?;
        Ok(reduction.apply(margin_part.add(&self_part)?))
    })
}

/// Triplet margin loss (PyTorch's `TripletMarginLoss`):
/// `max(0, d(a, p) − d(a, n) + margin)` with d the [`pairwise_distance`] of norm `p`; with
/// `swap`, d(a, n) is replaced by min(d(a, n), d(p, n)) (the distance swap of Balntas et al.).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletMarginLoss {
    /// Required gap between the negative and positive distances (default 1).
    pub margin: f64,
    /// Norm degree of the distance (default 2).
    pub p: f64,
    /// Added to differences for a finite gradient (default 1e-6).
    pub eps: f64,
    /// Use the distance swap (default false).
    pub swap: bool,
    /// How to combine the per-triplet losses (default mean).
    pub reduction: Reduction,
}

impl Default for TripletMarginLoss {
    fn default() -> Self {
        TripletMarginLoss { margin: 1.0, p: 2.0, eps: 1e-6, swap: false, reduction: Reduction::Mean }
    }
}

impl TripletMarginLoss {
    /// PyTorch's defaults: margin 1, p 2, eps 1e-6, no swap, mean.
    pub fn new() -> TripletMarginLoss {
        TripletMarginLoss::default()
    }

    /// The loss of triplets `[batch, dim]` (or `[dim]`); unreduced: `[batch]` (or `[]`).
    pub fn forward(&self, anchor: &Tensor, positive: &Tensor, negative: &Tensor) -> Result<Tensor> {
        const OP: &str = "triplet_margin_loss";
        same_shape(OP, anchor, positive)?;
        same_shape(OP, anchor, negative)?;
        let d_ap = pairwise_distance(anchor, positive, self.p, self.eps, false)?;
        let mut d_an = pairwise_distance(anchor, negative, self.p, self.eps, false)?;
        if self.swap {
            d_an = d_an.minimum(&pairwise_distance(positive, negative, self.p, self.eps, false)?)?;
        }
        Ok(self.reduction.apply(d_ap.sub(&d_an)?.add_scalar(self.margin).relu()))
    }
}

/// [`TripletMarginLoss`] with L2 distance, eps 1e-6 and no swap.
pub fn triplet_margin_loss(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("triplet_margin_loss", || {
        TripletMarginLoss { margin, reduction, ..TripletMarginLoss::default() }
            .forward(anchor, positive, negative)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::tests::{assert_loss, check_grad, t};

    const ALL: [Reduction; 3] = [Reduction::None, Reduction::Sum, Reduction::Mean];

    #[test]
    fn multi_margin_hand_computed() {
        // row 0 (PyTorch's doc example): x = [0.1, 0.2, 0.4, 0.8], y = 3:
        //   (1 − 0.8 + 0.1) + (1 − 0.8 + 0.2) + (1 − 0.8 + 0.4) = 0.3 + 0.4 + 0.6, / 4 = 0.325
        // row 1: x = [1, −0.5, 0.3, 0.1], y = 0: max(0, −0.5) + 0.3 + 0.1 = 0.4, / 4 = 0.1
        let x = t(&[0.1, 0.2, 0.4, 0.8, 1.0, -0.5, 0.3, 0.1], &[2, 4]);
        let y = [3, 0];
        assert_loss(multi_margin_loss(&x, &y, 1, 1.0, None, Reduction::None), &[0.325, 0.1]);
        assert_loss(multi_margin_loss(&x, &y, 1, 1.0, None, Reduction::Sum), &[0.425]);
        assert_loss(multi_margin_loss(&x, &y, 1, 1.0, None, Reduction::Mean), &[0.2125]);
        // p = 2: (0.09 + 0.16 + 0.36)/4 = 0.1525, (0.09 + 0.01)/4 = 0.025
        assert_loss(multi_margin_loss(&x, &y, 2, 1.0, None, Reduction::None), &[0.1525, 0.025]);
        // weight w[y] multiplies each sample's terms: w = [2, 1, 1, 3] → [0.975, 0.2]
        let w = t(&[2.0, 1.0, 1.0, 3.0], &[4]);
        assert_loss(multi_margin_loss(&x, &y, 1, 1.0, Some(&w), Reduction::None), &[0.975, 0.2]);
        for r in ALL {
            for p in [1, 2] {
                check_grad(|v| multi_margin_loss(&v[0], &y, p, 1.0, Some(&w), r), std::slice::from_ref(&x));
            }
        }
        // a single sample [C] gives a scalar
        let single =
            multi_margin_loss(&t(&[0.1, 0.2, 0.4, 0.8], &[4]), &[3], 1, 1.0, None, Reduction::None).unwrap();
        assert_eq!(single.shape(), &[] as &[usize]);
        assert!(multi_margin_loss(&x, &y, 3, 1.0, None, Reduction::Mean).is_err());
        assert!(multi_margin_loss(&x, &[4, 0], 1, 1.0, None, Reduction::Mean).is_err());
    }

    #[test]
    fn margin_ranking_hand_computed() {
        // margin 0.1: −1·(1 − 0.5) + 0.1 = −0.4 → 0; −1·(2 − 3) + 0.1 = 1.1; 1·(0.5 − 0.5) + 0.1
        let (x1, x2) = (t(&[1.0, 2.0, 0.5], &[3]), t(&[0.5, 3.0, 0.5], &[3]));
        let y = t(&[1.0, 1.0, -1.0], &[3]);
        assert_loss(margin_ranking_loss(&x1, &x2, &y, 0.1, Reduction::None), &[0.0, 1.1, 0.1]);
        assert_loss(margin_ranking_loss(&x1, &x2, &y, 0.1, Reduction::Sum), &[1.2]);
        assert_loss(margin_ranking_loss(&x1, &x2, &y, 0.1, Reduction::Mean), &[0.4]);
        for r in ALL {
            check_grad(|v| margin_ranking_loss(&v[0], &v[1], &y, 0.1, r), &[x1.clone(), x2.clone()]);
        }
        assert!(margin_ranking_loss(&x1, &x2, &t(&[1.0], &[1]), 0.0, Reduction::Mean).is_err());
    }

    #[test]
    fn hinge_embedding_hand_computed() {
        // y = 1 → x; y = −1 → max(0, 1 − x): [0.3, max(0, −1) = 0, 0.5, −1]
        let x = t(&[0.3, 2.0, 0.5, -1.0], &[2, 2]);
        let y = t(&[1.0, -1.0, -1.0, 1.0], &[2, 2]);
        assert_loss(hinge_embedding_loss(&x, &y, 1.0, Reduction::None), &[0.3, 0.0, 0.5, -1.0]);
        assert_loss(hinge_embedding_loss(&x, &y, 1.0, Reduction::Sum), &[-0.2]);
        assert_loss(hinge_embedding_loss(&x, &y, 1.0, Reduction::Mean), &[-0.05]);
        for r in ALL {
            check_grad(|v| hinge_embedding_loss(&v[0], &y, 1.0, r), std::slice::from_ref(&x));
        }
    }

    #[test]
    fn triplet_hand_computed() {
        // eps 0, L2: triplet 0: a = [0, 0], p = [3, 4] (d 5), n = [1, 0] (d 1): 5 − 1 + 1 = 5
        //            triplet 1: a = [1, 1], p = [1, 2] (d 1), n = [4, 5] (d 5): 1 − 5 + 1 < 0 → 0
        let a = t(&[0.0, 0.0, 1.0, 1.0], &[2, 2]);
        let p = t(&[3.0, 4.0, 1.0, 2.0], &[2, 2]);
        let n = t(&[1.0, 0.0, 4.0, 5.0], &[2, 2]);
        let loss = |r| TripletMarginLoss { eps: 0.0, reduction: r, ..TripletMarginLoss::new() };
        assert_loss(loss(Reduction::None).forward(&a, &p, &n), &[5.0, 0.0]);
        assert_loss(loss(Reduction::Sum).forward(&a, &p, &n), &[5.0]);
        assert_loss(loss(Reduction::Mean).forward(&a, &p, &n), &[2.5]);
        // L1: d(a, p) = 7, d(a, n) = 1 → 7; second: 1 − 7 + 1 < 0 → 0
        assert_loss(TripletMarginLoss { p: 1.0, ..loss(Reduction::None) }.forward(&a, &p, &n), &[7.0, 0.0]);
        // swap: n = [3, 5] is 1 from p but √34 from a; with swap d(a, n) becomes 1: 5 − 1 + 1
        let (a1, p1, n1) = (t(&[0.0, 0.0], &[1, 2]), t(&[3.0, 4.0], &[1, 2]), t(&[3.0, 5.0], &[1, 2]));
        assert_loss(loss(Reduction::Sum).forward(&a1, &p1, &n1), &[6.0 - 34f64.sqrt()]);
        assert_loss(TripletMarginLoss { swap: true, ..loss(Reduction::Sum) }.forward(&a1, &p1, &n1), &[5.0]);
        // the free function uses eps 1e-6 (a tiny shift)
        let f = triplet_margin_loss(&a, &p, &n, 1.0, Reduction::Sum).unwrap().item().unwrap();
        assert!((f - 5.0).abs() < 1e-5);
        let p_moved = t(&[3.0, 4.0, 1.0, 6.0], &[2, 2]); // second triplet now active: √26 − 5 + 1
        for r in ALL {
            check_grad(|v| loss(r).forward(&v[0], &v[1], &v[2]), &[a.clone(), p_moved.clone(), n.clone()]);
            let swapped = TripletMarginLoss { swap: true, ..loss(r) };
            check_grad(|v| swapped.forward(&v[0], &v[1], &v[2]), &[a1.clone(), p1.clone(), n1.clone()]);
        }
    }
}

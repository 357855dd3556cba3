//! The losses family: each case names a loss of `graphgrad::nn::loss` (`"loss"`), its inputs
//! (`input`, `target`, `weight`, ...; class targets are i64) and settings. `one_hot`, whose
//! targets are classes too, is here with them.

use crate::golden::{Args, Attrs, Case, Res};
use graphgrad::autodiff::{DType, Tensor};
use graphgrad::nn::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss, cosine_similarity,
    hinge_embedding_loss, huber_loss, kl_div, l1_loss, margin_ranking_loss, mse_loss, multi_margin_loss,
    one_hot, pairwise_distance, smooth_l1_loss, CrossEntropyLoss, NllLoss, TripletMarginLoss,
};
use graphgrad::nn::Reduction;
use std::collections::BTreeMap;

fn reduction(a: &Attrs) -> Res<Reduction> {
    match a.str("reduction")? {
        "mean" => Ok(Reduction::Mean),
        "sum" => Ok(Reduction::Sum),
        "none" => Ok(Reduction::None),
        other => Err(format!("unknown reduction {other:?}").into()),
    }
}

/// A norm degree: a number, or `"inf"`.
fn degree(a: &Attrs, key: &str) -> Res<f64> {
    match a.str(key) {
        Ok("inf") => Ok(f64::INFINITY),
        _ => a.f64(key),
    }
}

impl Args<'_> {
    /// The prediction.
    fn input(&self) -> Res<&Tensor> {
        self.t("input")
    }

    fn target(&self) -> Res<&Tensor> {
        self.t("target")
    }

    fn red(&self) -> Res<Reduction> {
        reduction(self.attrs)
    }
}

/// How a case's loss is computed from its inputs.
pub type LossFn = fn(&Args) -> Res<Tensor>;

/// Every loss the golden file may name, with how graphgrad computes it. A case naming a loss
/// not here fails; a loss here that no case names fails too (`losses_match_pytorch`).
pub const TABLE: &[(&str, LossFn)] = &[
    ("l1_loss", |g| Ok(l1_loss(g.input()?, g.target()?, g.red()?)?)),
    ("mse_loss", |g| Ok(mse_loss(g.input()?, g.target()?, g.red()?)?)),
    ("smooth_l1_loss", |g| Ok(smooth_l1_loss(g.input()?, g.target()?, g.attrs.f64("beta")?, g.red()?)?)),
    ("huber_loss", |g| Ok(huber_loss(g.input()?, g.target()?, g.attrs.f64("delta")?, g.red()?)?)),
    ("cross_entropy", |g| {
        let loss = CrossEntropyLoss {
            weight: g.opt("weight").cloned(),
            ignore_index: g.attrs.opt_usize("ignore_index")?,
            label_smoothing: g.attrs.f64_or("label_smoothing", 0.0)?,
            reduction: g.red()?,
        };
        Ok(loss.forward(g.input()?, g.target()?)?)
    }),
    ("nll_loss", |g| {
        let loss = NllLoss {
            weight: g.opt("weight").cloned(),
            ignore_index: g.attrs.opt_usize("ignore_index")?,
            reduction: g.red()?,
        };
        Ok(loss.forward(g.input()?, g.target()?)?)
    }),
    ("binary_cross_entropy", |g| {
        Ok(binary_cross_entropy(g.input()?, g.target()?, g.opt("weight"), g.red()?)?)
    }),
    ("binary_cross_entropy_with_logits", |g| {
        Ok(binary_cross_entropy_with_logits(
            g.input()?,
            g.target()?,
            g.opt("weight"),
            g.opt("pos_weight"),
            g.red()?,
        )?)
    }),
    ("kl_div", |g| Ok(kl_div(g.input()?, g.target()?, g.red()?, g.attrs.bool("log_target")?)?)),
    ("multi_margin_loss", |g| {
        let p = u32::try_from(g.attrs.usize("p")?)?;
        Ok(multi_margin_loss(g.input()?, g.target()?, p, g.attrs.f64("margin")?, g.opt("weight"), g.red()?)?)
    }),
    ("margin_ranking_loss", |g| {
        Ok(margin_ranking_loss(g.t("x1")?, g.t("x2")?, g.t("y")?, g.attrs.f64("margin")?, g.red()?)?)
    }),
    ("hinge_embedding_loss", |g| {
        Ok(hinge_embedding_loss(g.input()?, g.target()?, g.attrs.f64("margin")?, g.red()?)?)
    }),
    ("triplet_margin_loss", |g| {
        let loss = TripletMarginLoss {
            margin: g.attrs.f64("margin")?,
            p: degree(g.attrs, "p")?,
            eps: g.attrs.f64("eps")?,
            swap: g.attrs.bool("swap")?,
            reduction: g.red()?,
        };
        Ok(loss.forward(g.t("anchor")?, g.t("positive")?, g.t("negative")?)?)
    }),
    ("pairwise_distance", |g| {
        Ok(pairwise_distance(
            g.t("x1")?,
            g.t("x2")?,
            degree(g.attrs, "p")?,
            g.attrs.f64("eps")?,
            g.attrs.bool("keepdim")?,
        )?)
    }),
    ("cosine_similarity", |g| {
        Ok(cosine_similarity(g.t("x1")?, g.t("x2")?, g.attrs.isize("dim")?, g.attrs.f64("eps")?)?)
    }),
    ("cosine_embedding_loss", |g| {
        Ok(cosine_embedding_loss(g.t("x1")?, g.t("x2")?, g.t("y")?, g.attrs.f64("margin")?, g.red()?)?)
    }),
    ("one_hot", |g| Ok(one_hot(g.target()?, g.attrs.usize("classes")?, DType::F64)?)),
];

/// Runs loss `case["loss"]`; a loss the table does not know is an error (never a skip).
pub fn forward(case: &Case, inputs: &BTreeMap<String, Tensor>) -> Res<BTreeMap<String, Tensor>> {
    let kind = case.str("loss")?;
    let Some((_, f)) = TABLE.iter().find(|(name, _)| *name == kind) else {
        return Err(
            format!("no graphgrad loss is mapped to {kind:?} (add it to tests/parity/losses.rs)").into()
        );
    };
    let attrs = case.attrs();
    let y = f(&Args { inputs, attrs: &attrs })?;
    attrs.all_read()?;
    Ok(BTreeMap::from([("y".to_string(), y)]))
}

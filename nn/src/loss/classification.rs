//! Classification losses: cross-entropy from logits (class weights, label smoothing, ignore
//! index), negative log-likelihood, binary cross-entropy (on probabilities and on logits) and
//! KL divergence, with PyTorch's formulas and reductions.
//!
//! Class losses take scores of shape `[batch, classes]`, `[classes]` (one sample) or
//! `[batch, classes, d1, ...]` (a class axis second, as PyTorch), with one target class index
//! per sample position (`batch·d1·...` of them, row-major). Unreduced, they return
//! `[batch]`, `[]` or `[batch, d1, ...]`. Targets are an `i64` tensor (any shape with that many
//! elements) or a `usize` list ([`IntoIndices`]): inside a compiled step, pass them as a tensor
//! input, so each call reads new labels. Cross-entropy also takes class probabilities (soft
//! labels), a float tensor of the logits' shape, as PyTorch's does ([`IntoClassTarget`]).

use super::{same_shape, Reduction};
use graphgrad_autodiff::{bail, reported_as, DType, Error, IntoIndices, Result, Tensor};

/// Scores as rows `[samples, classes]` and the shape of the unreduced loss.
pub(super) fn class_rows(op: &'static str, scores: &Tensor) -> Result<(Tensor, Vec<usize>)> {
    let shape = scores.shape();
    let (rows, out_shape) = match shape.len() {
        0 => bail!(op, "scores must be [classes], [batch, classes] or [batch, classes, ...], got a scalar"),
        1 => (scores.reshape(&[1, shape[0]])?, vec![]),
        2 => (scores.clone(), vec![shape[0]]),
        rank => {
            // [N, C, d...] → [N, d..., C] → [N·d..., C]
            let perm: Vec<usize> = std::iter::once(0).chain(2..rank).chain(std::iter::once(1)).collect();
            let moved = scores.permute(&perm)?;
            let samples = scores.numel().checked_div(shape[1]).unwrap_or(0);
            let out: Vec<usize> = std::iter::once(shape[0]).chain(shape[2..].iter().copied()).collect();
            (moved.reshape(&[samples, shape[1]])?, out)
        }
    };
    Ok((rows, out_shape))
}

/// What cross-entropy compares logits with, as PyTorch's `cross_entropy` reads its target.
#[derive(Clone, Debug)]
pub enum ClassTarget {
    /// One class index per sample position (an `i64` tensor).
    Classes(Tensor),
    /// A probability per class at each sample position (a float tensor of the logits' shape).
    Probabilities(Tensor),
}

/// A cross-entropy target: a `usize` list or an `i64` tensor are class indices, a float tensor
/// class probabilities (PyTorch tells them apart by dtype too).
pub trait IntoClassTarget {
    /// The target, for `op`'s errors.
    fn into_class_target(self, op: &'static str) -> Result<ClassTarget>;
}

impl IntoClassTarget for &Tensor {
    fn into_class_target(self, op: &'static str) -> Result<ClassTarget> {
        Ok(match self.dtype() {
            DType::I64 => ClassTarget::Classes(self.into_indices(op, None)?),
            _ => ClassTarget::Probabilities(self.clone()),
        })
    }
}

impl IntoClassTarget for &[usize] {
    fn into_class_target(self, op: &'static str) -> Result<ClassTarget> {
        Ok(ClassTarget::Classes(self.into_indices(op, None)?))
    }
}

impl IntoClassTarget for &Vec<usize> {
    fn into_class_target(self, op: &'static str) -> Result<ClassTarget> {
        self.as_slice().into_class_target(op)
    }
}

impl<const N: usize> IntoClassTarget for &[usize; N] {
    fn into_class_target(self, op: &'static str) -> Result<ClassTarget> {
        self.as_slice().into_class_target(op)
    }
}

/// The target classes as a 1-d `i64` tensor of `samples` entries.
pub(super) fn class_targets(op: &'static str, target: impl IntoIndices, samples: usize) -> Result<Tensor> {
    let target = target.into_indices(op, None)?;
    if target.numel() != samples {
        bail!(op, "{} targets (shape {:?}) given for {samples} samples", target.numel(), target.shape());
    }
    target.reshape(&[samples])
}

/// 1 where a target is not `ignore_index`, else 0, in `dtype` (`None`: all 1).
fn valid_targets(target: &Tensor, ignore_index: Option<usize>, dtype: DType) -> Result<Tensor> {
    match ignore_index {
        Some(k) => Ok(target.to_dtype(DType::F64).ne_scalar(k as f64).to_dtype(dtype)),
        None => Tensor::ones(target.shape(), dtype),
    }
}

/// Per-sample negative log-likelihood `−w[yᵢ]·log_probs[i, yᵢ]` and weight `w[yᵢ]` (both 0 for
/// ignored samples), from rows `[samples, classes]` and targets `[samples]`. Every target that
/// is not ignored must be a class (the gather reports the first that is not).
fn nll_rows(
    op: &'static str,
    log_probs: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: Option<usize>,
) -> Result<(Tensor, Tensor)> {
    let (samples, classes) = (log_probs.shape()[0], log_probs.shape()[1]);
    if let Some(w) = weight {
        if w.shape() != [classes] {
            return Err(Error::ShapeMismatch { op, lhs: log_probs.shape().into(), rhs: w.shape().into() });
        }
        if w.dtype() != log_probs.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: log_probs.dtype(), rhs: w.dtype() });
        }
    }
    let valid = valid_targets(target, ignore_index, log_probs.dtype())?;
    // ignored samples read class 0, then weigh nothing
    let index = match ignore_index {
        Some(_) => target.to_dtype(DType::F64).mul(&valid.to_dtype(DType::F64))?.to_dtype(DType::I64),
        None => target.clone(),
    };
    let sample_weight = match weight {
        Some(w) => w.index_select(0, &index)?.mul(&valid)?,
        None => valid,
    };
    // picked: [samples] = log_probs[i, yᵢ]
    let picked = log_probs.gather(1, &index.reshape(&[samples, 1])?, None)?.reshape(&[samples])?;
    Ok((picked.mul(&sample_weight)?.neg(), sample_weight))
}

/// `[samples, classes]` rows that are 1 at each sample's class and 0 elsewhere (like
/// `torch.nn.functional.one_hot`), in `dtype`; every target must be below `classes`.
///
/// ```
/// use graphgrad_autodiff::{DType, Tensor};
/// use graphgrad_nn::loss::one_hot;
/// let rows = one_hot(&[2, 0], 3, DType::F32)?;
/// assert_eq!(rows.to_vec::<f32>()?, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn one_hot(target: impl IntoIndices, classes: usize, dtype: DType) -> Result<Tensor> {
    let target = target.into_indices("one_hot", None)?;
    let samples = target.numel();
    let rows = Tensor::zeros(&[samples, classes], dtype)?;
    let ones = Tensor::ones(&[samples, 1], dtype)?;
    rows.scatter_add(1, &target.reshape(&[samples, 1])?, &ones)
}

/// Reduces per-sample class losses; `Mean` divides by the total weight Σ w[yᵢ] of the
/// non-ignored samples (their count without class weights), as PyTorch.
fn reduce_weighted(
    losses: Tensor,
    sample_weight: &Tensor,
    out_shape: &[usize],
    reduction: Reduction,
) -> Result<Tensor> {
    match reduction {
        Reduction::Mean => losses.sum_all().div(&sample_weight.sum_all()),
        Reduction::Sum => Ok(losses.sum_all()),
        Reduction::None => losses.reshape(out_shape),
    }
}

/// Negative log-likelihood of target classes given log-probabilities (PyTorch's `NLLLoss`):
/// `lᵢ = −w[yᵢ]·x[i, yᵢ]`, 0 for samples whose target is `ignore_index`.
#[derive(Clone, Debug, Default)]
pub struct NllLoss {
    /// Per-class weights `[classes]` (default: all 1).
    pub weight: Option<Tensor>,
    /// A target value whose samples contribute nothing (default none).
    pub ignore_index: Option<usize>,
    /// How to combine the per-sample losses (default mean, weighted by `w[yᵢ]`).
    pub reduction: Reduction,
}

impl NllLoss {
    /// Unweighted, nothing ignored, mean reduction.
    pub fn new() -> NllLoss {
        NllLoss::default()
    }

    /// Sets the class weights `[classes]`.
    pub fn with_weight(mut self, weight: Tensor) -> NllLoss {
        self.weight = Some(weight);
        self
    }

    /// Sets the ignored target value.
    pub fn with_ignore_index(mut self, ignore_index: usize) -> NllLoss {
        self.ignore_index = Some(ignore_index);
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> NllLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `log_probs` (`[batch, classes]`, see the module docs) for `target` classes.
    pub fn forward(&self, log_probs: &Tensor, target: impl IntoIndices) -> Result<Tensor> {
        let (rows, out_shape) = class_rows("nll_loss", log_probs)?;
        let target = class_targets("nll_loss", target, rows.shape()[0])?;
        let (losses, w) = nll_rows("nll_loss", &rows, &target, self.weight.as_ref(), self.ignore_index)?;
        reduce_weighted(losses, &w, &out_shape, self.reduction)
    }
}

/// [`NllLoss`] with no class weights and nothing ignored.
pub fn nll_loss(log_probs: &Tensor, target: impl IntoIndices, reduction: Reduction) -> Result<Tensor> {
    reported_as("nll_loss", || NllLoss { reduction, ..NllLoss::default() }.forward(log_probs, target))
}

/// Cross-entropy between logits and target classes (PyTorch's `CrossEntropyLoss`):
/// log-softmax over the class axis, then [`NllLoss`]; with label smoothing ε the target is
/// the mixture (1 − ε)·onehot + ε/C, so
/// `lᵢ = (1 − ε)·(−w[yᵢ]·log pᵢ[yᵢ]) + (ε/C)·Σ_c (−w[c]·log pᵢ[c])` and `Mean` divides both
/// parts by `Σ w[yᵢ]` over non-ignored samples, exactly as PyTorch.
///
/// ```
/// use graphgrad_nn::loss::{cross_entropy, Reduction};
/// use graphgrad_autodiff::Tensor;
/// // uniform logits over 4 classes: loss ln 4 whatever the target
/// let logits = Tensor::from_vec(vec![0.0f64; 8], &[2, 4])?;
/// let loss = cross_entropy(&logits, &[3, 0], Reduction::Mean)?;
/// assert!((loss.item()? - 4f64.ln()).abs() < 1e-12);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyLoss {
    /// Per-class weights `[classes]` (default: all 1).
    pub weight: Option<Tensor>,
    /// A target value whose samples contribute nothing (default none).
    pub ignore_index: Option<usize>,
    /// ε in [0, 1] (default 0).
    pub label_smoothing: f64,
    /// How to combine the per-sample losses (default mean, weighted by `w[yᵢ]`).
    pub reduction: Reduction,
}

impl CrossEntropyLoss {
    /// Unweighted, nothing ignored, no smoothing, mean reduction.
    pub fn new() -> CrossEntropyLoss {
        CrossEntropyLoss::default()
    }

    /// Sets the class weights `[classes]`.
    pub fn with_weight(mut self, weight: Tensor) -> CrossEntropyLoss {
        self.weight = Some(weight);
        self
    }

    /// Sets the ignored target value.
    pub fn with_ignore_index(mut self, ignore_index: usize) -> CrossEntropyLoss {
        self.ignore_index = Some(ignore_index);
        self
    }

    /// Sets label smoothing ε.
    pub fn with_label_smoothing(mut self, label_smoothing: f64) -> CrossEntropyLoss {
        self.label_smoothing = label_smoothing;
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> CrossEntropyLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `logits` (`[batch, classes]`, see the module docs) for `target` classes or
    /// class probabilities.
    pub fn forward(&self, logits: &Tensor, target: impl IntoClassTarget) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            bail!(OP, "label_smoothing must be in [0, 1], got {eps}");
        }
        let (rows, out_shape) = class_rows(OP, logits)?;
        let target = match target.into_class_target(OP)? {
            ClassTarget::Classes(classes) => class_targets(OP, &classes, rows.shape()[0])?,
            ClassTarget::Probabilities(p) => {
                return self.forward_probabilities(logits, &rows, &out_shape, &p)
            }
        };
        // log_probs: [samples, classes]
        let log_probs = rows.log_softmax(1)?;
        let (nll, w) = nll_rows(OP, &log_probs, &target, self.weight.as_ref(), self.ignore_index)?;
        let nll = reduce_weighted(nll, &w, &out_shape, self.reduction)?;
        if eps == 0.0 {
            return Ok(nll);
        }
        let classes = rows.shape()[1];
        // smooth: [samples] = −Σ_c w[c]·log p[c], zero for ignored samples
        let weighted = match &self.weight {
            Some(cw) => log_probs.mul(&cw.reshape(&[1, classes])?)?,
            None => log_probs,
        };
        // valid: [samples], 0 for ignored samples (a zero class weight does not ignore a sample)
        let valid = valid_targets(&target, self.ignore_index, rows.dtype())?;
        let smooth = weighted.sum(&[1], false)?.neg().mul(&valid)?;
        let smooth = reduce_weighted(smooth, &w, &out_shape, self.reduction)?;
        nll.mul_scalar(1.0 - eps).add(&smooth.mul_scalar(eps / classes as f64))
    }

    /// `lᵢ = −Σ_c w[c]·p'[i, c]·log_softmax(x)[i, c]` with `p' = (1 − ε)·p + ε/classes`; the
    /// mean divides by the number of sample positions (PyTorch's rule for probability targets).
    fn forward_probabilities(
        &self,
        logits: &Tensor,
        rows: &Tensor,
        out_shape: &[usize],
        p: &Tensor,
    ) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        if p.shape() != logits.shape() {
            bail!(
                OP,
                "a float target holds class probabilities of the logits' shape {:?}, got {:?} {}; \
                 class indices are an i64 tensor",
                logits.shape(),
                p.shape(),
                p.dtype()
            );
        }
        if p.dtype() != logits.dtype() {
            return Err(Error::DTypeMismatch { op: OP, lhs: logits.dtype(), rhs: p.dtype() });
        }
        if self.ignore_index.is_some() {
            bail!(OP, "ignore_index applies to class-index targets, not to class probabilities");
        }
        let (samples, classes) = (rows.shape()[0], rows.shape()[1]);
        let (mut p, _) = class_rows(OP, p)?;
        if self.label_smoothing > 0.0 {
            p = p.mul_scalar(1.0 - self.label_smoothing).add_scalar(self.label_smoothing / classes as f64);
        }
        let mut log_probs = rows.log_softmax(1)?;
        if let Some(w) = &self.weight {
            if w.shape() != [classes] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: logits.shape().into(),
                    rhs: w.shape().into(),
                });
            }
            log_probs = log_probs.mul(&w.reshape(&[1, classes])?)?;
        }
        let losses = log_probs.mul(&p)?.sum(&[1], false)?.neg();
        match self.reduction {
            Reduction::Mean => Ok(losses.sum_all().mul_scalar(1.0 / samples as f64)),
            Reduction::Sum => Ok(losses.sum_all()),
            Reduction::None => losses.reshape(out_shape),
        }
    }
}

/// [`CrossEntropyLoss`] with no class weights, nothing ignored and no smoothing.
pub fn cross_entropy(logits: &Tensor, target: impl IntoClassTarget, reduction: Reduction) -> Result<Tensor> {
    reported_as("cross_entropy", || {
        CrossEntropyLoss { reduction, ..CrossEntropyLoss::default() }.forward(logits, target)
    })
}

/// ln x clamped below at −100 (as PyTorch's BCE), with a finite gradient at x = 0.
fn clamped_log(x: &Tensor) -> Result<Tensor> {
    let positive = x.gt_scalar(0.0);
    let one = Tensor::scalar_of(1.0, x.dtype());
    let floor = Tensor::scalar_of(-100.0, x.dtype());
    let safe = Tensor::where_(&positive, x, &one)?;
    Tensor::where_(&positive, &safe.log(), &floor)?.clamp(-100.0, f64::INFINITY)
}

/// Multiplies by an optional weight that must broadcast to `losses`' shape.
fn apply_weight(op: &'static str, losses: Tensor, weight: Option<&Tensor>) -> Result<Tensor> {
    let Some(w) = weight else { return Ok(losses) };
    let weighted = losses.mul(w)?;
    if weighted.shape() != losses.shape() {
        return Err(Error::ShapeMismatch { op, lhs: losses.shape().into(), rhs: w.shape().into() });
    }
    Ok(weighted)
}

/// Binary cross-entropy of probabilities `input` in [0, 1] against `target` of the same shape
/// (PyTorch's `binary_cross_entropy`): `−w·(y·ln x + (1 − y)·ln(1 − x))`, each log clamped
/// at −100, with PyTorch's gradient `w·(x − y)/max(x(1 − x), ε)` at saturated probabilities
/// (x of 0 or 1, or within ε = 1e-12 of them). `weight` broadcasts to the input's shape.
pub fn binary_cross_entropy(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("binary_cross_entropy", || {
        const OP: &str = "binary_cross_entropy";
        same_shape(OP, input, target)?;
        if input.to_f64_vec().iter().any(|v| !(0.0..=1.0).contains(v)) {
            bail!(OP, "all elements of input must be probabilities in [0, 1]");
        }
        let log_x = clamped_log(input)?;
        let log_1mx = clamped_log(&input.neg().add_scalar(1.0))?;
        // −(y·ln x + (1 − y)·ln(1 − x))
        let positive = target.mul(&log_x)?;
        let negative = target.neg().add_scalar(1.0).mul(&log_1mx)?;
        let losses = positive.add(&negative)?.neg();
        // Where x(1 − x) < ε (PyTorch's EPSILON, f32's 1e-12), PyTorch's input gradient is
        // (x − y)/ε, which pushes a saturated probability the right way, where the clamped logs'
        // derivatives would not: those elements take a first-order stand-in of the same value
        // with that gradient (and the clamped logs' gradient for the target, finite where
        // PyTorch's is infinite).
        let eps = f64::from(1e-12f32);
        let saturated = input.mul(&input.neg().add_scalar(1.0))?.lt_scalar(eps);
        let input_grad = input.sub(target)?.mul_scalar(1.0 / eps).detach();
        let target_grad = log_1mx.sub(&log_x)?.detach();
        let stand_in = losses
            .detach()
            .add(&input.sub(&input.detach())?.mul(&input_grad)?)?
            .add(&target.sub(&target.detach())?.mul(&target_grad)?)?;
        let losses = Tensor::where_(&saturated, &stand_in, &losses)?;
        Ok(reduction.apply(apply_weight(OP, losses, weight)?))
    })
}

/// Binary cross-entropy on logits, computed stably (PyTorch's
/// `binary_cross_entropy_with_logits`): with σ the sigmoid,
/// `−w·(p·y·ln σ(x) + (1 − y)·ln(1 − σ(x)))` = `w·((1 − y)·x + (1 + (p − 1)·y)·softplus(−x))`,
/// where `pos_weight` p (default 1) weighs positive examples and broadcasts along the last axis.
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    reported_as("binary_cross_entropy_with_logits", || {
        const OP: &str = "binary_cross_entropy_with_logits";
        same_shape(OP, input, target)?;
        // softplus(−x) = −ln σ(x) and −ln(1 − σ(x)) = x + softplus(−x), so
        // −(p·y·ln σ + (1 − y)·ln(1 − σ)) = (1 − y)·x + (1 + (p − 1)·y)·softplus(−x)
        let neg_log_sigmoid = input.neg().softplus();
        let log_weight = match pos_weight {
            Some(p) => apply_weight(OP, target.clone(), Some(&p.add_scalar(-1.0)))?.add_scalar(1.0),
            None => Tensor::scalar_of(1.0, input.dtype()),
        };
        let losses = target.neg().add_scalar(1.0).mul(input)?.add(&log_weight.mul(&neg_log_sigmoid)?)?;
        Ok(reduction.apply(apply_weight(OP, losses, weight)?))
    })
}

/// Kullback–Leibler divergence KL(target ‖ prediction) where `input` holds log-probabilities
/// of the prediction (PyTorch's `kl_div`): `y·(ln y − x)` pointwise (0 where y = 0), or
/// `eʸ·(y − x)` when `log_target` (the target given as log-probabilities).
///
/// `Mean` averages over all elements, as PyTorch's `reduction='mean'`; for the mathematically
/// correct `'batchmean'`, use `Sum` and divide by the batch size.
pub fn kl_div(input: &Tensor, target: &Tensor, reduction: Reduction, log_target: bool) -> Result<Tensor> {
    reported_as("kl_div", || {
        const OP: &str = "kl_div";
        same_shape(OP, input, target)?;
        let pointwise = if log_target {
            target.exp().mul(&target.sub(input)?)?
        } else {
            // xlogy: 0·ln 0 = 0 (and no NaN gradient through ln of the zeros)
            let positive = target.gt_scalar(0.0);
            let one = Tensor::scalar_of(1.0, target.dtype());
            let zero = Tensor::scalar_of(0.0, target.dtype());
            let log_target = Tensor::where_(&positive, target, &one)?.log();
            Tensor::where_(&positive, &target.mul(&log_target.sub(input)?)?, &zero)?
        };
        Ok(reduction.apply(pointwise))
    })
}

#[cfg(test)]
#[path = "classification_tests.rs"]
mod tests;

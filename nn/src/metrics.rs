//! Classification metrics: accuracy, the confusion matrix and per-class, macro- and
//! micro-averaged precision, recall and F1.
//!
//! Conventions (the same as scikit-learn's with `zero_division=0`):
//! - the confusion matrix has one row per **true** class and one column per **predicted**
//!   class: `count(t, p)` is the number of samples of class `t` predicted as `p`;
//! - precisionᵢ = TPᵢ / (TPᵢ + FPᵢ), recallᵢ = TPᵢ / (TPᵢ + FNᵢ),
//!   F1ᵢ = 2·precisionᵢ·recallᵢ / (precisionᵢ + recallᵢ);
//! - a ratio whose denominator is zero is **defined as 0**, never NaN: a class that is never
//!   predicted has precision 0, a class absent from the targets has recall 0, and F1 is 0 when
//!   precision + recall is 0;
//! - macro averages are the unweighted mean over **all** `num_classes` classes (including
//!   classes with no samples); micro averages pool the counts of every class before dividing
//!   (for single-label classification micro precision = micro recall = micro F1 = accuracy).
//!
//! ```
//! use graphgrad_nn::metrics::ConfusionMatrix;
//! let targets = [0, 0, 1, 1, 2];
//! let predicted = [0, 1, 1, 1, 2];
//! let cm = ConfusionMatrix::from_predictions(&predicted, &targets, 3)?;
//! assert_eq!(cm.count(0, 1), 1); // one sample of class 0 predicted as 1
//! assert_eq!(cm.accuracy(), 0.8);
//! println!("{cm}"); // aligned text table, rows = true class
//! println!("{}", cm.report()); // precision / recall / F1 per class, macro and micro
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```

use graphgrad_autodiff::{bail, Result, Tensor};
use std::fmt;

/// Fraction of positions where `predicted` equals `target`.
///
/// Errors when the slices differ in length or are empty (accuracy of nothing is undefined).
pub fn accuracy(predicted: &[usize], target: &[usize]) -> Result<f64> {
    check_pairs("accuracy", predicted, target)?;
    let correct = predicted.iter().zip(target).filter(|(p, t)| p == t).count();
    Ok(correct as f64 / target.len() as f64)
}

/// Accuracy of the arg-max over the last axis of `logits` (`[batch, classes]`, or any rank
/// with classes last) against `target` (one class index per row).
pub fn accuracy_from_logits(logits: &Tensor, target: &[usize]) -> Result<f64> {
    accuracy(&predictions(logits)?, target)
}

/// The predicted class of each row: the arg-max over the last axis of `logits`.
pub fn predictions(logits: &Tensor) -> Result<Vec<usize>> {
    if logits.rank() == 0 {
        bail!("predictions", "logits must have a class axis, got a scalar");
    }
    logits.argmax(-1)
}

fn check_pairs(op: &'static str, predicted: &[usize], target: &[usize]) -> Result<()> {
    if predicted.len() != target.len() {
        bail!(op, "{} predictions but {} targets", predicted.len(), target.len());
    }
    if target.is_empty() {
        bail!(op, "no samples");
    }
    Ok(())
}

/// `num / den`, defined as 0 when `den` is 0 (see the module docs).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Harmonic mean of precision and recall, 0 when both are 0.
fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major `[true class][predicted class]`.
    counts: Vec<u64>,
    labels: Vec<String>,
}

impl ConfusionMatrix {
    /// An empty matrix for classes `0..num_classes` (labelled `0`, `1`, ...).
    pub fn new(num_classes: usize) -> Result<ConfusionMatrix> {
        if num_classes == 0 {
            bail!("ConfusionMatrix", "num_classes must be positive");
        }
        let mut counts = Vec::new();
        let cells = num_classes.checked_mul(num_classes);
        if cells.is_none_or(|n| n > isize::MAX as usize / 8 || counts.try_reserve_exact(n).is_err()) {
            bail!(
                "ConfusionMatrix",
                "a {num_classes}×{num_classes} matrix of counts is too large to allocate"
            );
        }
        counts.resize(num_classes * num_classes, 0);
        Ok(ConfusionMatrix { num_classes, counts, labels: (0..num_classes).map(|c| c.to_string()).collect() })
    }

    /// The matrix of `predicted` against `target` (same length, values `< num_classes`).
    pub fn from_predictions(
        predicted: &[usize],
        target: &[usize],
        num_classes: usize,
    ) -> Result<ConfusionMatrix> {
        let mut cm = ConfusionMatrix::new(num_classes)?;
        cm.update(predicted, target)?;
        Ok(cm)
    }

    /// Names the classes in the text rendering (one label per class).
    pub fn with_labels<S: ToString>(mut self, labels: &[S]) -> Result<ConfusionMatrix> {
        if labels.len() != self.num_classes {
            bail!("ConfusionMatrix::with_labels", "{} labels for {} classes", labels.len(), self.num_classes);
        }
        self.labels = labels.iter().map(ToString::to_string).collect();
        Ok(self)
    }

    /// Adds a batch of predictions (e.g. one evaluation mini-batch). Checks everything before
    /// counting anything, so an error leaves the matrix unchanged.
    pub fn update(&mut self, predicted: &[usize], target: &[usize]) -> Result<()> {
        if predicted.len() != target.len() {
            bail!("ConfusionMatrix::update", "{} predictions but {} targets", predicted.len(), target.len());
        }
        let n = self.num_classes;
        if let Some((i, &c)) = predicted.iter().chain(target).enumerate().find(|(_, &c)| c >= n) {
            let what = if i < predicted.len() { "prediction" } else { "target" };
            bail!("ConfusionMatrix::update", "{what} {c} is not a class of 0..{n}");
        }
        for (&p, &t) in predicted.iter().zip(target) {
            self.counts[t * n + p] += 1;
        }
        Ok(())
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The class labels used in the rendering.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Samples of class `true_class` predicted as `predicted` (0 for classes out of range).
    pub fn count(&self, true_class: usize, predicted: usize) -> u64 {
        if true_class < self.num_classes && predicted < self.num_classes {
            self.counts[true_class * self.num_classes + predicted]
        } else {
            0
        }
    }

    /// The counts, row-major: row = true class, column = predicted class.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// TPᵢ: samples of class `c` predicted as `c`.
    pub fn true_positives(&self, c: usize) -> u64 {
        self.count(c, c)
    }

    /// FPᵢ: samples of other classes predicted as `c` (column sum minus the diagonal).
    pub fn false_positives(&self, c: usize) -> u64 {
        (0..self.num_classes).filter(|&t| t != c).map(|t| self.count(t, c)).sum()
    }

    /// FNᵢ: samples of class `c` predicted as another class (row sum minus the diagonal).
    pub fn false_negatives(&self, c: usize) -> u64 {
        (0..self.num_classes).filter(|&p| p != c).map(|p| self.count(c, p)).sum()
    }

    /// Samples whose true class is `c` (the row sum).
    pub fn support(&self, c: usize) -> u64 {
        (0..self.num_classes).map(|p| self.count(c, p)).sum()
    }

    /// Fraction counted on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        ratio((0..self.num_classes).map(|c| self.true_positives(c)).sum(), self.total())
    }

    /// TPᵢ / (TPᵢ + FPᵢ); 0 for a class that is never predicted.
    pub fn precision(&self, c: usize) -> f64 {
        ratio(self.true_positives(c), self.true_positives(c) + self.false_positives(c))
    }

    /// TPᵢ / (TPᵢ + FNᵢ); 0 for a class with no samples.
    pub fn recall(&self, c: usize) -> f64 {
        ratio(self.true_positives(c), self.true_positives(c) + self.false_negatives(c))
    }

    /// 2·P·R / (P + R) of class `c`; 0 when P + R = 0.
    pub fn f1(&self, c: usize) -> f64 {
        f1(self.precision(c), self.recall(c))
    }

    /// Per-class metrics with macro and micro averages.
    pub fn report(&self) -> ClassificationReport {
        let per_class: Vec<ClassMetrics> = (0..self.num_classes)
            .map(|c| ClassMetrics {
                precision: self.precision(c),
                recall: self.recall(c),
                f1: self.f1(c),
                support: self.support(c),
            })
            .collect();
        let k = self.num_classes as f64;
        let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k;
        let macro_avg =
            Averages { precision: mean(|m| m.precision), recall: mean(|m| m.recall), f1: mean(|m| m.f1) };
        let tp: u64 = (0..self.num_classes).map(|c| self.true_positives(c)).sum();
        let fp: u64 = (0..self.num_classes).map(|c| self.false_positives(c)).sum();
        let fn_: u64 = (0..self.num_classes).map(|c| self.false_negatives(c)).sum();
        let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let micro_avg = Averages { precision: p, recall: r, f1: f1(p, r) };
        ClassificationReport {
            labels: self.labels.clone(),
            per_class,
            macro_avg,
            micro_avg,
            accuracy: self.accuracy(),
            total: self.total(),
        }
    }
}

impl fmt::Display for ConfusionMatrix {
    /// An aligned table: a header of predicted labels, one row per true label.
    ///
    /// ```text
    /// true \ predicted  cat  dog
    ///              cat    3    1
    ///              dog    0    2
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let corner = "true \\ predicted";
        let n = self.num_classes;
        let first = self.labels.iter().map(|l| l.chars().count()).chain([corner.len()]).max().unwrap_or(0);
        let width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .chain(self.counts.iter().map(|c| c.to_string().len()))
            .max()
            .unwrap_or(1);
        write!(f, "{corner:>first$}")?;
        for label in &self.labels {
            write!(f, "  {label:>width$}")?;
        }
        for t in 0..n {
            write!(f, "\n{:>first$}", self.labels[t])?;
            for p in 0..n {
                write!(f, "  {:>width$}", self.count(t, p))?;
            }
        }
        Ok(())
    }
}

/// Precision, recall and F1 of one class, with its support (number of true samples).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassMetrics {
    /// TP / (TP + FP), 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN), 0 when the class has no samples.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Samples whose true class this is.
    pub support: u64,
}

/// Averaged precision, recall and F1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Averages {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F1 (macro: mean of per-class F1; micro: F1 of the pooled precision and recall).
    pub f1: f64,
}

/// Everything [`ConfusionMatrix::report`] computes; `Display` renders it as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationReport {
    /// Class labels, one per class.
    pub labels: Vec<String>,
    /// Metrics of each class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted means over all classes.
    pub macro_avg: Averages,
    /// Ratios of the counts pooled over all classes.
    pub micro_avg: Averages,
    /// Fraction of samples classified correctly.
    pub accuracy: f64,
    /// Number of samples.
    pub total: u64,
}

impl fmt::Display for ClassificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w =
            self.labels.iter().map(|l| l.chars().count()).chain(["macro avg".len()]).max().unwrap_or(0);
        write!(
            f,
            "{:>name_w$}  {:>9}  {:>9}  {:>9}  {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        for (label, m) in self.labels.iter().zip(&self.per_class) {
            write!(
                f,
                "\n{label:>name_w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}",
                m.precision, m.recall, m.f1, m.support
            )?;
        }
        write!(
            f,
            "\n\n{:>name_w$}  {:>9}  {:>9}  {:>9.4}  {:>9}",
            "accuracy", "", "", self.accuracy, self.total
        )?;
        for (name, a) in [("macro avg", &self.macro_avg), ("micro avg", &self.micro_avg)] {
            write!(
                f,
                "\n{name:>name_w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}",
                a.precision, a.recall, a.f1, self.total
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    // targets   0 0 0 1 1 2 2 2 2 3
    // predicted 0 0 1 1 0 2 2 1 2 0
    //
    // confusion (rows true, cols predicted):
    //        0  1  2  3
    //   0  [ 2  1  0  0 ]
    //   1  [ 1  1  0  0 ]
    //   2  [ 0  1  3  0 ]
    //   3  [ 1  0  0  0 ]
    // class 0: TP 2, FP (column 0 minus diagonal) 1+0+1 = 2, FN 1 → P 2/4, R 2/3, F1 = 2·(1/2)(2/3)/(7/6) = 4/7
    // class 1: TP 1, FP 1+0+1 = 2, FN 1 → P 1/3, R 1/2, F1 = 2·(1/6)/(5/6) = 2/5
    // class 2: TP 3, FP 0, FN 1 → P 1, R 3/4, F1 = 2·(3/4)/(7/4) = 6/7
    // class 3: TP 0, never predicted → P 0 (defined), R 0/1 = 0, F1 0
    // accuracy 6/10; micro: ΣTP = 6, ΣFP = 4, ΣFN = 4 → P = R = F1 = 0.6
    // macro P = (1/2 + 1/3 + 1 + 0)/4 = 11/24; macro R = (2/3 + 1/2 + 3/4 + 0)/4 = 23/48;
    // macro F1 = (4/7 + 2/5 + 6/7 + 0)/4 = (20/35 + 14/35 + 30/35)/4 = 64/140 = 16/35
    const TARGET: [usize; 10] = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
    const PREDICTED: [usize; 10] = [0, 0, 1, 1, 0, 2, 2, 1, 2, 0];

    #[test]
    fn hand_computed_confusion_matrix_and_scores() -> Result<()> {
        let cm = ConfusionMatrix::from_predictions(&PREDICTED, &TARGET, 4)?;
        assert_eq!(cm.counts(), &[2, 1, 0, 0, 1, 1, 0, 0, 0, 1, 3, 0, 1, 0, 0, 0]);
        assert_eq!((cm.true_positives(0), cm.false_positives(0), cm.false_negatives(0)), (2, 2, 1));
        assert_eq!(cm.support(2), 4);
        close(cm.accuracy(), 0.6);
        close(accuracy(&PREDICTED, &TARGET)?, 0.6);
        let r = cm.report();
        let expected =
            [(0.5, 2.0 / 3.0, 4.0 / 7.0), (1.0 / 3.0, 0.5, 0.4), (1.0, 0.75, 6.0 / 7.0), (0.0, 0.0, 0.0)];
        for (m, (p, rc, f)) in r.per_class.iter().zip(expected) {
            close(m.precision, p);
            close(m.recall, rc);
            close(m.f1, f);
        }
        close(r.macro_avg.precision, 11.0 / 24.0);
        close(r.macro_avg.recall, 23.0 / 48.0);
        close(r.macro_avg.f1, 16.0 / 35.0);
        for v in [r.micro_avg.precision, r.micro_avg.recall, r.micro_avg.f1] {
            close(v, 0.6);
        }
        Ok(())
    }

    #[test]
    fn never_predicted_and_absent_classes_are_zero_not_nan() -> Result<()> {
        // Everything predicted as class 0; class 2 has no samples at all.
        // class 0: TP 1, FP 1 → P 1/2, R 1; class 1: never predicted → P 0, R 0/1 = 0;
        // class 2: no samples and never predicted → P 0, R 0, F1 0.
        let cm = ConfusionMatrix::from_predictions(&[0, 0], &[0, 1], 3)?;
        let r = cm.report();
        assert!(r
            .per_class
            .iter()
            .all(|m| m.precision.is_finite() && m.recall.is_finite() && m.f1.is_finite()));
        close(r.per_class[1].precision, 0.0);
        close(r.per_class[2].recall, 0.0);
        // macro P = (1/2 + 0 + 0)/3 = 1/6
        close(r.macro_avg.precision, 1.0 / 6.0);
        // an empty matrix has accuracy 0 rather than NaN
        close(ConfusionMatrix::new(2)?.accuracy(), 0.0);
        Ok(())
    }

    #[test]
    fn accuracy_from_logits_takes_the_argmax() -> Result<()> {
        // row argmaxes: 1, 0, 2 against targets 1, 2, 2 → 2/3
        let logits = Tensor::from_vec(vec![0.1f32, 0.9, 0.0, 3.0, 1.0, 2.0, -1.0, -2.0, 0.5], &[3, 3])?;
        close(accuracy_from_logits(&logits, &[1, 2, 2])?, 2.0 / 3.0);
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors_and_leave_the_matrix_unchanged() -> Result<()> {
        assert!(accuracy(&[0, 1], &[0]).is_err());
        assert!(accuracy(&[], &[]).is_err());
        assert!(ConfusionMatrix::new(0).is_err());
        let mut cm = ConfusionMatrix::from_predictions(&[0], &[0], 2)?;
        let err = cm.update(&[0, 1], &[1, 5]).unwrap_err().to_string();
        assert!(err.contains("target 5"), "{err}");
        assert_eq!(cm.total(), 1);
        assert!(cm.clone().with_labels(&["a"]).is_err());
        Ok(())
    }

    #[test]
    fn text_rendering_is_aligned_with_labels() -> Result<()> {
        let cm = ConfusionMatrix::from_predictions(&[0, 0, 0, 1, 1, 0], &[0, 0, 0, 1, 1, 1], 2)?
            .with_labels(&["cat", "dog"])?;
        let text = cm.to_string();
        let expected = "true \\ predicted  cat  dog\n             cat    3    0\n             dog    1    2";
        assert_eq!(text, expected);
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
        let report = cm.report().to_string();
        assert!(report.contains("macro avg") && report.contains("micro avg") && report.contains("dog"));
        Ok(())
    }
}

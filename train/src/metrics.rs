//! What is measured each epoch, and the record of a run.
//!
//! Every epoch the trainer evaluates the loss and the chosen [`Metric`]s on the training and
//! validation data (in eval mode, without recording gradients) and stores them in an
//! [`EpochRecord`] under `train/NAME` and `val/NAME` (`val/loss`, `val/accuracy`,
//! `val/f1/3`); `train/batch_loss` is the mean of the training-mode batch losses of the epoch.
//! The [`History`] of records is what the logs, the charts and a resumed run's curves are
//! made of. Classification metrics come from `nn::metrics::ConfusionMatrix`.

use crate::error::{setting, Result};
use crate::objective::{Objective, StepTargets};
use graphgrad_autodiff::{no_grad, Tensor};
use graphgrad_nn::data::{BatchTargets, Dataset, Targets};
use graphgrad_nn::metrics::{predictions, ConfusionMatrix};
use graphgrad_nn::Module;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A measurement besides the loss, taken on training and validation data each epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Fraction of samples whose arg-max output is their label (`accuracy`).
    Accuracy,
    /// Unweighted mean of the per-class precisions (`macro_precision`).
    MacroPrecision,
    /// Unweighted mean of the per-class recalls (`macro_recall`).
    MacroRecall,
    /// Unweighted mean of the per-class F1 scores (`macro_f1`).
    MacroF1,
    /// Precision, recall and F1 of every class (`precision/3`, `recall/3`, `f1/3`).
    PerClass,
    /// Mean absolute error of real-valued outputs (`mae`).
    MeanAbsoluteError,
}

impl Metric {
    /// The metric's name in records (per-class metrics: the prefix of their names).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroPrecision => "macro_precision",
            Metric::MacroRecall => "macro_recall",
            Metric::MacroF1 => "macro_f1",
            Metric::PerClass => "per_class",
            Metric::MeanAbsoluteError => "mae",
        }
    }

    /// Whether the metric needs class labels (all but the mean absolute error).
    pub fn needs_labels(self) -> bool {
        self != Metric::MeanAbsoluteError
    }
}

/// The loss and metrics of a model on one data set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss over every sample.
    pub loss: f64,
    /// Samples evaluated.
    pub samples: usize,
    /// Metric values by name (`accuracy`, `macro_f1`, `f1/3`, ...), without the loss.
    pub metrics: BTreeMap<String, f64>,
    /// Counts of true class against predicted class, for labelled data.
    pub confusion: Option<ConfusionMatrix>,
}

/// Evaluates `model` on all of `data` in batches of `batch_size`, in eval mode and without
/// recording gradients; the model's mode is restored afterwards.
pub(crate) fn evaluate(
    model: &dyn Module,
    objective: &dyn Objective,
    data: &Dataset,
    metrics: &[Metric],
    batch_size: usize,
) -> Result<Evaluation> {
    if data.is_empty() {
        return Err(setting("evaluation data", "the data set is empty"));
    }
    let was_training = model.is_training();
    model.eval();
    let result = no_grad(|| evaluate_in_eval_mode(model, objective, data, metrics, batch_size));
    model.set_training(was_training);
    result
}

fn evaluate_in_eval_mode(
    model: &dyn Module,
    objective: &dyn Objective,
    data: &Dataset,
    metrics: &[Metric],
    batch_size: usize,
) -> Result<Evaluation> {
    let classes = match data.targets() {
        Targets::Classes(_) => Some(data.num_classes().max(1)),
        Targets::Values { .. } => None,
    };
    let mut confusion = match classes {
        Some(n) => Some(ConfusionMatrix::new(n)?),
        None => None,
    };
    let (mut loss_sum, mut abs_sum, mut values) = (0.0, 0.0, 0usize);
    for batch in data.batches(batch_size, false)? {
        let output = model.forward(&batch.inputs)?;
        let targets = crate::trainer::target_tensor(&batch)?;
        let loss = objective.loss(&output, StepTargets::of(&targets))?.item()?;
        loss_sum += loss * batch.len() as f64;
        match &batch.targets {
            BatchTargets::Classes(labels) => {
                let predicted = predictions(&output)?;
                if let Some(matrix) = confusion.as_mut() {
                    grow_to_fit(matrix, &predicted)?;
                    matrix.update(&predicted, labels)?;
                }
            }
            BatchTargets::Values(target) if metrics.contains(&Metric::MeanAbsoluteError) => {
                abs_sum += output.sub(target)?.abs().sum_all().item()?;
                values += target.numel();
            }
            BatchTargets::Values(_) => {}
        }
    }
    let mut found = BTreeMap::new();
    for &metric in metrics {
        match (metric, &confusion) {
            (Metric::MeanAbsoluteError, _) => {
                if classes.is_some() {
                    return Err(setting(
                        "metrics",
                        "mae needs real-valued targets; this data set has class labels",
                    ));
                }
                found.insert("mae".to_string(), abs_sum / values.max(1) as f64);
            }
            (_, None) => {
                return Err(setting(
                    "metrics",
                    format!("{} needs class labels; this data set has real-valued targets", metric.name()),
                ));
            }
            (_, Some(matrix)) => class_metrics(metric, matrix, &mut found),
        }
    }
    Ok(Evaluation { loss: loss_sum / data.len() as f64, samples: data.len(), metrics: found, confusion })
}

/// A model that predicts a class beyond the labels seen (more outputs than classes present)
/// gets a bigger matrix rather than an error.
fn grow_to_fit(matrix: &mut ConfusionMatrix, predicted: &[usize]) -> Result<()> {
    let needed = predicted.iter().copied().max().map_or(0, |m| m + 1);
    if needed > matrix.num_classes() {
        let mut bigger = ConfusionMatrix::new(needed)?;
        let n = matrix.num_classes();
        for t in 0..n {
            for p in 0..n {
                let count = matrix.count(t, p) as usize;
                bigger.update(&vec![p; count], &vec![t; count])?;
            }
        }
        *matrix = bigger;
    }
    Ok(())
}

fn class_metrics(metric: Metric, matrix: &ConfusionMatrix, found: &mut BTreeMap<String, f64>) {
    let n = matrix.num_classes();
    let macro_of = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n.max(1) as f64;
    match metric {
        Metric::Accuracy => {
            found.insert("accuracy".into(), matrix.accuracy());
        }
        Metric::MacroPrecision => {
            found.insert("macro_precision".into(), macro_of(&|c| matrix.precision(c)));
        }
        Metric::MacroRecall => {
            found.insert("macro_recall".into(), macro_of(&|c| matrix.recall(c)));
        }
        Metric::MacroF1 => {
            found.insert("macro_f1".into(), macro_of(&|c| matrix.f1(c)));
        }
        Metric::PerClass => {
            for c in 0..n {
                found.insert(format!("precision/{c}"), matrix.precision(c));
                found.insert(format!("recall/{c}"), matrix.recall(c));
                found.insert(format!("f1/{c}"), matrix.f1(c));
            }
        }
        Metric::MeanAbsoluteError => {}
    }
}

/// The outputs of `model` for `inputs`, in eval mode, without recording gradients, in
/// batches of `batch_size` rows concatenated.
pub(crate) fn predict(model: &dyn Module, inputs: &Tensor, batch_size: usize) -> Result<Tensor> {
    if inputs.rank() == 0 {
        return Err(setting("predict", "inputs need a batch axis, got a scalar"));
    }
    let was_training = model.is_training();
    model.eval();
    let result = no_grad(|| -> Result<Tensor> {
        let n = inputs.shape()[0];
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = batch_size.min(n - start);
            parts.push(model.forward(&inputs.narrow(0, start, len)?)?);
            start += len;
        }
        match parts.len() {
            0 => Ok(model.forward(inputs)?),
            1 => Ok(parts.remove(0)),
            _ => Ok(Tensor::cat(&parts, 0)?),
        }
    });
    model.set_training(was_training);
    result
}

/// One epoch of a run: counters and every measured value by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: u64,
    /// Optimiser steps taken by the end of the epoch.
    pub step: u64,
    /// The learning rate of the first parameter group during the epoch.
    pub lr: f64,
    /// Wall-clock seconds the epoch took (training and evaluation).
    pub seconds: f64,
    /// `train/loss`, `train/batch_loss`, `val/loss`, `val/accuracy`, ...
    pub values: BTreeMap<String, f64>,
}

impl EpochRecord {
    /// The value called `name`, if measured.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }
}

/// Every epoch of a run (a resumed run's history starts with the epochs before the
/// checkpoint), and the losses of single steps when step logging is on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per epoch, in order.
    pub epochs: Vec<EpochRecord>,
    /// `(step, training-mode batch loss)` of every step, when recorded.
    pub steps: Vec<(u64, f64)>,
}

impl History {
    /// The values of `name` per epoch: `(epoch, value)` for the epochs that measured it.
    pub fn series(&self, name: &str) -> Vec<(f64, f64)> {
        self.epochs.iter().filter_map(|r| r.get(name).map(|v| (r.epoch as f64, v))).collect()
    }

    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The epoch with the best value of `name` (lowest when `lower_is_better`), and the value.
    pub fn best(&self, name: &str, lower_is_better: bool) -> Option<(u64, f64)> {
        let better = |a: f64, b: f64| if lower_is_better { a < b } else { a > b };
        self.epochs.iter().filter_map(|r| r.get(name).map(|v| (r.epoch, v))).fold(None, |best, (e, v)| {
            match best {
                Some((_, b)) if !better(v, b) => best,
                _ => Some((e, v)),
            }
        })
    }

    /// Every value name recorded, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.epochs.iter().flat_map(|r| r.values.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::CrossEntropy;
    use graphgrad_autodiff::Result as TensorResult;
    use graphgrad_nn::Visitor;

    /// Logits that are the input itself: the predictions are the arg-max of each row.
    struct Identity;
    impl Module for Identity {
        fn forward(&self, input: &Tensor) -> TensorResult<Tensor> {
            Ok(input.clone())
        }
        fn visit(&self, _v: &mut dyn Visitor) {}
    }

    /// Six samples of three classes; predictions (arg-max) 0, 1, 1, 2, 2, 0 for labels
    /// 0, 0, 1, 1, 2, 2. By hand: accuracy 3/6; class 0: precision 1/2, recall 1/2; class 1:
    /// precision 1/2, recall 1/2; class 2: precision 1/2, recall 1/2 → every F1 1/2.
    #[test]
    fn metrics_match_the_counts_by_hand() {
        let rows: [[f32; 3]; 6] =
            [[1., 0., 0.], [0., 1., 0.], [0., 1., 0.], [0., 0., 1.], [0., 0., 1.], [1., 0., 0.]];
        let data = Dataset::classification(rows.concat(), &[3], vec![0, 0, 1, 1, 2, 2]).unwrap();
        let metrics = [Metric::Accuracy, Metric::MacroF1, Metric::PerClass];
        // batches of 4 then 2: the loss is still the mean over all six samples
        let e = evaluate(&Identity, &CrossEntropy, &data, &metrics, 4).unwrap();
        assert_eq!(e.metrics["accuracy"], 0.5);
        assert_eq!(e.metrics["macro_f1"], 0.5);
        assert_eq!(e.metrics["precision/2"], 0.5);
        assert_eq!(e.metrics["recall/0"], 0.5);
        // every row is a one-hot logit: right rows lose log(e + 2) − 1, wrong ones log(e + 2)
        let (right, wrong) = ((1f64.exp() + 2.0).ln() - 1.0, (1f64.exp() + 2.0).ln());
        assert!((e.loss - (right + wrong) / 2.0).abs() < 1e-6, "{}", e.loss);
        let err = evaluate(&Identity, &CrossEntropy, &data, &[Metric::MeanAbsoluteError], 4).unwrap_err();
        assert!(err.to_string().contains("mae needs real-valued targets"), "{err}");
    }

    #[test]
    fn history_series_and_best() {
        let record = |epoch, loss| EpochRecord {
            epoch,
            step: epoch * 10,
            lr: 0.1,
            seconds: 0.0,
            values: [("val/loss".to_string(), loss)].into_iter().collect(),
        };
        let history = History { epochs: vec![record(1, 0.5), record(2, 0.3), record(3, 0.4)], steps: vec![] };
        assert_eq!(history.series("val/loss"), vec![(1.0, 0.5), (2.0, 0.3), (3.0, 0.4)]);
        assert_eq!(history.best("val/loss", true), Some((2, 0.3)));
        assert_eq!(history.best("val/loss", false), Some((1, 0.5)));
        assert_eq!(history.best("val/accuracy", true), None);
    }
}

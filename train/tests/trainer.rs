//! The trainer's loop, its settings and its output, on small runs on the shipped digits.

mod common;

use common::{digits, inputs, mlp, trainer, values, Captured};
use graphgrad_nn::metrics::{predictions, ConfusionMatrix};
use graphgrad_nn::Module;
use graphgrad_nn::{BatchNormConfig, DropoutConfig, LinearConfig, ReLU, Sequential};
use graphgrad_optim::{EarlyStopping, MetricMode, Sgd, SgdConfig};
use graphgrad_train::Objective;
use graphgrad_train::{
    BatchEnd, Callback, Control, CrossEntropy, EpochRecord, Error, Execution, ProgressMode, Result, Trainer,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;
use std::rc::Rc;

/// Piped output: one plain line per epoch and a summary, no bar, no control characters.
#[test]
fn output_that_is_not_a_terminal_is_one_line_per_epoch_and_a_summary() {
    let split = digits(400);
    let out = Captured::default();
    let mut t = trainer(1).epochs(3).progress(ProgressMode::Auto).progress_to(out.clone()).name("digits");
    t.fit(&split.train, Some(&split.validation)).unwrap();
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(line.starts_with(&format!("epoch {}/3: train loss ", i + 1)), "{line}");
        assert!(
            line.contains(", val loss ") && line.contains(", val accuracy ") && line.contains(", lr 0.003"),
            "{line}"
        );
    }
    let history = t.history();
    // the line shows the recorded value, to 4 decimals
    let val_loss = history.epochs[2].get("val/loss").unwrap();
    assert!(lines[2].contains(&format!("val loss {val_loss:.4}")), "{}", lines[2]);
    assert!(lines[3].starts_with("digits: finished the budget of 3 epochs; best val/loss"), "{}", lines[3]);
    assert!(lines[3].contains(&format!("; {} steps in ", 3 * 400usize.div_ceil(32))), "{}", lines[3]);
    assert!(!text.contains('\r') && !text.contains('\u{1b}'), "no terminal control characters: {text:?}");
}

/// Early stopping ends with its own summary line (not on a bar's line), restores the best
/// weights, and the best epoch is the one with the lowest validation loss.
#[test]
fn early_stopping_stops_restores_and_says_so() {
    let split = digits(300);
    let out = Captured::default();
    // SGD with momentum at lr 0.2 on 300 images: the validation loss bottoms out early
    let model = mlp(2, 0.0);
    let optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.2).momentum(0.9)).unwrap();
    let mut t = Trainer::new(model, optimizer, CrossEntropy)
        .epochs(60)
        .early_stopping(EarlyStopping::new(MetricMode::Min, 2))
        .progress(ProgressMode::Lines)
        .progress_to(out.clone());
    let history = t.fit(&split.train, Some(&split.validation)).unwrap();
    let n = history.epochs.len();
    assert!(n < 60, "early stopping never fired in 60 epochs");
    let (best_epoch, best) = history.best("val/loss", true).unwrap();
    // patience 2: the two epochs after the best did not improve on it
    assert_eq!(best_epoch as usize, n - 2, "{:?}", history.series("val/loss"));
    let text = out.text();
    let last = text.lines().last().unwrap();
    let expected =
        format!("early stopping after epoch {n}: val/loss has not improved since epoch {best_epoch}");
    assert!(last.contains(&expected), "{last}");
    assert!(last.contains("whose weights are restored"), "{last}");
    assert_eq!(text.lines().count(), n + 1, "{text}");
    // the restored model has the best epoch's validation loss again
    let again = t.evaluate(&split.validation).unwrap().loss;
    assert!((again - best).abs() < 1e-9, "{again} vs {best}");
}

fn error_of(mut t: Trainer<graphgrad_nn::Sequential>, validation: bool) -> String {
    let split = digits(64);
    let v = validation.then_some(&split.validation);
    t.fit(&split.train, v).unwrap_err().to_string()
}

#[test]
fn bad_settings_are_errors_that_name_them() {
    let empty = digits(64).validation.subset(&[]).unwrap();
    let cases = [
        (error_of(trainer(0).epochs(0), true), "epochs: must be at least 1, got 0"),
        (error_of(trainer(0).epochs(2).batch_size(0), true), "batch size: must be at least 1, got 0"),
        (error_of(trainer(0), true), "no stopping criterion"),
        (error_of(trainer(0).epochs(2).accumulate_gradients(0), true), "gradient accumulation"),
        (
            error_of(trainer(0).epochs(2).monitor("val/loss", MetricMode::Min), false),
            "monitor: val/loss needs validation data",
        ),
        (error_of(trainer(0).epochs(2).freeze(&["0.wieght"]), true), "no parameter is called [\"0.wieght\"]"),
        (
            error_of(
                trainer(0)
                    .epochs(2)
                    .monitor("val/accuracy", MetricMode::Max)
                    .early_stopping(EarlyStopping::new(MetricMode::Min, 2)),
                true,
            ),
            "early stopping: its mode Min disagrees with the monitor val/accuracy (Max)",
        ),
    ];
    for (message, expected) in cases {
        assert!(message.contains(expected), "{message:?} should contain {expected:?}");
    }
    // the default monitor without validation data is the training loss: no error
    let split = digits(64);
    trainer(0).epochs(1).fit(&split.train, None).unwrap();
    let err = trainer(0).epochs(1).fit(&split.train, Some(&empty)).unwrap_err();
    assert!(matches!(err, Error::Setting { what: "validation data", .. }), "{err}");
    let err =
        trainer(0).epochs(1).monitor("val/f1", MetricMode::Max).fit(&split.train, Some(&split.validation));
    assert!(err.unwrap_err().to_string().contains("val/f1 is not measured"));
}

/// Two accumulated batches of 16 step exactly like one batch of 32 over the same samples,
/// eagerly and compiled.
#[test]
fn gradient_accumulation_equals_the_bigger_batch() {
    let split = digits(256);
    let run = |batch: usize, accumulate: usize, execution: Execution| {
        let model = mlp(3, 0.0);
        let optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9)).unwrap();
        let mut t = Trainer::new(model, optimizer, CrossEntropy)
            .epochs(2)
            .batch_size(batch)
            .accumulate_gradients(accumulate)
            .execution(execution)
            .progress(ProgressMode::Silent);
        t.fit(&split.train, None).unwrap();
        (values(t.model()), t.progress_counters())
    };
    let (big, big_counters) = run(32, 1, Execution::Eager);
    assert_eq!(big_counters, (2, 16));
    for execution in [Execution::Eager, Execution::Compiled] {
        let (accumulated, counters) = run(16, 2, execution);
        assert_eq!(counters, (2, 16), "{execution:?}: one step per two batches");
        for ((name, a), (_, b)) in big.iter().zip(&accumulated) {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{execution:?}: {name}: differs by {worst}");
        }
    }
    // and accumulation is not a no-op: batches of 16 stepped each time differ
    let (small, _) = run(16, 1, Execution::Eager);
    assert!(small.iter().zip(&big).any(|((_, a), (_, b))| a != b));
}

#[test]
fn frozen_parameters_do_not_move() {
    let split = digits(128);
    for execution in [Execution::Eager, Execution::Compiled] {
        let mut t = trainer(4).epochs(2).freeze(&["0."]).execution(execution);
        let before = values(t.model());
        t.fit(&split.train, None).unwrap();
        let after = values(t.model());
        for ((name, a), (_, b)) in before.iter().zip(&after) {
            assert_eq!(a == b, name.starts_with("0."), "{execution:?}: {name}");
        }
    }
}

/// With gradient checks on, a step whose gradient is not finite is an error naming the
/// parameter, and no weight moves, in both modes (compiled: a guard of the program).
#[test]
fn a_non_finite_gradient_is_an_error_and_changes_nothing() {
    let split = digits(64);
    for execution in [Execution::Eager, Execution::Compiled] {
        let model = mlp(5, 0.0);
        let optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.1)).unwrap();
        // the loss is finite (√0 = 0 added); its gradient is not (½/√0 = inf, times 0: NaN)
        let blow_up = graphgrad_train::objective_fn("blow-up", |output, targets| {
            let zero = output.mul_scalar(0.0).sqrt().sum_all();
            Ok(CrossEntropy.loss(output, targets)?.add(&zero)?)
        });
        let mut t = Trainer::new(model, optimizer, blow_up)
            .epochs(1)
            .check_gradients(true)
            .execution(execution)
            .progress(ProgressMode::Silent);
        let before = values(t.model());
        let err = t.fit(&split.train, None).unwrap_err().to_string();
        assert!(err.contains("is not finite") && err.contains("weight"), "{execution:?}: {err}");
        assert_eq!(before, values(t.model()), "{execution:?}: nothing moved");
    }
}

struct Counter {
    batches: Rc<Cell<usize>>,
    stop_after_epoch: u64,
}

impl Callback for Counter {
    fn on_batch_end(&mut self, batch: &BatchEnd) -> Result<Control> {
        assert!(batch.loss.is_finite());
        self.batches.set(self.batches.get() + 1);
        Ok(Control::Continue)
    }
    fn on_epoch_end(&mut self, record: &EpochRecord) -> Result<Control> {
        Ok(if record.epoch >= self.stop_after_epoch { Control::Stop } else { Control::Continue })
    }
}

#[test]
fn callbacks_see_every_batch_and_can_stop() {
    let split = digits(100);
    let batches = Rc::new(Cell::new(0));
    let mut t = trainer(5).epochs(10).callback(Counter { batches: batches.clone(), stop_after_epoch: 2 });
    let history = t.fit(&split.train, None).unwrap();
    assert_eq!(history.epochs.len(), 2);
    assert_eq!(batches.get(), 2 * 100usize.div_ceil(32));
}

/// `evaluate` agrees with metrics computed from `predict`'s outputs independently.
#[test]
fn evaluate_and_predict_agree_with_the_confusion_matrix() {
    let split = digits(400);
    let mut t = trainer(6).epochs(4).eval_batch_size(50);
    t.fit(&split.train, Some(&split.validation)).unwrap();
    let test = t.evaluate(&split.test).unwrap();
    let logits = t.predict(&inputs(&split.test)).unwrap();
    assert_eq!(logits.shape(), &[split.test.len(), 10]);
    let labels = split.test.labels().unwrap();
    let matrix = ConfusionMatrix::from_predictions(&predictions(&logits).unwrap(), labels, 10).unwrap();
    assert_eq!(test.metrics["accuracy"], matrix.accuracy());
    let macro_f1 = (0..10).map(|c| matrix.f1(c)).sum::<f64>() / 10.0;
    assert!((test.metrics["macro_f1"] - macro_f1).abs() < 1e-12);
    assert!(test.metrics["accuracy"] > 0.8, "{:?}", test.metrics);
    // the mean cross-entropy, from the logits by hand
    let rows = logits.to_f64_vec();
    let by_hand = rows
        .chunks(10)
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - row[label]
        })
        .sum::<f64>()
        / labels.len() as f64;
    assert!((test.loss - by_hand).abs() < 1e-5, "{} vs {by_hand}", test.loss);
    assert!(t.model().is_training(), "evaluation gives the model back in training mode");
}

/// Compiled steps train the same model as eager steps (within float tolerance).
#[test]
fn compiled_steps_match_eager_steps() {
    let split = digits(192);
    let run = |execution| {
        let model = mlp(7, 0.0);
        let optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9)).unwrap();
        let mut t = Trainer::new(model, optimizer, CrossEntropy)
            .epochs(2)
            .batch_size(64)
            .execution(execution)
            .progress(ProgressMode::Silent);
        let history = t.fit(&split.train, Some(&split.validation)).unwrap();
        (history.series("val/loss"), values(t.model()))
    };
    let (eager_curve, eager) = run(Execution::Eager);
    let (compiled_curve, compiled) = run(Execution::Compiled);
    for ((_, a), (_, b)) in eager_curve.iter().zip(&compiled_curve) {
        assert!((a - b).abs() < 1e-4, "{eager_curve:?} vs {compiled_curve:?}");
    }
    for ((name, a), (_, b)) in eager.iter().zip(&compiled) {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "{name}: {worst}");
    }
    // training-mode dropout: the compiled step draws the eager run's masks; BatchNorm's
    // running statistics are updated by the program
    let with_dropout_and_batch_norm = |execution| {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let model = Sequential::new()
            .append(LinearConfig::new(64, 32).init(&mut rng).unwrap())
            .append(BatchNormConfig::new(32).init_1d(&mut rng).unwrap())
            .append(ReLU)
            .append(DropoutConfig::new(0.5).init(&mut rng).unwrap())
            .append(LinearConfig::new(32, 10).init(&mut rng).unwrap());
        // (SGD: Adam would normalise the bias before BatchNorm, whose gradient is rounding noise)
        let optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.05).momentum(0.9)).unwrap();
        let mut t = Trainer::new(model, optimizer, CrossEntropy)
            .epochs(2)
            .execution(execution)
            .progress(ProgressMode::Silent);
        let history = t.fit(&split.train, Some(&split.validation)).unwrap();
        (values(t.model()), history.series("val/loss"))
    };
    let (eager, eager_curve) = with_dropout_and_batch_norm(Execution::Eager);
    let (compiled, compiled_curve) = with_dropout_and_batch_norm(Execution::Compiled);
    assert!(eager.iter().any(|(name, _)| name.contains("running_mean")), "{eager:?}");
    for ((name, a), (_, b)) in eager.iter().zip(&compiled) {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "{name}: {worst}");
    }
    for ((_, a), (_, b)) in eager_curve.iter().zip(&compiled_curve) {
        assert!((a - b).abs() < 1e-4, "{eager_curve:?} vs {compiled_curve:?}");
    }
}

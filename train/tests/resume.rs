//! Resuming: a run stopped after epoch 3 and resumed to epoch 6 ends bit-identical to the run
//! that never stopped (weights, optimiser, dropout stream, early stopping, curves and logs),
//! and resumes that cannot continue say why.

mod common;

use common::{digits, mlp, temp_dir, trainer, values};
use graphgrad_nn::Module;
use graphgrad_optim::{EarlyStopping, LrScheduler, MetricMode, StepLr};
use graphgrad_train::{CheckpointPolicy, CrossEntropy, EpochRecord, Error, Trainer, TrainingCheckpoint};
use std::path::Path;

/// A trainer with everything a resume must restore: Adam's moments, a step schedule, early
/// stopping (patience high enough not to fire), dropout, checkpoints of the last 2 and the best.
fn full(dir: &Path, epochs: u64) -> Trainer<graphgrad_nn::Sequential> {
    let model = mlp(11, 0.3);
    let mut optimizer =
        graphgrad_optim::Adam::new(model.named_parameters(), graphgrad_optim::AdamConfig::new(3e-3)).unwrap();
    let schedule = LrScheduler::new(StepLr::new(2, 0.5), &mut optimizer).unwrap();
    Trainer::new(model, optimizer, CrossEntropy)
        .batch_size(32)
        .metrics(&[graphgrad_train::Metric::Accuracy])
        .progress(graphgrad_train::ProgressMode::Silent)
        .schedule(schedule)
        .early_stopping(EarlyStopping::new(MetricMode::Min, 50))
        .checkpoints(CheckpointPolicy::new(dir.join("checkpoints")).keep_last(2).keep_best(true))
        .log_dir(dir)
        .log_steps(true)
        .epochs(epochs)
}

/// Records without their wall-clock seconds (which differ between runs).
fn timeless(records: &[EpochRecord]) -> Vec<EpochRecord> {
    records.iter().map(|r| EpochRecord { seconds: 0.0, ..r.clone() }).collect()
}

#[test]
fn a_resumed_run_continues_bit_identically_with_its_curves() {
    let split = digits(320);
    let (a, b) = (temp_dir("resume-a"), temp_dir("resume-b"));
    let mut straight = full(&a, 6);
    let whole = straight.fit(&split.train, Some(&split.validation)).unwrap();
    assert_eq!(whole.epochs.len(), 6);

    let mut first = full(&b, 3);
    first.fit(&split.train, Some(&split.validation)).unwrap();
    let kept: Vec<String> = std::fs::read_dir(b.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(
        kept_sorted,
        ["best.ggtr", "epoch-0002.ggtr", "epoch-0003.ggtr"],
        "keep the last 2 and the best"
    );
    drop(first);

    let mut resumed = full(&b, 6).resume(b.join("checkpoints/epoch-0003.ggtr")).unwrap();
    let continued = resumed.fit(&split.train, Some(&split.validation)).unwrap();
    // weights, buffers and Adam's moments: bit for bit
    assert_eq!(values(resumed.model()), values(straight.model()));
    assert_eq!(resumed.optimizer().state(), straight.optimizer().state());
    assert_eq!(resumed.progress_counters(), straight.progress_counters());
    // the curves show the whole run: epochs 1..6, the same values
    assert_eq!(timeless(&continued.epochs), timeless(&whole.epochs));
    assert_eq!(continued.steps, whole.steps);
    assert_eq!(
        continued.epochs.iter().map(|r| r.lr).collect::<Vec<_>>(),
        [3e-3, 3e-3, 1.5e-3, 1.5e-3, 7.5e-4, 7.5e-4]
    );
    // the JSON lines of the resumed run hold six epochs once each, equal to the straight run's
    let lines = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect()
    };
    assert_eq!(lines(&b).len(), 6);
    assert_eq!(lines(&b), lines(&a));
    let steps = std::fs::read_to_string(b.join("steps.jsonl")).unwrap();
    assert_eq!(steps.lines().count(), 6 * 320usize.div_ceil(32));
    // the resumed checkpoint holds the whole history too
    let last = TrainingCheckpoint::load(&b.join("checkpoints/epoch-0006.ggtr")).unwrap();
    assert_eq!(last.trainer.history.epochs.len(), 6);
    assert_eq!(last.checkpoint.epoch, 6);

    // the budget is spent: a clear error, not a silent extra epoch
    let again = full(&b, 6).resume(b.join("checkpoints/epoch-0006.ggtr")).unwrap();
    let err = { again }.fit(&split.train, Some(&split.validation)).unwrap_err().to_string();
    assert!(err.contains("the run has trained 6 epochs and the budget is 6"), "{err}");
}

#[test]
fn resumes_that_cannot_continue_say_why() {
    let split = digits(128);
    let dir = temp_dir("resume-refused");
    // a run that early stopping ended (patience 1)
    let model = mlp(12, 0.0);
    let optimizer = graphgrad_optim::Sgd::new(
        model.named_parameters(),
        graphgrad_optim::SgdConfig::new(0.3).momentum(0.9),
    )
    .unwrap();
    let mut stopped = Trainer::new(model, optimizer, CrossEntropy)
        .epochs(80)
        .early_stopping(EarlyStopping::new(MetricMode::Min, 1))
        .checkpoints(CheckpointPolicy::new(&dir).keep_last(100))
        .progress(graphgrad_train::ProgressMode::Silent);
    let history = stopped.fit(&split.train, Some(&split.validation)).unwrap();
    let n = history.epochs.len() as u64;
    assert!(n < 80);
    let model = mlp(12, 0.0);
    let optimizer = graphgrad_optim::Sgd::new(
        model.named_parameters(),
        graphgrad_optim::SgdConfig::new(0.3).momentum(0.9),
    )
    .unwrap();
    let mut again = Trainer::new(model, optimizer, CrossEntropy)
        .epochs(100)
        .early_stopping(EarlyStopping::new(MetricMode::Min, 1))
        .progress(graphgrad_train::ProgressMode::Silent)
        .resume(dir.join(format!("epoch-{n:04}.ggtr")))
        .unwrap();
    let err = again.fit(&split.train, Some(&split.validation)).unwrap_err().to_string();
    assert!(err.contains(&format!("the run already stopped after epoch {n} (early stopping")), "{err}");

    // another model: the names that differ are listed
    let other = graphgrad_nn::Sequential::new().append(
        graphgrad_nn::LinearConfig::new(64, 10)
            .init(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0))
            .unwrap(),
    );
    let optimizer =
        graphgrad_optim::Sgd::new(other.named_parameters(), graphgrad_optim::SgdConfig::new(0.3)).unwrap();
    let err = Trainer::new(other, optimizer, CrossEntropy)
        .epochs(100)
        .progress(graphgrad_train::ProgressMode::Silent)
        .resume(dir.join("epoch-0001.ggtr"))
        .unwrap()
        .fit(&split.train, Some(&split.validation))
        .unwrap_err();
    assert!(matches!(err, Error::Resume { .. }));
    let err = err.to_string();
    assert!(err.contains("the checkpoint is of another model") && err.contains("3.weight"), "{err}");

    // not a training checkpoint at all
    std::fs::write(dir.join("junk.ggtr"), b"hello").unwrap();
    let err = trainer(0).resume(dir.join("junk.ggtr")).err().unwrap().to_string();
    assert!(err.contains("not a training checkpoint"), "{err}");
    let mut bytes = std::fs::read(dir.join(format!("epoch-{n:04}.ggtr"))).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(dir.join("damaged.ggtr"), &bytes).unwrap();
    let err = trainer(0).resume(dir.join("damaged.ggtr")).err().unwrap().to_string();
    assert!(err.contains("corrupted"), "{err}");
}

//! The trainer's data-parallel mode, with ranks as threads: two ranks with batch 32 each train
//! the same model as one process with batch 64, eagerly and compiled, for SGD and Adam; the
//! ranks end with equal replicas and the same history; only rank 0 reports; a rank with
//! another model is an error on every rank.

mod common;

use common::{digits, mlp, temp_dir, values, Captured};
use graphgrad_distributed::{ProcessGroup, ThreadGroup};
use graphgrad_nn::{LinearConfig, Module, Sequential};
use graphgrad_optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use graphgrad_train::{CheckpointPolicy, CrossEntropy, Execution, Metric, ProgressMode, Trainer};
use rand::SeedableRng;
use std::sync::Arc;

type State = Vec<(String, Vec<f64>)>;

fn optimizer(adam: bool, model: &Sequential) -> Box<dyn Optimizer> {
    if adam {
        Box::new(Adam::new(model.named_parameters(), AdamConfig::new(1e-3)).unwrap())
    } else {
        Box::new(Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9)).unwrap())
    }
}

/// Two epochs of 192 samples (3 global batches of 64) from the same seeds.
fn trainer(batch: usize, adam: bool, execution: Execution) -> Trainer<Sequential> {
    let model = mlp(9, 0.0);
    let opt = optimizer(adam, &model);
    Trainer::with_boxed_optimizer(model, opt, CrossEntropy)
        .epochs(2)
        .batch_size(batch)
        .metrics(&[Metric::Accuracy])
        .execution(execution)
        .progress(ProgressMode::Silent)
}

fn close(what: &str, a: &State, b: &State, tolerance: f64) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(worst <= tolerance, "{what}: {name} differs by {worst}");
    }
}

#[test]
fn two_ranks_of_32_train_like_one_process_of_64() {
    let split = digits(192);
    for adam in [false, true] {
        for execution in [Execution::Eager, Execution::Compiled] {
            let what = format!("{} {execution:?}", if adam { "Adam" } else { "SGD" });
            let mut one = trainer(64, adam, execution);
            let history = one.fit(&split.train, Some(&split.validation)).unwrap();
            let single = values(one.model());
            let ranks = ThreadGroup::run(2, |group| {
                let group: Arc<dyn ProcessGroup> = Arc::new(group);
                let mut t = trainer(32, adam, execution).distributed(group);
                let history = t.fit(&split.train, Some(&split.validation))?;
                Ok::<_, graphgrad_train::Error>((
                    values(t.model()),
                    history.series("val/loss"),
                    t.progress_counters(),
                ))
            })
            .unwrap();
            // the replicas are equal, and equal to the one process
            close(&what, &ranks[0].0, &ranks[1].0, 0.0);
            close(&what, &single, &ranks[0].0, 1e-5);
            assert_eq!(ranks[0].1, ranks[1].1, "{what}: every rank has rank 0's history");
            for ((_, a), (_, b)) in history.series("val/loss").iter().zip(&ranks[0].1) {
                assert!((a - b).abs() < 1e-5, "{what}: validation loss {a} vs {b}");
            }
            assert_eq!(ranks[0].2, (2, 6), "{what}: 3 steps per epoch on each rank");
        }
    }
}

#[test]
fn only_rank_0_reports_and_writes() {
    let split = digits(128);
    let dirs = [temp_dir("dp-rank0"), temp_dir("dp-rank1")];
    let outputs = ThreadGroup::run(2, |group| {
        let rank = group.rank();
        let group: Arc<dyn ProcessGroup> = Arc::new(group);
        let dir = &dirs[rank];
        let out = Captured::default();
        let mut t = trainer(32, false, Execution::Eager)
            .progress(ProgressMode::Lines)
            .progress_to(out.clone())
            .log_dir(dir)
            .checkpoints(CheckpointPolicy::new(dir.join("checkpoints")).keep_last(1))
            .distributed(group);
        t.fit(&split.train, None).map(|_| out.text())
    })
    .unwrap();
    let lead = &outputs[0];
    assert_eq!(lead.lines().filter(|l| l.starts_with("epoch ")).count(), 2, "{lead}");
    assert!(outputs[1].is_empty(), "rank 1 printed {:?}", outputs[1]);
    assert!(dirs[0].join("metrics.jsonl").exists() && dirs[0].join("checkpoints/epoch-0002.ggtr").exists());
    assert_eq!(std::fs::read_dir(&dirs[1]).unwrap().count(), 0, "rank 1 wrote nothing");
}

#[test]
fn ranks_with_different_models_are_an_error_on_every_rank() {
    let split = digits(64);
    let results = ThreadGroup::run(2, |group| {
        let rank = group.rank();
        let group: Arc<dyn ProcessGroup> = Arc::new(group);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let width = if rank == 0 { 10 } else { 12 };
        let model = Sequential::new().append(LinearConfig::new(64, width).init(&mut rng).unwrap());
        let opt = optimizer(false, &model);
        let mut t = Trainer::with_boxed_optimizer(model, opt, CrossEntropy)
            .epochs(1)
            .progress(ProgressMode::Silent)
            .distributed(group);
        Ok::<_, String>(t.fit(&split.train, None).err().map(|e| e.to_string()))
    })
    .unwrap();
    for (rank, err) in results.iter().enumerate() {
        let err = err.as_deref().unwrap_or_else(|| panic!("rank {rank} trained"));
        assert!(err.contains("do not hold the same model") && err.contains("weight"), "rank {rank}: {err}");
    }
}

/// Dropout draws its own masks on each rank (seeded per rank and epoch); the averaged update
/// keeps the replicas equal all the same.
#[test]
fn each_rank_draws_its_own_dropout_masks() {
    let split = digits(128);
    let ranks = ThreadGroup::run(2, |group| {
        let group: Arc<dyn ProcessGroup> = Arc::new(group);
        let model = mlp(3, 0.5);
        let opt = optimizer(false, &model);
        let mut t = Trainer::with_boxed_optimizer(model, opt, CrossEntropy)
            .epochs(2)
            .progress(ProgressMode::Silent)
            .distributed(group);
        t.fit(&split.train, None)?;
        Ok::<_, graphgrad_train::Error>((values(t.model()), t.model().random_state()))
    })
    .unwrap();
    close("dropout", &ranks[0].0, &ranks[1].0, 0.0);
    assert_ne!(ranks[0].1, ranks[1].1, "the ranks' dropout streams differ");
}

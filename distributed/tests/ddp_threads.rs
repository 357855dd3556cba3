//! Data-parallel training on two ranks run as threads ([`ThreadGroup`]): the same checks as
//! the MPI tests, in the default build (no MPI needed).

mod common;

use common::{train_ddp, train_single, Mode, Opt, RunOptions};
use graphgrad_autodiff::{DType, Tensor};
use graphgrad_distributed::{DdpConfig, DistributedDataParallel, Error, ProcessGroup, ThreadGroup};
use graphgrad_nn::Module;
use graphgrad_ops::testing::assert_close;
use std::sync::Arc;

const EPOCHS: u64 = 2;

fn two_ranks(opt: Opt, mode: Mode, options: RunOptions<'_>) -> Vec<Vec<f32>> {
    ThreadGroup::run(2, |g| train_ddp(Arc::new(g), opt, mode, 0..EPOCHS, options.clone()).map(|(p, _)| p))
        .expect("both ranks train")
}

/// Two ranks with 64 samples each per step end with the parameters of one process with 128,
/// for SGD with momentum and for Adam, eager and compiled, and SGD with a compiled update too
/// (ten steps, the last an uneven split of 5 samples weighted 0.8 / 1.2), and the two replicas
/// are bit-identical.
#[test]
fn two_ranks_of_64_match_one_process_of_128() {
    for (opt, mode) in common::COMBOS {
        {
            // (the reference applies the optimiser eagerly in every mode)
            let reference = train_single(opt, mode, EPOCHS, 2);
            let ranks = two_ranks(opt, mode, RunOptions::default());
            assert_eq!(ranks[0], ranks[1], "{opt:?} {mode:?}: replicas differ");
            assert_close(&ranks[0], &reference, 1e-5, 1e-4);
            // and training moved them: the check is not vacuous
            let start = common::flat(&common::Mlp::new(common::INIT_SEED, common::HIDDEN, 0.0));
            assert!(start.iter().zip(&reference).any(|(a, b)| (a - b).abs() > 1e-2), "{opt:?} {mode:?}");
        }
    }
}

/// Bucket size and overlap change when gradients travel, never what arrives.
#[test]
fn bucket_size_and_overlap_do_not_change_the_result() {
    let small = two_ranks(Opt::Sgd, Mode::Eager, RunOptions { bucket_bytes: Some(64), ..Default::default() });
    let one =
        two_ranks(Opt::Sgd, Mode::Eager, RunOptions { bucket_bytes: Some(1 << 30), ..Default::default() });
    let off = two_ranks(Opt::Sgd, Mode::Eager, RunOptions { no_overlap: true, ..Default::default() });
    assert_eq!(small[0], one[0]);
    assert_eq!(small[0], off[0]);
}

/// Linear 3 → 1 (weight w, bias b) on rank-dependent data, one step of plain averaging:
/// loss_r = mean_i (w·x_i + b)², ∂/∂b = 2·mean_i(w·x_i + b).
fn tiny(group: &Arc<dyn ProcessGroup>, config: DdpConfig) -> DistributedDataParallel<graphgrad_nn::Linear> {
    use rand::SeedableRng;
    let linear = graphgrad_nn::LinearConfig::new(3, 1)
        .init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(group.rank() as u64))
        .unwrap();
    DistributedDataParallel::new(linear, group.clone(), config).unwrap()
}

fn rank_batch(rank: usize, rows: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * 3).map(|i| (i + 7 * rank) as f32 * 0.1).collect();
    Tensor::from_vec(v, &[rows, 3]).unwrap()
}

/// `no_sync` accumulates locally; the next synchronised backward averages the sums: two
/// micro-batches of 2 per rank, each loss halved, equal one batch of 4 per rank.
#[test]
fn no_sync_accumulates_and_the_next_backward_averages_the_sum() {
    let grads = ThreadGroup::run(2, |g| -> graphgrad_distributed::Result<_> {
        let group: Arc<dyn ProcessGroup> = Arc::new(g);
        let ddp = tiny(&group, DdpConfig::default());
        let x = rank_batch(group.rank(), 4);
        let half = |rows: std::ops::Range<usize>| -> graphgrad_distributed::Result<Tensor> {
            let part = x.narrow(0, rows.start, rows.len())?;
            Ok(ddp.forward(&part)?.square().mean_all().mul_scalar(0.5))
        };
        ddp.no_sync(|| half(0..2)?.backward().map_err(Error::from))?;
        let local: Vec<f32> = ddp.module().named_parameters()[0].1.grad().unwrap().to_vec()?;
        half(2..4)?.backward()?;
        let accumulated: Vec<Vec<f32>> =
            ddp.named_parameters().iter().map(|(_, v)| v.grad().unwrap().to_vec().unwrap()).collect();
        // the same step without accumulation
        ddp.named_parameters().iter().for_each(|(_, v)| v.zero_grad());
        ddp.forward(&x)?.square().mean_all().backward()?;
        let whole: Vec<Vec<f32>> =
            ddp.named_parameters().iter().map(|(_, v)| v.grad().unwrap().to_vec().unwrap()).collect();
        Ok((local, accumulated, whole))
    })
    .unwrap();
    let (local0, acc0, whole0) = &grads[0];
    let (_, acc1, _) = &grads[1];
    assert_eq!(acc0, acc1, "every rank holds the same averaged gradients");
    for (a, w) in acc0.iter().zip(whole0) {
        assert_close(a, w, 1e-6, 1e-5);
    }
    // inside no_sync rank 0 had only its own first micro-batch: not the average
    assert_ne!(local0, &acc0[0]);
}

/// Different models on the ranks are the same error on every rank, naming the difference.
#[test]
fn mismatched_models_are_an_error_on_every_rank() {
    let errors = ThreadGroup::run(2, |g| -> graphgrad_distributed::Result<String> {
        let hidden = if g.rank() == 1 { 16 } else { common::HIDDEN };
        let model = common::Mlp::new(1, hidden, 0.0);
        match DistributedDataParallel::new(model, Arc::new(g), DdpConfig::default()) {
            Ok(_) => Ok("no error".into()),
            Err(e) => Ok(e.to_string()),
        }
    })
    .unwrap();
    assert_eq!(errors[0], errors[1]);
    assert!(
        errors[0].contains("parameter 0.weight is f32 [16, 20] on rank 1 but f32 [32, 20] on rank 0"),
        "{}",
        errors[0]
    );
    // so is a different bucket size
    let errors = ThreadGroup::run(2, |g| -> graphgrad_distributed::Result<String> {
        let config = DdpConfig::default().bucket_bytes(1024 * (1 + g.rank()));
        Ok(DistributedDataParallel::new(common::Mlp::new(1, 8, 0.0), Arc::new(g), config)
            .err()
            .unwrap()
            .to_string())
    })
    .unwrap();
    assert!(errors[1].contains("settings is bucket_bytes 2048"), "{}", errors[1]);
}

/// Misuse is an error, not a hang or a wrong gradient.
#[test]
fn misuse_is_reported() {
    let group: Arc<dyn ProcessGroup> = Arc::new(graphgrad_distributed::SingleProcess);
    let ddp = tiny(&group, DdpConfig::default());
    let x = rank_batch(0, 2);
    let out = ddp.forward(&x).unwrap().sum_all();
    out.backward().unwrap();
    // a second backward of the same forward would add unaveraged gradients
    let err = out.backward().unwrap_err().to_string();
    assert!(err.contains("a second backward after one forward"), "{err}");
    let err = ddp.average_gradients(&[Tensor::zeros(&[1], DType::F32).unwrap()]).unwrap_err().to_string();
    assert!(err.contains("1 gradients for 2 parameters"), "{err}");
    let zero = DdpConfig::default().bucket_bytes(0);
    let err = DistributedDataParallel::new(common::Mlp::new(1, 4, 0.0), group.clone(), zero).err().unwrap();
    assert!(err.to_string().contains("bucket_bytes must be positive"), "{err}");
}

/// With several buckets, the first is on its way before backward has finished.
#[test]
fn buckets_start_while_backward_runs() {
    let timelines = ThreadGroup::run(2, |g| -> graphgrad_distributed::Result<_> {
        let group: Arc<dyn ProcessGroup> = Arc::new(g);
        let config = DdpConfig::default().bucket_bytes(4096).overlap(true);
        let ddp = DistributedDataParallel::new(common::Mlp::new(1, 256, 0.0), group, config)?;
        assert!(ddp.overlaps());
        assert!(ddp.buckets().len() >= 3, "{} buckets", ddp.buckets().len());
        let x = Tensor::ones(&[64, common::FEATURES], DType::F32)?;
        ddp.forward(&x)?.square().mean_all().backward()?;
        Ok(ddp.timeline())
    })
    .unwrap();
    for t in timelines {
        let end = t.backward_end.expect("a backward pass");
        assert!(
            t.buckets[0].1 <= end,
            "first bucket launched at {} s, backward ended at {end} s",
            t.buckets[0].1
        );
        assert!(t.buckets.iter().all(|b| b.2 >= b.1 && b.2 <= t.end));
    }
}

/// A bucket of one parameter hands its mean out as a view of the receive buffer; a gradient
/// still held when the next step averages into that buffer keeps its values (copy on write).
#[test]
fn a_gradient_held_across_steps_keeps_its_values() {
    ThreadGroup::run(2, |g| -> graphgrad_distributed::Result<()> {
        let group: Arc<dyn ProcessGroup> = Arc::new(g);
        let ddp = tiny(&group, DdpConfig::default().bucket_bytes(4));
        assert_eq!(ddp.buckets().len(), 2);
        let step = |rows: usize| -> graphgrad_distributed::Result<Vec<Tensor>> {
            ddp.named_parameters().iter().for_each(|(_, v)| v.zero_grad());
            ddp.forward(&rank_batch(group.rank(), rows))?.square().mean_all().backward()?;
            Ok(ddp.named_parameters().iter().map(|(_, v)| v.grad().unwrap()).collect())
        };
        let first = step(2)?;
        let values: Vec<Vec<f32>> = first.iter().map(|t| t.to_vec().unwrap()).collect();
        let second = step(5)?;
        for ((held, before), after) in first.iter().zip(&values).zip(&second) {
            assert_eq!(&held.to_vec::<f32>()?, before);
            assert_ne!(&after.to_vec::<f32>()?, before);
        }
        Ok(())
    })
    .unwrap();
}

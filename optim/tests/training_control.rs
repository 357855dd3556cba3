//! Training control end to end: divergence stops training with an error before any weight is
//! touched; early stopping on a validation metric restores the best weights; schedules drive
//! the optimiser and survive a checkpoint.

use graphgrad_autodiff::{DType, Tensor, Var};
use graphgrad_optim::{
    check_loss, step_if_finite, Checkpoint, EarlyStopping, Error, ExponentialLr, LrScheduler, MetricMode,
    MultiStepLr, Optimizer, ReduceLrOnPlateau, Scheduler, Sgd, SgdConfig, StopReason, StoppingCriteria,
};

fn weights(values: Vec<f64>) -> Vec<(String, Var)> {
    let n = values.len();
    vec![("w".to_string(), Var::new("w", &Tensor::from_vec(values, &[n]).unwrap()))]
}

/// A loss that overflows to inf at the third step: the loop stops with `Diverged`, and the
/// weights are those after step 2.
#[test]
fn divergence_is_an_error_and_leaves_the_weights_untouched() {
    let params = weights(vec![1.0, 2.0]);
    let w = params[0].1.clone();
    let mut opt = Sgd::new(params.clone(), SgdConfig::new(0.1)).unwrap();
    let mut good = Vec::new();
    let mut failure = None;
    for step in 0..5u64 {
        // Scale 1e200 at step 2: the squares overflow to inf.
        let scale = if step == 2 { 1e200 } else { 1.0 };
        let loss = w.mul_scalar(scale).square().sum_all();
        opt.zero_grad();
        loss.backward().unwrap();
        match step_if_finite(&mut opt, loss.item().unwrap(), 0, step) {
            Ok(()) => good = w.to_vec::<f64>().unwrap(),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("the loop must stop");
    assert!(matches!(err, Error::Diverged { what: "loss", step: 2, .. }));
    assert!(err.to_string().contains("loss is inf at epoch 0, step 2"), "{err}");
    assert_eq!(w.to_vec::<f64>().unwrap(), good, "no update with the non-finite loss");
    assert!(w.to_vec::<f64>().unwrap().iter().all(|x| x.is_finite()));
}

/// A finite loss whose gradient is not finite (inf·0 patterns) is refused too.
#[test]
fn non_finite_gradient_with_finite_loss_is_refused() {
    let params = weights(vec![0.0]);
    let w = params[0].1.clone();
    let mut opt = Sgd::new(params, SgdConfig::new(0.1)).unwrap();
    let loss = w.sqrt().sum_all(); // d/dw √w at 0 = inf, loss = 0
    loss.backward().unwrap();
    let err = step_if_finite(&mut opt, loss.item().unwrap(), 1, 7).unwrap_err().to_string();
    assert!(err.contains("gradient of `w` is not finite"), "{err}");
    assert_eq!(w.to_vec::<f64>().unwrap(), vec![0.0]);
    assert!(check_loss(f64::NEG_INFINITY, 1, 8).is_err());
}

/// Minimise (w − 3)² with a "validation metric" that gets worse after epoch 4 (the target
/// moves): early stopping with patience 3 stops at epoch 7 and restores epoch 4's weights.
#[test]
fn early_stopping_restores_the_best_weights_in_a_training_loop() {
    let params = weights(vec![0.0]);
    let w = params[0].1.clone();
    let mut opt = Sgd::new(params.clone(), SgdConfig::new(0.2)).unwrap();
    let mut stop = StoppingCriteria::new()
        .max_epochs(100)
        .early_stopping(EarlyStopping::new(MetricMode::Min, 3).min_delta(1e-9));
    let mut history = Vec::new();
    let mut reason = None;
    for epoch in 0..100u64 {
        opt.zero_grad();
        let loss = w.add_scalar(-3.0).square().sum_all();
        loss.backward().unwrap();
        opt.step().unwrap();
        history.push(w.to_vec::<f64>().unwrap()[0]);
        let val = if epoch <= 4 { 10.0 - epoch as f64 } else { 6.0 + epoch as f64 };
        if let Some(r) = stop.end_epoch(epoch, loss.item().unwrap(), Some(val), &params).unwrap() {
            reason = Some((epoch, r));
            break;
        }
    }
    let (epoch, reason) = reason.unwrap();
    assert_eq!(epoch, 7);
    assert_eq!(reason, StopReason::EarlyStopping { best: 6.0, best_epoch: 4 });
    assert_eq!(w.to_vec::<f64>().unwrap()[0], history[4], "weights of epoch 4 restored");
}

#[test]
fn schedule_state_survives_a_checkpoint() {
    let params = weights(vec![1.0]);
    let mut opt = Sgd::new(params.clone(), SgdConfig::new(1.0)).unwrap();
    let mut sched = LrScheduler::new(MultiStepLr::new(vec![2, 4], 0.1), &mut opt).unwrap();
    for _ in 0..3 {
        sched.step(&mut opt).unwrap();
    }
    let ckpt = Checkpoint::new(&params).with_optimizer(&opt).with_schedule(&sched);
    let back = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();

    let mut opt2 = Sgd::new(params.clone(), SgdConfig::new(1.0)).unwrap();
    let mut sched2 = LrScheduler::new(MultiStepLr::new(vec![2, 4], 0.1), &mut opt2).unwrap();
    back.restore_optimizer(&mut opt2).unwrap();
    back.restore_schedule(&mut sched2).unwrap();
    assert_eq!((sched2.epoch(), opt2.lrs()), (3, opt.lrs()));
    sched.step(&mut opt).unwrap();
    sched2.step(&mut opt2).unwrap();
    assert_eq!(opt2.lrs(), opt.lrs());
    assert!((opt.lrs()[0] - 0.01).abs() < 1e-15);

    // A state from another schedule is refused, naming both.
    let mut other = LrScheduler::new(ExponentialLr::new(0.9), &mut opt2).unwrap();
    let err = back.restore_schedule(&mut other).unwrap_err().to_string();
    assert!(
        err.contains("expected ExponentialLr(gamma=0.9), found MultiStepLr(milestones=[2, 4], gamma=0.1)"),
        "{err}"
    );
    let mut plateau = ReduceLrOnPlateau::new(MetricMode::Min, &opt2);
    assert!(back.restore_schedule(&mut plateau).is_err());
    assert_eq!(plateau.state().epoch, 0);
    let no_sched = Checkpoint::new(&params);
    let err = no_sched.restore_schedule(&mut other).unwrap_err().to_string();
    assert!(err.contains("holds no schedule state"), "{err}");
}

#[test]
fn scheduler_notices_a_changed_number_of_groups() {
    let mut opt = Sgd::new(weights(vec![1.0]), SgdConfig::new(1.0)).unwrap();
    let mut sched = LrScheduler::new(ExponentialLr::new(0.5), &mut opt).unwrap();
    let extra = vec![("v".to_string(), Var::new("v", &Tensor::zeros(&[1], DType::F64).unwrap()))];
    opt.add_param_group(graphgrad_optim::ParamGroup::new(extra, SgdConfig::new(0.1))).unwrap();
    let err = sched.step(&mut opt).unwrap_err().to_string();
    assert!(err.contains("2 parameter groups but the schedule was set up for 1"), "{err}");
}

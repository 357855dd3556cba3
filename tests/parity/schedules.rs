//! The schedules family: each case is a `torch.optim.lr_scheduler` schedule (settings in
//! PyTorch's names) over an SGD of two parameter groups, and the groups' rates at every epoch
//! from the scheduler's creation on; reduce-on-plateau gets the metric of each epoch.

use crate::golden::{Attrs, Case, Report, Res};
use graphgrad::autodiff::{DType, Tensor, Var};
use graphgrad::optim::{
    ConstantLr, CosineAnnealingLr, ExponentialLr, LinearWarmup, LrScheduler, MetricMode, MultiStepLr,
    Optimizer, ParamGroup, ReduceLrOnPlateau, Schedule, Sgd, SgdConfig, StepLr, ThresholdMode,
};
use serde_json::Value;

/// The schedules mapped here (PyTorch's class names; `Constant` is `LambdaLR(lambda e: 1)`),
/// each needing a golden case.
pub const KINDS: &[&str] = &[
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "Constant",
    "ReduceLROnPlateau",
];

/// A schedule chosen at run time.
#[derive(Debug)]
struct Dyn(Box<dyn Schedule>);

impl Schedule for Dyn {
    fn lr_at(&self, base_lr: f64, epoch: u64) -> f64 {
        self.0.lr_at(base_lr, epoch)
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    fn validate(&self) -> graphgrad::optim::Result<()> {
        self.0.validate()
    }
}

fn known(kind: &str, c: &Attrs, keys: &[&str]) -> Res<()> {
    match c.map().keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(format!("{kind}: setting {k:?} is not mapped to graphgrad").into()),
        None => Ok(()),
    }
}

/// The closed-form schedule `kind` (PyTorch's class name) with `c`.
fn schedule(kind: &str, c: &Attrs) -> Res<Dyn> {
    let epochs = |key: &str| -> Res<u64> { Ok(c.usize(key)? as u64) };
    Ok(Dyn(match kind {
        "StepLR" => {
            known(kind, c, &["step_size", "gamma"])?;
            Box::new(StepLr::new(epochs("step_size")?, c.f64("gamma")?))
        }
        "MultiStepLR" => {
            known(kind, c, &["milestones", "gamma"])?;
            let milestones = c.usizes("milestones")?.into_iter().map(|m| m as u64).collect();
            Box::new(MultiStepLr::new(milestones, c.f64("gamma")?))
        }
        "ExponentialLR" => {
            known(kind, c, &["gamma"])?;
            Box::new(ExponentialLr::new(c.f64("gamma")?))
        }
        "CosineAnnealingLR" => {
            known(kind, c, &["T_max", "eta_min"])?;
            Box::new(CosineAnnealingLr::new(epochs("T_max")?, c.f64("eta_min")?))
        }
        // LinearLR(start_factor, end_factor=1, total_iters), alone or followed (SequentialLR
        // with the milestone at total_iters) by `then`
        "LinearLR" => {
            known(kind, c, &["start_factor", "total_iters", "then"])?;
            let warmup = LinearWarmup::new(epochs("total_iters")?, c.f64("start_factor")?);
            match c.map().get("then").and_then(Value::as_object) {
                None => Box::new(warmup),
                Some(then) => {
                    let then = Attrs::new(then.clone());
                    let inner = schedule(
                        then.str("schedule")?,
                        &Attrs::new(then.map()["config"].as_object().cloned().unwrap_or_default()),
                    )?;
                    Box::new(warmup.then(inner))
                }
            }
        }
        // the base rate throughout (PyTorch: LambdaLR(lambda epoch: 1))
        "Constant" => {
            known(kind, c, &[])?;
            Box::new(ConstantLr)
        }
        other => {
            return Err(format!(
                "no graphgrad schedule is mapped to {other:?} (add it to tests/parity/schedules.rs)"
            )
            .into())
        }
    }))
}

fn plateau(c: &Attrs, opt: &dyn Optimizer) -> Res<ReduceLrOnPlateau> {
    known(
        "ReduceLROnPlateau",
        c,
        &["mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr"],
    )?;
    let mode = match c.str("mode")? {
        "min" => MetricMode::Min,
        "max" => MetricMode::Max,
        other => return Err(format!("mode {other:?}").into()),
    };
    let mut p = ReduceLrOnPlateau::new(mode, opt);
    if let Some(f) = c.opt_f64("factor")? {
        p = p.factor(f);
    }
    if let Some(n) = c.opt_usize("patience")? {
        p = p.patience(n as u64);
    }
    let threshold_mode = match c.str("threshold_mode").unwrap_or("rel") {
        "rel" => ThresholdMode::Rel,
        "abs" => ThresholdMode::Abs,
        other => return Err(format!("threshold_mode {other:?}").into()),
    };
    p = p.threshold(c.f64_or("threshold", 1e-4)?, threshold_mode);
    if let Some(n) = c.opt_usize("cooldown")? {
        p = p.cooldown(n as u64);
    }
    if let Some(m) = c.opt_f64("min_lr")? {
        p = p.min_lr(m);
    }
    Ok(p)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn rates(opt: &dyn Optimizer) -> Res<Tensor> {
    let lrs = opt.lrs();
    Ok(Tensor::from_vec(lrs.clone(), &[lrs.len()])?)
}

/// Runs one schedule case.
pub fn run(report: &mut Report, case: &Case) -> Res<()> {
    let name = case.name();
    let groups = numbers(case.get("base_lrs")?)
        .into_iter()
        .enumerate()
        .map(|(i, lr)| -> Res<ParamGroup<SgdConfig>> {
            let p = Var::new(format!("p{i}"), &Tensor::zeros(&[1], DType::F64)?);
            Ok(ParamGroup::new(vec![(format!("p{i}"), p)], SgdConfig::new(lr)))
        })
        .collect::<Res<Vec<_>>>()?;
    let mut opt = Sgd::with_groups(groups)?;
    let want = case.get("lrs")?.as_array().ok_or("lrs is not a list")?;
    let want = |epoch: usize| -> Res<Tensor> {
        let lrs = numbers(want.get(epoch).ok_or("fewer epochs than steps")?);
        Ok(Tensor::from_vec(lrs.clone(), &[lrs.len()])?)
    };
    let config = case.object("config")?;
    let kind = case.str("schedule")?;
    if kind == "ReduceLROnPlateau" {
        let mut p = plateau(&config, &opt)?;
        for (epoch, metric) in numbers(case.get("metrics")?).into_iter().enumerate() {
            p.step(metric, &mut opt)?;
            report.check(
                name,
                &format!("lrs after metric {} ({metric})", epoch + 1),
                &rates(&opt)?,
                &want(epoch)?,
            );
        }
        return Ok(());
    }
    let epochs = case.get("lrs")?.as_array().map_or(0, Vec::len);
    let mut scheduler = LrScheduler::new(schedule(kind, &config)?, &mut opt)?;
    for epoch in 0..epochs {
        if epoch > 0 {
            scheduler.step(&mut opt)?;
        }
        report.check(name, &format!("lrs at epoch {epoch}"), &rates(&opt)?, &want(epoch)?);
    }
    Ok(())
}

//! The optimisers family: each case is a trajectory of a `torch.optim` optimiser over
//! parameter groups (settings in PyTorch's names; unset ones take graphgrad's defaults, which
//! must be PyTorch's), with the gradient of every step given (none for a parameter that gets
//! no gradient at that step) and the parameters after every step; and gradient clipping
//! (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`).

use crate::golden::{named_tensors, tensor, Attrs, Case, Report, Res};
use graphgrad::autodiff::Var;
use graphgrad::optim::{
    clip_grad_norm, clip_grad_value, AdagradConfig, AdamConfig, AdamWConfig, Optimizer, ParamGroup,
    ParamOptimizer, RmsPropConfig, Settings, SgdConfig, UpdateRule,
};
use serde_json::Value;

/// The `torch.optim` optimisers mapped here (each needs a golden case).
pub const KINDS: &[&str] = &["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"];

/// The `torch.nn.utils` gradient clipping functions mapped here (each needs a golden case).
pub const CLIPS: &[&str] = &["clip_grad_norm_", "clip_grad_value_"];

type Params = Vec<(String, Var)>;

/// `betas = [β₁, β₂]`.
fn betas(c: &Attrs) -> Res<[(&'static str, f64); 2]> {
    match c.f64s("betas")?.as_slice() {
        [b1, b2] => Ok([("beta1", *b1), ("beta2", *b2)]),
        other => Err(format!("betas {other:?} is not a pair").into()),
    }
}

/// A config from PyTorch's keyword arguments, set through the names the optimiser declares its
/// settings under (those a checkpoint stores, which are PyTorch's): `betas` sets `beta1` and
/// `beta2`, a flag is 0 or 1. A keyword the optimiser has no setting for is an error.
fn settings<S: Settings + Default>(c: &Attrs) -> Res<S> {
    let mut config = S::default();
    for key in c.map().keys() {
        let values = match &c.map()[key] {
            _ if key == "betas" => betas(c)?.to_vec(),
            Value::Bool(_) => vec![(key.as_str(), f64::from(u8::from(c.bool(key)?)))],
            _ => vec![(key.as_str(), c.f64(key)?)],
        };
        for (name, value) in values {
            if !config.set_hyper(name, value) {
                return Err(format!("{}: setting {key:?} is not mapped to graphgrad", S::NAME).into());
            }
        }
    }
    Ok(config)
}

fn with_groups<R: UpdateRule + Settings + Default + 'static>(
    groups: Vec<(Params, Attrs)>,
) -> Res<Box<dyn Optimizer>> {
    let groups = groups
        .into_iter()
        .map(|(params, c)| Ok(ParamGroup::new(params, settings::<R>(&c)?)))
        .collect::<Res<_>>()?;
    Ok(Box::new(ParamOptimizer::with_groups(groups)?))
}

/// The optimiser `kind` (PyTorch's class name) over `groups`.
fn optimizer(kind: &str, groups: Vec<(Params, Attrs)>) -> Res<Box<dyn Optimizer>> {
    match kind {
        "SGD" => with_groups::<SgdConfig>(groups),
        "Adam" => with_groups::<AdamConfig>(groups),
        "AdamW" => with_groups::<AdamWConfig>(groups),
        "Adagrad" => with_groups::<AdagradConfig>(groups),
        "RMSprop" => with_groups::<RmsPropConfig>(groups),
        other => Err(format!(
            "no graphgrad optimiser is mapped to {other:?} (add it to tests/parity/optimisers.rs)"
        )
        .into()),
    }
}

fn list<'a>(case: &'a Case, key: &str) -> Res<&'a Vec<Value>> {
    case.get(key)?.as_array().ok_or_else(|| format!("{key:?} is not a list").into())
}

/// Runs one clipping case: the gradients given, clipped in place, and the total norm returned.
fn run_clip(report: &mut Report, case: &Case, kind: &str) -> Res<()> {
    let name = case.name();
    let config = case.object("config")?;
    let params: Params = case
        .tensors("grads")?
        .into_iter()
        .map(|(n, g)| -> Res<(String, Var)> {
            let v = Var::new(n.clone(), &g.mul_scalar(0.0));
            v.set_grad(Some(&g))?;
            Ok((n, v))
        })
        .collect::<Res<_>>()?;
    match kind {
        "clip_grad_norm_" => {
            let norm = clip_grad_norm(&params, config.f64("max_norm")?)?;
            report.check(name, "total norm", &norm, &tensor(case.get("total_norm")?)?);
        }
        "clip_grad_value_" => clip_grad_value(&params, config.f64("clip_value")?)?,
        other => return Err(format!("no graphgrad clipping is mapped to {other:?}").into()),
    }
    config.all_read()?;
    let clipped: std::collections::BTreeMap<String, _> = params
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.grad().ok_or("no gradient after clipping")?)))
        .collect::<Res<_>>()?;
    report.check_all(name, "clipped grad", &clipped, &case.tensors("clipped")?);
    Ok(())
}

/// Runs one trajectory (or clipping case).
pub fn run(report: &mut Report, case: &Case) -> Res<()> {
    if let Ok(kind) = case.str("clip") {
        return run_clip(report, case, kind);
    }
    let name = case.name();
    let vars: Vec<(String, Var)> =
        case.tensors("params")?.into_iter().map(|(n, t)| (n.clone(), Var::new(n, &t))).collect();
    let var =
        |n: &str| vars.iter().find(|(m, _)| m == n).cloned().ok_or_else(|| format!("no parameter {n:?}"));
    let mut groups = Vec::new();
    for g in list(case, "groups")? {
        let names = g["params"].as_array().ok_or("a group's params")?;
        let params = names.iter().map(|n| var(n.as_str().unwrap_or("?"))).collect::<Result<Params, _>>()?;
        groups.push((params, Attrs::new(g["config"].as_object().cloned().ok_or("a group's config")?)));
    }
    let mut opt = optimizer(case.str("optimizer")?, groups)?;
    let (lrs, grads, path) = (list(case, "lrs")?, list(case, "grads")?, list(case, "trajectory")?);
    if grads.len() != path.len() || lrs.len() != path.len() {
        return Err("lrs, grads and trajectory differ in length".into());
    }
    for (step, ((lr, given), after)) in lrs.iter().zip(grads).zip(path).enumerate() {
        let lr: Vec<f64> = lr.as_array().ok_or("lrs")?.iter().filter_map(Value::as_f64).collect();
        for (group, &rate) in lr.iter().enumerate() {
            if opt.lrs()[group] != rate {
                opt.set_group_lr(group, rate)?;
            }
        }
        let given = named_tensors(given)?;
        for (n, v) in &vars {
            v.set_grad(given.get(n))?;
        }
        opt.step()?;
        let want = after.as_object().ok_or("a trajectory step")?;
        for (n, v) in &vars {
            let w = tensor(want.get(n).ok_or_else(|| format!("step {step}: no {n}"))?)?;
            report.check(name, &format!("step {} {n}", step + 1), v.tensor(), &w);
        }
    }
    Ok(())
}

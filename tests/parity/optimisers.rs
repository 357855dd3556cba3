//! The optimisers family: each case is a trajectory of a `torch.optim` optimiser over
//! parameter groups (settings in PyTorch's names; unset ones take graphgrad's defaults, which
//! must be PyTorch's), with the gradient of every step given (none for a parameter that gets
//! no gradient at that step) and the parameters after every step; and gradient clipping
//! (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`).

use crate::golden::{named_tensors, tensor, Attrs, Case, Report, Res};
use graphgrad::autodiff::Var;
use graphgrad::optim::{
    clip_grad_norm, clip_grad_value, AdagradConfig, AdamConfig, AdamWConfig, Optimizer, ParamGroup,
    ParamOptimizer, RmsPropConfig, SgdConfig, UpdateRule,
};
use serde_json::Value;

/// The `torch.optim` optimisers mapped here (each needs a golden case).
pub const KINDS: &[&str] = &["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"];

/// The `torch.nn.utils` gradient clipping functions mapped here (each needs a golden case).
pub const CLIPS: &[&str] = &["clip_grad_norm_", "clip_grad_value_"];

type Params = Vec<(String, Var)>;

/// Errors unless every setting is one the builders read.
fn known(kind: &str, c: &Attrs, keys: &[&str]) -> Res<()> {
    match c.map().keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(format!("{kind}: setting {k:?} is not mapped to graphgrad").into()),
        None => Ok(()),
    }
}

/// `betas = [β₁, β₂]`, when set.
fn betas(c: &Attrs) -> Res<Option<(f64, f64)>> {
    if !c.has("betas") {
        return Ok(None);
    }
    match c.f64s("betas")?.as_slice() {
        [b1, b2] => Ok(Some((*b1, *b2))),
        other => Err(format!("betas {other:?} is not a pair").into()),
    }
}

// One builder per optimiser from PyTorch's keyword arguments (kept together: the config
// structs are being reworked).

fn sgd(c: &Attrs) -> Res<SgdConfig> {
    known("SGD", c, &["lr", "momentum", "dampening", "weight_decay", "nesterov"])?;
    let mut config = SgdConfig::new(c.f64("lr")?);
    if let Some(v) = c.opt_f64("momentum")? {
        config = config.momentum(v);
    }
    if let Some(v) = c.opt_f64("dampening")? {
        config = config.dampening(v);
    }
    if let Some(v) = c.opt_f64("weight_decay")? {
        config = config.weight_decay(v);
    }
    if let Some(v) = c.opt_bool("nesterov")? {
        config = config.nesterov(v);
    }
    Ok(config)
}

fn adam(c: &Attrs) -> Res<AdamConfig> {
    known("Adam", c, &["lr", "betas", "eps", "weight_decay", "amsgrad"])?;
    let mut config = AdamConfig::new(c.f64("lr")?);
    if let Some((b1, b2)) = betas(c)? {
        config = config.betas(b1, b2);
    }
    if let Some(v) = c.opt_f64("eps")? {
        config = config.eps(v);
    }
    if let Some(v) = c.opt_f64("weight_decay")? {
        config = config.weight_decay(v);
    }
    if let Some(v) = c.opt_bool("amsgrad")? {
        config = config.amsgrad(v);
    }
    Ok(config)
}

fn adamw(c: &Attrs) -> Res<AdamWConfig> {
    known("AdamW", c, &["lr", "betas", "eps", "weight_decay", "amsgrad"])?;
    let mut config = AdamWConfig::new(c.f64("lr")?);
    if let Some((b1, b2)) = betas(c)? {
        config = config.betas(b1, b2);
    }
    if let Some(v) = c.opt_f64("eps")? {
        config = config.eps(v);
    }
    if let Some(v) = c.opt_f64("weight_decay")? {
        config = config.weight_decay(v);
    }
    if let Some(v) = c.opt_bool("amsgrad")? {
        config = config.amsgrad(v);
    }
    Ok(config)
}

fn adagrad(c: &Attrs) -> Res<AdagradConfig> {
    known("Adagrad", c, &["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"])?;
    let mut config = AdagradConfig::new(c.f64("lr")?);
    if let Some(v) = c.opt_f64("lr_decay")? {
        config = config.lr_decay(v);
    }
    if let Some(v) = c.opt_f64("weight_decay")? {
        config = config.weight_decay(v);
    }
    if let Some(v) = c.opt_f64("initial_accumulator_value")? {
        config = config.initial_accumulator_value(v);
    }
    if let Some(v) = c.opt_f64("eps")? {
        config = config.eps(v);
    }
    Ok(config)
}

fn rmsprop(c: &Attrs) -> Res<RmsPropConfig> {
    known("RMSprop", c, &["lr", "alpha", "eps", "weight_decay", "momentum", "centered"])?;
    let mut config = RmsPropConfig::new(c.f64("lr")?);
    if let Some(v) = c.opt_f64("alpha")? {
        config = config.alpha(v);
    }
    if let Some(v) = c.opt_f64("eps")? {
        config = config.eps(v);
    }
    if let Some(v) = c.opt_f64("weight_decay")? {
        config = config.weight_decay(v);
    }
    if let Some(v) = c.opt_f64("momentum")? {
        config = config.momentum(v);
    }
    if let Some(v) = c.opt_bool("centered")? {
        config = config.centered(v);
    }
    Ok(config)
}

fn with_groups<R: UpdateRule + 'static>(
    groups: Vec<(Params, Attrs)>,
    config: impl Fn(&Attrs) -> Res<R>,
) -> Res<Box<dyn Optimizer>> {
    let groups =
        groups.into_iter().map(|(params, c)| Ok(ParamGroup::new(params, config(&c)?))).collect::<Res<_>>()?;
    Ok(Box::new(ParamOptimizer::with_groups(groups)?))
}

/// The optimiser `kind` (PyTorch's class name) over `groups`.
fn optimizer(kind: &str, groups: Vec<(Params, Attrs)>) -> Res<Box<dyn Optimizer>> {
    match kind {
        "SGD" => with_groups(groups, sgd),
        "Adam" => with_groups(groups, adam),
        "AdamW" => with_groups(groups, adamw),
        "Adagrad" => with_groups(groups, adagrad),
        "RMSprop" => with_groups(groups, rmsprop),
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

//! PyTorch parity: graphgrad against golden files written by PyTorch, in f64.
//!
//! `tests/parity/generate.py` (run with a Python that has PyTorch) writes, per family, cases
//! of inputs, outputs, a cotangent per output and the gradients of Σ output·cotangent:
//! every differentiable Tensor op (`ops.json`), every loss (`losses.json`), every layer loaded
//! from PyTorch's own state dict by PyTorch's key names (`layers.json`), optimiser
//! trajectories (`optimisers.json`) and learning-rate schedules (`schedules.json`). This test
//! needs no Python: it reads the files, runs each case here and compares every value with
//! `|a − b| ≤ 1e-9 + 1e-7·|b|`. All failures of a family are collected and reported together;
//! a case whose kind the Rust side does not know is a failure, never a skip. Run with
//! `--nocapture` to see the list of what was compared.

#[path = "parity/golden.rs"]
mod golden;
#[path = "parity/layers.rs"]
mod layers;
#[path = "parity/losses.rs"]
mod losses;
#[path = "parity/ops.rs"]
mod ops;
#[path = "parity/optimisers.rs"]
mod optimisers;
#[path = "parity/schedules.rs"]
mod schedules;

use golden::{Case, Report, Res};
use graphgrad::autodiff::{grad_with_seeds, Op, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// Compares the gradients of Σ output·cotangent with respect to `leaves` with `want`
/// (`what name` in messages). Every golden cotangent must belong to an output.
pub fn check_vjp(
    report: &mut Report,
    case: &str,
    what: &str,
    outputs: &BTreeMap<String, Tensor>,
    cotangents: &BTreeMap<String, Tensor>,
    leaves: &BTreeMap<String, Tensor>,
    want: &BTreeMap<String, Tensor>,
) -> Res<Vec<Tensor>> {
    if want.is_empty() && leaves.is_empty() {
        return Ok(Vec::new());
    }
    let (mut outs, mut seeds) = (Vec::new(), Vec::new());
    for (name, cot) in cotangents {
        let out = outputs.get(name).ok_or_else(|| format!("cotangent {name:?} has no output"))?;
        if out.requires_grad() {
            outs.push(out.clone());
            seeds.push(cot.clone());
        }
    }
    let (names, inputs): (Vec<&String>, Vec<Tensor>) = leaves.iter().map(|(n, t)| (n, t.clone())).unzip();
    let grads = grad_with_seeds(&outs, seeds, &inputs, true)?;
    let got: BTreeMap<String, Tensor> = names.into_iter().cloned().zip(grads.iter().cloned()).collect();
    report.check_all(case, what, &got, want);
    Ok(grads)
}

/// The names of the ops recorded in the graphs of `roots`.
fn op_names(roots: &[Tensor], seen: &mut BTreeSet<String>) {
    let mut visited = BTreeSet::new();
    let mut stack: Vec<Tensor> = roots.to_vec();
    while let Some(t) = stack.pop() {
        if visited.insert(t.id()) {
            seen.insert(t.op().name().to_string());
            stack.extend(t.inputs().iter().cloned());
        }
    }
}

/// Fails `report` for every kind in `kinds` (what the Rust side maps) that no case of
/// `family` names in its `field`: a mapping without a golden case is untested.
fn every_kind_has_a_case(report: &mut Report, family: &golden::Family, field: &str, kinds: &[&str]) {
    let named: BTreeSet<&str> = family.cases.iter().filter_map(|c| c.str(field).ok()).collect();
    let untested: Vec<&&str> = kinds.iter().filter(|k| !named.contains(**k)).collect();
    if !untested.is_empty() {
        report.fail("coverage", format!("no {} case for {field} {untested:?}", family.name));
    }
}

/// One op or loss case: inputs (those with golden gradients made leaves), the forward,
/// outputs and input gradients compared; the ops seen are added to `seen`.
fn run_function_case(
    report: &mut Report,
    case: &Case,
    forward: impl Fn(&Case, &BTreeMap<String, Tensor>) -> Res<BTreeMap<String, Tensor>>,
    seen: &mut BTreeSet<String>,
) -> Res<()> {
    let name = case.name();
    let (inputs, leaves, want_grads) = golden::leaf_inputs(case)?;
    let outputs = forward(case, &inputs)?;
    report.check_all(name, "output", &outputs, &case.tensors("outputs")?);
    let grads =
        check_vjp(report, name, "grad", &outputs, &case.tensors("cotangents")?, &leaves, &want_grads)?;
    let roots: Vec<Tensor> = outputs.values().cloned().chain(grads).collect();
    op_names(&roots, seen);
    Ok(())
}

#[test]
fn ops_match_pytorch() {
    let family = golden::load("ops");
    let mut report = Report::default();
    let mut seen = BTreeSet::new();
    for case in &family.cases {
        let run = |case: &Case, inputs: &BTreeMap<String, Tensor>| {
            let attrs = case.attrs();
            let outputs = ops::forward(case.str("op")?, &golden::Args { inputs, attrs: &attrs })?;
            attrs.all_read()?;
            Ok(outputs)
        };
        if let Err(e) = run_function_case(&mut report, case, run, &mut seen) {
            report.fail(case.name(), e);
        }
    }
    // Every differentiable op of graphgrad's catalogue must appear in some case's forward or
    // gradient graph (the catalogue of autodiff/tests/gradcheck_ops.rs).
    let missing: Vec<String> = Op::all()
        .iter()
        .filter(|op| op.is_differentiable() && !seen.contains(op.name()))
        .map(|op| op.name().to_string())
        .collect();
    if !missing.is_empty() {
        report.fail("coverage", format!("differentiable ops no parity case reaches: {missing:?}"));
    }
    let names: Vec<&str> = ops::TABLE.iter().map(|(name, _)| *name).collect();
    every_kind_has_a_case(&mut report, &family, "op", &names);
    report.finish(&family);
}

#[test]
fn losses_match_pytorch() {
    let family = golden::load("losses");
    let mut report = Report::default();
    let mut seen = BTreeSet::new();
    for case in &family.cases {
        if let Err(e) = run_function_case(&mut report, case, losses::forward, &mut seen) {
            report.fail(case.name(), e);
        }
    }
    let names: Vec<&str> = losses::TABLE.iter().map(|(name, _)| *name).collect();
    every_kind_has_a_case(&mut report, &family, "loss", &names);
    report.finish(&family);
}

#[test]
fn layers_match_pytorch() {
    let family = golden::load("layers");
    let mut report = Report::default();
    for case in &family.cases {
        if let Err(e) = layers::run(&mut report, case) {
            report.fail(case.name(), e);
        }
    }
    every_kind_has_a_case(&mut report, &family, "module", layers::KINDS);
    report.finish(&family);
}

#[test]
fn optimisers_match_pytorch() {
    let family = golden::load("optimisers");
    let mut report = Report::default();
    for case in &family.cases {
        if let Err(e) = optimisers::run(&mut report, case) {
            report.fail(case.name(), e);
        }
    }
    every_kind_has_a_case(&mut report, &family, "optimizer", optimisers::KINDS);
    every_kind_has_a_case(&mut report, &family, "clip", optimisers::CLIPS);
    report.finish(&family);
}

#[test]
fn schedules_match_pytorch() {
    let family = golden::load("schedules");
    let mut report = Report::default();
    for case in &family.cases {
        if let Err(e) = schedules::run(&mut report, case) {
            report.fail(case.name(), e);
        }
    }
    every_kind_has_a_case(&mut report, &family, "schedule", schedules::KINDS);
    report.finish(&family);
}

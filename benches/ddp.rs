//! W10-ddp-train of `shared/bench/WORKLOADS.md`: W2's training step (784→512→512→10, ReLU,
//! cross-entropy, SGD momentum 0.9 lr 0.01) data-parallel over 2 MPI processes, 64 samples
//! each, against one process with the whole batch of 128, on the same machine.
//!
//! Included by `workloads.rs` as `mod ddp;`. The harness measures the one-process step itself
//! (with the threads it was given, `RAYON_NUM_THREADS=2` for the reference), then starts
//! `mpirun --bind-to none -np 2` on its own binary with one thread per rank; rank 0 reports.
//! Lines, all `"workload": "W10-ddp-train"`:
//! - `graphgrad-eager` / `graphgrad-compiled`, `b128`: one process, steps/s;
//! - the same frameworks, `b64x2`: two ranks, steps/s, with `ratio_to_one_process` (eager
//!   with the default `Overlap::Auto`, which says in `overlap` what it chose);
//!   `b64x2-overlap` and `b64x2-no-overlap`: eager with buckets averaged during backward, or
//!   all after it (the step time with and without overlap); `b64x2-local`: both ranks step
//!   at the same time without averaging (the compute alone: the ceiling of the others);
//!   the compiled step is a forward+backward program, the averaging, and an update program;
//! - `mpi-allreduce` and `graphgrad-ddp-allreduce`, `bytes<N>`: GB/s of a bare MPI all-reduce
//!   of the gradients' bytes and of the data-parallel averaging of the same gradients
//!   (`ratio_to_bare_mpi`).
//!
//! Needs `--features mpi`; without it (or without `mpirun`) the harness says so and skips W10.

use super::{time, Timing, STEP_REPS};
use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{grad, DType, Result, Tensor, Var};
use graphgrad::nn::loss::cross_entropy;
use graphgrad::nn::{Module, Reduction, Sequential};
use graphgrad::optim::{Optimizer, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const WORKLOAD: &str = "W10-ddp-train";
const BATCH: usize = 128;
const RANKS: usize = 2;
/// Set on the ranks `mpirun` starts: they run [`rank_main`] instead of the harness.
pub const RANK_VAR: &str = "GRAPHGRAD_W10_RANK";
const LR: f64 = 0.01;
const MOMENTUM: f64 = 0.9;

/// W2's model (seed 2) and batch: inputs `[128, 784]`, labels.
fn w2() -> (Sequential, Tensor, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let model = crate::training::w2_network(&mut rng);
    let x = Tensor::randn(&[BATCH, 784], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let y = (0..BATCH).map(|_| rng.gen_range(0..10)).collect();
    (model, x, y)
}

fn one_hot(labels: &[usize]) -> Tensor {
    let mut t = vec![0.0f32; labels.len() * 10];
    for (row, &l) in labels.iter().enumerate() {
        t[row * 10 + l] = 1.0;
    }
    Tensor::from_vec(t, &[labels.len(), 10]).expect("shape")
}

/// The compiled gradient program: `[x, one-hot]` → loss and every parameter's gradient.
fn gradient_step(model: &dyn Module, io: &[Tensor]) -> Result<Vec<Tensor>> {
    let loss = model.forward(&io[0])?.log_softmax(-1)?.mul(&io[1])?.sum(&[-1], false)?.mean_all().neg();
    let params: Vec<Tensor> = model.named_parameters().iter().map(|(_, v)| v.tensor().clone()).collect();
    let mut outputs = vec![loss.clone()];
    outputs.extend(grad(std::slice::from_ref(&loss), &params, false)?);
    Ok(outputs)
}

/// The compiled update program: SGD with momentum from gradient inputs (one per parameter),
/// `v ← μ·v + g`, `p ← p − lr·v` (PyTorch's rule).
fn update_step(params: &[Var], velocity: &[Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>> {
    for ((p, v), g) in params.iter().zip(velocity).zip(grads) {
        let v_new = v.mul_scalar(MOMENTUM).add(g)?;
        p.set(&p.sub(&v_new.mul_scalar(LR))?)?;
        v.assign(&v_new)?;
    }
    Ok(Vec::new())
}

fn line(framework: &str, param: &str, t: &Timing, throughput: f64, unit: &str) -> Value {
    json!({
        "workload": WORKLOAD, "framework": framework, "param": param,
        "median_s": t.median_s, "min_s": t.min_s,
        "throughput": throughput, "unit": unit, "peak_rss_mb": super::peak_rss_mb().round(),
    })
}

/// One process, the whole batch: eager and compiled (gradient program + update program).
fn one_process() -> (Value, Value) {
    let (model, x, y) = w2();
    let mut opt = Sgd::new(model.named_parameters(), SgdConfig::new(LR).momentum(MOMENTUM)).expect("config");
    let eager = time(STEP_REPS, || {
        opt.zero_grad();
        cross_entropy(&model.forward(&x).expect("shapes"), &y, Reduction::Mean)
            .and_then(|l| l.backward())
            .expect("backward");
        opt.step().expect("step");
    });
    let params = model.parameters();
    let velocity: Vec<Tensor> =
        params.iter().map(|p| Tensor::zeros(p.shape(), DType::F32).unwrap()).collect();
    let mut gradients = compile(|io: &[Tensor]| gradient_step(&model, io));
    let mut update = compile(|io: &[Tensor]| update_step(&params, &velocity, io));
    let target = one_hot(&y);
    let compiled = time(STEP_REPS, || {
        let out = gradients.call(&[x.clone(), target.clone()]).expect("gradient program");
        update.call(&out[1..]).expect("update program");
    });
    (
        line("graphgrad-eager", "b128", &eager, 1.0 / eager.median_s, "steps/s"),
        line("graphgrad-compiled", "b128", &compiled, 1.0 / compiled.median_s, "steps/s"),
    )
}

/// Runs W10 when `selected` accepts it.
pub fn run(selected: &dyn Fn(&str) -> bool) {
    if !selected(WORKLOAD) {
        return;
    }
    if !cfg!(feature = "mpi") {
        eprintln!("{WORKLOAD}: skipped, needs MPI: cargo bench --bench workloads --features mpi -- W10");
        return;
    }
    let (eager, compiled) = one_process();
    let exe = std::env::current_exe().expect("bench binary path");
    let output = std::process::Command::new("mpirun")
        .args(["--bind-to", "none", "-np", &RANKS.to_string()])
        .arg(exe)
        .env(RANK_VAR, "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("{WORKLOAD}: mpirun failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr));
            return;
        }
        Err(e) => {
            eprintln!("{WORKLOAD}: skipped, cannot run mpirun: {e}");
            return;
        }
    };
    println!("{eager}");
    println!("{compiled}");
    let mut bare_gbs = None;
    for text in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(mut v) = serde_json::from_str::<Value>(text) else { continue };
        let steps = v["throughput"].as_f64().unwrap_or(0.0);
        let one = match v["framework"].as_str() {
            Some("graphgrad-eager") => eager["throughput"].as_f64(),
            Some("graphgrad-compiled") => compiled["throughput"].as_f64(),
            Some("mpi-allreduce") => {
                bare_gbs = Some(steps);
                None
            }
            Some("graphgrad-ddp-allreduce") => {
                if let Some(bare) = bare_gbs {
                    v["ratio_to_bare_mpi"] = json!(steps / bare);
                }
                None
            }
            _ => None,
        };
        if let Some(one) = one {
            v["ratio_to_one_process"] = json!(steps / one);
        }
        println!("{v}");
    }
}

/// One rank of the `mpirun` job: measures and, on rank 0, prints the JSON lines.
#[cfg(feature = "mpi")]
pub fn rank_main() {
    use graphgrad::distributed::{
        DdpConfig, DistributedDataParallel, MpiGroup, Overlap, ProcessGroup, ReduceOp,
    };
    /// Extra warm-up steps of each data-parallel configuration.
    const WARMUP: usize = 20;
    let group = MpiGroup::init(Default::default()).expect("MPI");
    let (rank, lead) = (group.rank(), group.rank() == 0);
    let (model, x, y) = w2();
    let rows = BATCH / RANKS;
    let x = x.narrow(0, rank * rows, rows).expect("rows").detach();
    let y = y[rank * rows..(rank + 1) * rows].to_vec();
    let target = one_hot(&y);
    let report = |v: Value| {
        if lead {
            println!("{v}");
        }
    };
    // the compute alone: both ranks step at once, nothing averaged
    {
        let (model, _, _) = w2();
        let mut opt =
            Sgd::new(model.named_parameters(), SgdConfig::new(LR).momentum(MOMENTUM)).expect("config");
        let mut step = || {
            opt.zero_grad();
            cross_entropy(&model.forward(&x).expect("shapes"), &y, Reduction::Mean)
                .and_then(|l| l.backward())
                .expect("backward");
            opt.step().expect("step");
        };
        (0..WARMUP).for_each(|_| step());
        group.barrier().expect("barrier");
        let t = time(STEP_REPS, step);
        group.barrier().expect("barrier");
        report(line("graphgrad-eager", "b64x2-local", &t, 1.0 / t.median_s, "steps/s"));
    }
    // the default (overlap decided for this machine), and overlap forced on and off
    for (param, overlap) in
        [("b64x2", Overlap::Auto), ("b64x2-overlap", Overlap::On), ("b64x2-no-overlap", Overlap::Off)]
    {
        let (model, _, _) = w2();
        let config = DdpConfig { overlap, ..DdpConfig::default() };
        let ddp = DistributedDataParallel::new(model, group.clone(), config).expect("ddp");
        let mut opt =
            Sgd::new(ddp.named_parameters(), SgdConfig::new(LR).momentum(MOMENTUM)).expect("config");
        let mut step = || {
            opt.zero_grad();
            cross_entropy(&ddp.forward(&x).expect("shapes"), &y, Reduction::Mean)
                .and_then(|l| l.backward())
                .expect("backward");
            opt.step().expect("step");
        };
        // Beyond the harness's three warm-up steps: the first steps of a job also wait for the
        // ranks' allocators and MPI's shared-memory segments to settle.
        (0..WARMUP).for_each(|_| step());
        let t = time(STEP_REPS, step);
        let mut v = line("graphgrad-eager", param, &t, 1.0 / t.median_s, "steps/s");
        v["overlap"] = json!(ddp.overlaps());
        report(v);
    }
    // compiled: gradient program, averaging over the ranks, update program
    let ddp = DistributedDataParallel::new(model, group.clone(), DdpConfig::default()).expect("ddp");
    let params = ddp.parameters();
    let velocity: Vec<Tensor> =
        params.iter().map(|p| Tensor::zeros(p.shape(), DType::F32).expect("zeros")).collect();
    let mut gradients = compile(|io: &[Tensor]| gradient_step(ddp.module(), io));
    let mut update = compile(|io: &[Tensor]| update_step(&params, &velocity, io));
    let mut step = || {
        let out = gradients.call(&[x.clone(), target.clone()]).expect("gradient program");
        ddp.average_gradients(&out[1..]).expect("average");
        let averaged: Vec<Tensor> = params.iter().map(|p| p.grad().expect("averaged")).collect();
        update.call(&averaged).expect("update program");
    };
    (0..WARMUP).for_each(|_| step());
    // (Holding a step's outputs past the next call would keep the program from reusing them.)
    let t = time(STEP_REPS, step);
    let grads: Vec<Tensor> =
        gradients.call(&[x.clone(), target.clone()]).expect("gradient program")[1..].to_vec();
    report(line("graphgrad-compiled", "b64x2", &t, 1.0 / t.median_s, "steps/s"));
    // bandwidth: a bare all-reduce of the gradients' bytes, and the averaging of the gradients
    let numel: usize = params.iter().map(|p| p.numel()).sum();
    let bytes = 4 * numel;
    let send = vec![1.0f32; numel];
    let mut recv = vec![0.0f32; numel];
    // On a thread of its own, as the data-parallel all-reduces run (on the main thread they
    // are slower and erratic here: see the reducer's docs).
    let bare = std::thread::scope(|scope| {
        let all_reduce = || {
            use graphgrad::distributed::{Data, DataMut};
            group
                .all_reduce_into(Data::F32(&send), DataMut::F32(&mut recv), ReduceOp::Sum)
                .expect("all-reduce");
        };
        scope.spawn(|| time(STEP_REPS, all_reduce)).join().expect("bare all-reduce thread")
    });
    report(line(
        "mpi-allreduce",
        &format!("bytes{bytes}"),
        &bare,
        bytes as f64 / bare.median_s / 1e9,
        "GB/s",
    ));
    let ours = time(STEP_REPS, || ddp.average_gradients(&grads).expect("average"));
    report(line(
        "graphgrad-ddp-allreduce",
        &format!("bytes{bytes}"),
        &ours,
        bytes as f64 / ours.median_s / 1e9,
        "GB/s",
    ));
}

/// Without MPI there are no ranks to run.
#[cfg(not(feature = "mpi"))]
pub fn rank_main() {
    eprintln!("{WORKLOAD}: this binary was built without the mpi feature");
}

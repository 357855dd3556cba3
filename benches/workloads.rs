//! The benchmark harness: runs the workloads of `shared/bench/WORKLOADS.md` and prints one JSON
//! line per result (median and min of timed repetitions after a warm-up).
//!
//! ```text
//! cargo bench --bench workloads                 # every workload
//! cargo bench --bench workloads -- W1           # workloads whose id starts with W1
//! cargo bench --bench workloads --features mpi -- W10   # data-parallel over 2 MPI ranks
//! cargo bench --bench workloads -- W2 --profile  # and where each compiled step's time goes
//! ```
//! Set `RAYON_NUM_THREADS=2` to match the reference script (`benches/reference.py`).

mod compiled;
mod ddp;
mod func;
mod inference;
mod sequence;
mod trainer;
mod training;

use graphgrad::autodiff::{DType, Tensor};
use graphgrad::ops::gemm::{gemm, Gemm};
use graphgrad::ops::testing::random_vec;
use graphgrad::ops::Element;
use rand::SeedableRng;
use serde_json::json;
use std::time::Instant;

/// Timing of one measured closure.
struct Timing {
    median_s: f64,
    min_s: f64,
}

/// Timed repetitions of one training step (the same count in `reference.py`): enough for a
/// stable median on a shared machine.
const STEP_REPS: usize = 100;

/// Times `reps` calls of `f` after three warm-up calls.
fn time<F: FnMut()>(reps: usize, mut f: F) -> Timing {
    // Nothing an earlier workload left for reuse counts against this one.
    graphgrad::autodiff::clear_buffer_pool();
    if profiling() {
        eprintln!("resident before the first call: {:.0} MB", rss_mb());
    }
    for _ in 0..3 {
        f();
    }
    // The peak each line reports is this workload's over its timed calls (Linux: 5 resets the
    // high-water mark): the warm-up before holds a compiled step's one-off trace.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Timing { median_s: samples[samples.len() / 2], min_s: samples[0] }
}

/// Resident set size high-water mark of this process over the last [`time`]'s timed calls, in
/// MiB (Linux), else 0.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident set size now, in MiB (Linux), else 0.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A `/proc/self/status` line's figure in MiB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn report(workload: &str, framework: &str, param: &str, t: &Timing, throughput: f64, unit: &str) {
    println!(
        "{}",
        json!({
            "workload": workload, "framework": framework, "param": param,
            "median_s": t.median_s, "min_s": t.min_s,
            "throughput": throughput, "unit": unit, "peak_rss_mb": peak_rss_mb().round(),
        })
    );
}

/// W1-sgemm: C = A·B for square n (and the f64 variant, reported as W1-dgemm).
fn w1_gemm<T: Element>(workload: &str) {
    for n in [128usize, 256, 512, 1024, 2048] {
        let a: Vec<T> = random_vec(n * n, 1);
        let b: Vec<T> = random_vec(n * n, 2);
        let mut c = vec![T::ZERO; n * n];
        let g = Gemm { m: n, n, k: n, trans_a: false, trans_b: false, accumulate: false };
        let reps = if n >= 1024 { 5 } else { 20 };
        let t = time(reps, || gemm(&g, &a, &b, &mut c));
        let gflops = 2.0 * (n as f64).powi(3) / t.median_s / 1e9;
        report(workload, "graphgrad-eager", &format!("n{n}"), &t, gflops, "GFLOP/s");
    }
}

/// W5-autograd-overhead: 1000 chained elementwise ops on 16 elements, then sum and backward.
fn w5_autograd_overhead() {
    const OPS: usize = 1000;
    let x = Tensor::from_vec(vec![0.5f32; 16], &[16]).expect("shape").requires_grad_();
    let t = time(20, || {
        let mut y = x.clone();
        for i in 0..OPS {
            y = match i % 3 {
                0 => y.mul_scalar(1.0001),
                1 => y.add_scalar(0.0001),
                _ => y.tanh(),
            };
        }
        y.sum_all().backward().expect("backward");
        x.zero_grad();
    });
    let per_op_us = t.median_s / OPS as f64 * 1e6;
    report("W5-autograd-overhead", "graphgrad-eager", "n16", &t, per_op_us, "us/op");
}

/// W6-fusion: tanh-GELU of 4,194,304 elements written with primitive ops, sum, backward.
fn w6_fusion() {
    const N: usize = 4_194_304;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let x = Tensor::randn(&[N], 0.0, 1.0, DType::F32, &mut rng).unwrap().requires_grad_();
    let t = time(10, || {
        let inner = x.add(&x.pow_scalar(3.0).mul_scalar(0.044715)).expect("shapes").mul_scalar(0.797_884_56);
        let y = x.mul_scalar(0.5).mul(&inner.tanh().add_scalar(1.0)).expect("shapes");
        y.sum_all().backward().expect("backward");
        x.zero_grad();
    });
    report("W6-fusion", "graphgrad-eager", "n4194304", &t, t.median_s * 1e3, "ms/step");
}

/// `--profile`: after each compiled workload, the time of each kernel of its program and its
/// pass log, and before each workload what is resident (on standard error).
pub fn profiling() -> bool {
    std::env::args().any(|a| a == "--profile")
}

fn main() {
    // W10 runs this binary again under mpirun as its ranks.
    if std::env::var(ddp::RANK_VAR).is_ok() {
        return ddp::rank_main();
    }
    // W1 calls kernels directly, before any tensor exists to do this.
    graphgrad::ops::threads::adopt_main_thread();
    // `cargo bench` passes `--bench`; the first other argument filters workload ids.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    let selected = |id: &str| id.starts_with(filter.as_str());
    if selected("W1-sgemm") {
        w1_gemm::<f32>("W1-sgemm");
    }
    if selected("W1-dgemm") {
        w1_gemm::<f64>("W1-dgemm");
    }
    if selected("W5-autograd-overhead") {
        w5_autograd_overhead();
    }
    if selected("W6-fusion") {
        w6_fusion();
    }
    training::run(&selected);
    sequence::run(&selected);
    inference::run(&selected);
    compiled::run(&selected);
    trainer::run(&selected);
    func::run(&selected);
    ddp::run(&selected);
}

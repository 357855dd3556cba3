//! Threads: tensors, layers and compiled steps used from several threads, at 1, 2 and 4 rayon
//! threads, each scenario under a time limit so that a hang fails the test instead of hanging it.
//!
//! rayon's global pool is per process and the main thread's part in it is settled by the first
//! tensor, so this is a test without libtest's harness: its `main` runs the scenarios on the
//! real main thread of a child process per thread count, which it waits for with a timeout.

use graphgrad::autodiff::compile::compile;
use graphgrad::autodiff::{DType, Tensor, Var};
use graphgrad::nn::loss::{mse_loss, Reduction};
use graphgrad::nn::{LinearConfig, Module};
use graphgrad::optim::{Optimizer, Sgd, SgdConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = "GRAPHGRAD_THREADS_TEST_CHILD";
/// Far above what every scenario takes together (well under a second each).
const LIMIT: Duration = Duration::from_secs(120);

type AnyResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every module type can be shared by threads.
#[allow(dead_code)]
fn modules_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    use graphgrad::nn::*;
    shared::<Sequential>();
    shared::<Dropout>();
    shared::<BatchNorm2d>();
    shared::<MultiheadAttention>();
    shared::<TransformerEncoderLayer>();
    shared::<MemN2N>();
    shared::<Linear>();
    shared::<Conv2d>();
    shared::<Lstm>();
    shared::<Tensor>();
    shared::<Var>();
}

/// The main thread makes a tensor (joining rayon's pool when it has more than one thread),
/// then waits for a thread that runs large ops and a short training.
fn ops_on_a_spawned_thread() -> AnyResult {
    let _main = Tensor::ones(&[4], DType::F32)?;
    let worker = std::thread::spawn(|| -> AnyResult {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let a = Tensor::randn(&[384, 384], 0.0, 1.0, DType::F32, &mut rng)?;
        // above the kernels' thresholds for splitting work over the pool
        let p = a.matmul(&a)?.add(&a)?.tanh().sum_all();
        assert!(p.item()?.is_finite());
        let model = LinearConfig::new(64, 8).init(&mut rng)?;
        let mut sgd = Sgd::new(model.named_parameters(), SgdConfig::new(0.01))?;
        let x = Tensor::randn(&[256, 64], 0.0, 1.0, DType::F32, &mut rng)?;
        let y = Tensor::randn(&[256, 8], 0.0, 1.0, DType::F32, &mut rng)?;
        for _ in 0..20 {
            sgd.zero_grad();
            mse_loss(&model.forward(&x)?, &y, Reduction::Mean)?.backward()?;
            sgd.step()?;
        }
        Ok(())
    });
    worker.join().map_err(|_| "the spawned thread panicked")?
}

/// An op reading a parameter twice (`w * w`) on one thread while another steps it: a second
/// read lock on the same tensor, queued behind the pending write, would never be granted.
fn reads_beside_an_optimiser() -> AnyResult {
    const STEPS: usize = 100_000;
    let w = Var::new("w", &Tensor::ones(&[4, 4], DType::F32)?);
    let reader = {
        let w = w.clone();
        std::thread::spawn(move || -> AnyResult {
            for _ in 0..STEPS {
                let t = w.tensor();
                t.mul(t)?;
                Tensor::cat(&[t.clone(), t.clone(), t.clone()], 0)?;
            }
            Ok(())
        })
    };
    let mut sgd = Sgd::new(vec![("w".to_string(), w.clone())], SgdConfig::new(1e-6))?;
    let g = Tensor::ones(&[4, 4], DType::F32)?;
    for _ in 0..STEPS {
        w.tensor().set_grad(Some(&g))?;
        sgd.step()?;
    }
    reader.join().map_err(|_| "the reading thread panicked")?
}

/// A compiled training step updates a model's parameters on one thread while another runs
/// the model's forward: the forward sees the parameters before or after a step, never
/// without their values.
fn forward_beside_a_compiled_step() -> AnyResult {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = Arc::new(LinearConfig::new(32, 16).init(&mut rng)?);
    let x = Tensor::randn(&[64, 32], 0.0, 1.0, DType::F32, &mut rng)?;
    let y = Tensor::randn(&[64, 16], 0.0, 1.0, DType::F32, &mut rng)?;
    let trainer = {
        let (model, x, y) = (model.clone(), x.clone(), y.clone());
        std::thread::spawn(move || -> AnyResult {
            let sgd = std::cell::RefCell::new(Sgd::new(model.named_parameters(), SgdConfig::new(1e-3))?);
            let mut step = compile(|io: &[Tensor]| -> graphgrad::optim::Result<Tensor> {
                let mut sgd = sgd.borrow_mut();
                sgd.zero_grad();
                let loss = mse_loss(&model.forward(&io[0])?, &io[1], Reduction::Mean)?;
                loss.backward()?;
                sgd.step()?;
                Ok(loss)
            });
            for _ in 0..300 {
                step.call(&[x.clone(), y.clone()])?;
            }
            Ok(())
        })
    };
    for _ in 0..300 {
        let out = model.forward(&x)?;
        assert_eq!(out.shape(), &[64, 16]);
    }
    trainer.join().map_err(|_| "the training thread panicked")?
}

fn child() -> AnyResult {
    type Scenario = (&'static str, fn() -> AnyResult);
    let scenarios: [Scenario; 3] = [
        ("ops_on_a_spawned_thread", ops_on_a_spawned_thread),
        ("reads_beside_an_optimiser", reads_beside_an_optimiser),
        ("forward_beside_a_compiled_step", forward_beside_a_compiled_step),
    ];
    for (name, scenario) in scenarios {
        let start = Instant::now();
        scenario().map_err(|e| format!("{name}: {e}"))?;
        println!("  {name}: ok in {:.2} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Runs the scenarios in a child process with `threads` rayon threads; an error when it fails
/// or outlives [`LIMIT`] (then it is killed).
fn run_child(threads: usize) -> AnyResult {
    let mut process = Command::new(std::env::current_exe()?)
        .env(CHILD, "1")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = process.try_wait()? {
            return if status.success() { Ok(()) } else { Err(format!("exited with {status}").into()) };
        }
        if start.elapsed() > LIMIT {
            process.kill()?;
            process.wait()?;
            return Err(format!("still running after {} s: killed (a hang)", LIMIT.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return match child() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo test -- --list` and filters: this binary has one test, run when nothing is listed.
    if std::env::args().any(|a| a == "--list") {
        println!("threads: test");
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    for threads in [1, 2, 4] {
        println!("RAYON_NUM_THREADS={threads}:");
        if let Err(e) = run_child(threads) {
            println!("  FAILED: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

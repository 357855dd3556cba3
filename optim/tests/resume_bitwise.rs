//! Resuming in a new process is bit-identical to never stopping.
//!
//! A small MLP (built from `Var`s and tensor ops) trains on random mini-batches drawn from a
//! ChaCha8 RNG, with dropout from the same RNG, AdamW over two parameter groups, gradient
//! clipping and a warm-up + cosine schedule. Three child processes (this test binary
//! re-executed with `GRAPHGRAD_RESUME_MODE`) run: `full` trains N + M steps; `first` trains N
//! steps and checkpoints; `resume` starts from a differently initialised model, restores the
//! checkpoint and trains M steps. The parent compares `full` and `resume`: parameters,
//! optimiser state, schedule and RNG must be bit-identical. All children get the same
//! RAYON_NUM_THREADS.

use graphgrad_autodiff::{DType, Tensor, Var};
use graphgrad_optim::{
    check_loss, clip_grad_norm, AdamW, AdamWConfig, Checkpoint, CosineAnnealingLr, LinearWarmup, LrScheduler,
    Optimizer, ParamGroup, Result, SavedData,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODE_ENV: &str = "GRAPHGRAD_RESUME_MODE";
const DIR_ENV: &str = "GRAPHGRAD_RESUME_DIR";
const N: u64 = 30;
const M: u64 = 25;
const BATCH: usize = 16;

/// The data set: 64 points of y = sin(x₀) + x₁·x₂ − 0.5·x₃, fixed by its seed.
fn data() -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..64 * 4).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let y: Vec<f32> = x.chunks(4).map(|r| r[0].sin() + r[1] * r[2] - 0.5 * r[3]).collect();
    (Tensor::from_vec(x, &[64, 4]).unwrap(), Tensor::from_vec(y, &[64, 1]).unwrap())
}

struct Run {
    params: Vec<(String, Var)>,
    opt: AdamW,
    sched: LrScheduler<LinearWarmup<CosineAnnealingLr>>,
    rng: ChaCha8Rng,
    step: u64,
}

impl Run {
    /// A fresh run whose weights come from `init_seed`.
    fn new(init_seed: u64) -> Run {
        let mut init = ChaCha8Rng::seed_from_u64(init_seed);
        let mut var = |name: &str, shape: &[usize], std: f64| {
            (
                name.to_string(),
                Var::new(name, &Tensor::randn(shape, 0.0, std, DType::F32, &mut init).unwrap()),
            )
        };
        let params = vec![
            var("w1", &[4, 16], 0.5),
            var("b1", &[16], 0.1),
            var("w2", &[16, 1], 0.25),
            var("b2", &[1], 0.1),
        ];
        let (weights, biases): (Vec<_>, Vec<_>) =
            params.iter().cloned().partition(|(n, _)| n.starts_with('w'));
        let mut opt = AdamW::with_groups(vec![
            ParamGroup::new(weights, AdamWConfig::new(0.02).weight_decay(0.01)),
            ParamGroup::new(biases, AdamWConfig::new(0.04).weight_decay(0.0)),
        ])
        .unwrap();
        let schedule = LinearWarmup::new(10, 0.1).then(CosineAnnealingLr::new(60, 1e-4));
        let sched = LrScheduler::new(schedule, &mut opt).unwrap();
        Run { params, opt, sched, rng: ChaCha8Rng::seed_from_u64(77), step: 0 }
    }

    fn param(&self, name: &str) -> &Var {
        &self.params.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn train_step(&mut self, x: &Tensor, y: &Tensor) -> Result<f64> {
        let idx: Vec<usize> = (0..BATCH).map(|_| self.rng.gen_range(0..64)).collect();
        let (xb, yb) = (x.index_select(0, &idx)?, y.index_select(0, &idx)?);
        let hidden = xb.matmul(self.param("w1"))?.add(self.param("b1"))?.tanh();
        let hidden =
            hidden.dropout(0.1, true, &graphgrad_autodiff::Generator::new(rand::Rng::gen(&mut self.rng)))?;
        let pred = hidden.matmul(self.param("w2"))?.add(self.param("b2"))?;
        let loss = pred.sub(&yb)?.square().mean_all();
        let value = loss.item()?;
        check_loss(value, 0, self.step)?;
        self.opt.zero_grad();
        loss.backward()?;
        clip_grad_norm(&self.params, 1.0)?;
        self.opt.step()?;
        self.sched.step(&mut self.opt)?;
        self.step += 1;
        Ok(value)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(&self.params)
            .with_optimizer(&self.opt)
            .with_schedule(&self.sched)
            .with_rng(&self.rng)
            .with_progress(0, self.step)
    }

    fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        ckpt.restore_model(&self.params)?;
        ckpt.restore_optimizer(&mut self.opt)?;
        ckpt.restore_schedule(&mut self.sched)?;
        self.rng = ckpt.rng()?;
        self.step = ckpt.step;
        Ok(())
    }
}

/// The child's work (a no-op when run as an ordinary test).
#[test]
fn child_trains() {
    let Ok(mode) = std::env::var(MODE_ENV) else { return };
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let (x, y) = data();
    match mode.as_str() {
        "full" => {
            let mut run = Run::new(3);
            for _ in 0..N + M {
                run.train_step(&x, &y).unwrap();
            }
            run.checkpoint().save(dir.join("full.ckpt")).unwrap();
        }
        "first" => {
            let mut run = Run::new(3);
            for _ in 0..N {
                run.train_step(&x, &y).unwrap();
            }
            run.checkpoint().save(dir.join("mid.ckpt")).unwrap();
        }
        "resume" => {
            let mut run = Run::new(12345); // other weights: everything must come from the file
            run.restore(&Checkpoint::load(dir.join("mid.ckpt")).unwrap()).unwrap();
            for _ in 0..M {
                run.train_step(&x, &y).unwrap();
            }
            run.checkpoint().save(dir.join("resumed.ckpt")).unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}

fn run_child(mode: &str, dir: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_trains", "--nocapture", "--test-threads", "1"])
        .env(MODE_ENV, mode)
        .env(DIR_ENV, dir)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "child `{mode}` failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn bits(data: &SavedData) -> Vec<u64> {
    match data {
        SavedData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        SavedData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        SavedData::I64(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

#[test]
fn resuming_in_a_new_process_is_bit_identical_to_an_uninterrupted_run() {
    let dir = std::env::temp_dir().join(format!("graphgrad-optim-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in ["full", "first", "resume"] {
        run_child(mode, &dir);
    }
    let full = Checkpoint::load(dir.join("full.ckpt")).unwrap();
    let mid = Checkpoint::load(dir.join("mid.ckpt")).unwrap();
    let resumed = Checkpoint::load(dir.join("resumed.ckpt")).unwrap();
    assert_eq!((mid.step, full.step, resumed.step), (N, N + M, N + M));
    for (name, tensor) in &full.model {
        assert_eq!(bits(&tensor.data), bits(&resumed.model[name].data), "parameter `{name}` differs");
        assert_ne!(bits(&tensor.data), bits(&mid.model[name].data), "parameter `{name}` never trained");
    }
    assert_eq!(full.optimizer, resumed.optimizer, "optimizer state differs");
    assert_eq!(full.schedule, resumed.schedule, "schedule differs");
    assert_eq!(full.rng, resumed.rng, "RNG state differs");
    assert_eq!(full.to_bytes().unwrap(), resumed.to_bytes().unwrap(), "the files differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The training runs the data-parallel tests compare: one process on the whole batch (the
//! reference, written without any of this crate's training code) and data-parallel ranks on
//! their shares, for either process group (threads here, MPI in `mpi.rs`).
//!
//! The model is a 20 → 32 → 10 MLP with optional dropout; the loss is the mean cross-entropy
//! written with tensor ops against one-hot targets, which also serve the compiled step. 517
//! samples, 64 per rank and step on 2 ranks: four global batches of 128, then one of 5 split
//! 2 / 3, which the loss weights must get right.

#![allow(dead_code)] // each test binary uses part of it

use graphgrad_autodiff::compile::compile;
use graphgrad_autodiff::{grad, Generator, Result as TensorResult, Tensor, Var};
use graphgrad_distributed::{
    load_checkpoint, rank_seed, save_checkpoint, DdpConfig, DistributedDataParallel, DistributedSampler,
    ProcessGroup,
};
use graphgrad_nn::{Linear, LinearConfig, Module, Visitor};
use graphgrad_optim::{Adam, AdamConfig, Checkpoint, Optimizer, Sgd, SgdConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;

pub const FEATURES: usize = 20;
pub const CLASSES: usize = 10;
pub const HIDDEN: usize = 32;
pub const SAMPLES: usize = 517;
pub const BATCH_PER_RANK: usize = 64;
pub const INIT_SEED: u64 = 11;
pub const DATA_SEED: u64 = 5;

/// Which optimiser a run uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Opt {
    /// SGD, momentum 0.9, lr 0.05.
    Sgd,
    /// Adam, lr 0.01.
    Adam,
}

/// Eager steps; a compiled forward + backward with the optimiser applied eagerly; or (SGD
/// only) compiled forward + backward and a compiled update, with the averaging between them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Eager,
    Compiled,
    CompiledUpdate,
}

/// Every optimiser × mode the equivalence tests run.
pub const COMBOS: [(Opt, Mode); 5] = [
    (Opt::Sgd, Mode::Eager),
    (Opt::Sgd, Mode::Compiled),
    (Opt::Sgd, Mode::CompiledUpdate),
    (Opt::Adam, Mode::Eager),
    (Opt::Adam, Mode::Compiled),
];

/// Features `[SAMPLES, FEATURES]` and labels, the same on every rank.
pub struct Data {
    pub x: Vec<f32>,
    pub labels: Vec<usize>,
}

pub fn data() -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(DATA_SEED);
    let x = (0..SAMPLES * FEATURES).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let labels = (0..SAMPLES).map(|_| rng.gen_range(0..CLASSES)).collect();
    Data { x, labels }
}

/// `x [n, FEATURES]` and one-hot targets scaled by `weight`, `[n, CLASSES]`.
pub fn batch(data: &Data, indices: &[usize], weight: f64) -> (Tensor, Tensor) {
    let x: Vec<f32> =
        indices.iter().flat_map(|&i| data.x[i * FEATURES..(i + 1) * FEATURES].iter().copied()).collect();
    let mut t = vec![0.0f32; indices.len() * CLASSES];
    for (row, &i) in indices.iter().enumerate() {
        t[row * CLASSES + data.labels[i]] = weight as f32;
    }
    let n = indices.len();
    (Tensor::from_vec(x, &[n, FEATURES]).unwrap(), Tensor::from_vec(t, &[n, CLASSES]).unwrap())
}

/// Mean cross-entropy against (weighted) one-hot targets: −mean_i Σ_c t_ic · log softmax(z)_ic.
pub fn loss(logits: &Tensor, targets: &Tensor) -> TensorResult<Tensor> {
    Ok(logits.log_softmax(-1)?.mul(targets)?.sum(&[-1], false)?.mean_all().neg())
}

/// The MLP, with a dropout stream that can be reseeded (per rank and epoch).
pub struct Mlp {
    l1: Linear,
    l2: Linear,
    dropout: f64,
    generator: Generator,
}

impl Mlp {
    pub fn new(seed: u64, hidden: usize, dropout: f64) -> Mlp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Mlp {
            l1: LinearConfig::new(FEATURES, hidden).init(&mut rng).unwrap(),
            l2: LinearConfig::new(hidden, CLASSES).init(&mut rng).unwrap(),
            dropout,
            generator: Generator::new(0),
        }
    }

    pub fn reseed(&self, seed: u64) {
        self.generator.set_position([seed as i64, 0]);
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> TensorResult<Tensor> {
        let h = self.l1.forward(x)?.relu().dropout(self.dropout, true, &self.generator)?;
        self.l2.forward(&h)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.child("0", &self.l1);
        v.child("1", &self.l2);
    }
}

pub fn optimizer(opt: Opt, params: Vec<(String, Var)>) -> Box<dyn Optimizer> {
    match opt {
        Opt::Sgd => Box::new(Sgd::new(params, SgdConfig::new(0.05).momentum(0.9)).unwrap()),
        Opt::Adam => Box::new(Adam::new(params, AdamConfig::new(0.01)).unwrap()),
    }
}

/// Every parameter's values, concatenated in name order.
pub fn flat(model: &dyn Module) -> Vec<f32> {
    model.named_parameters().iter().flat_map(|(_, v)| v.to_vec::<f32>().unwrap()).collect()
}

/// The compiled step: inputs `[x, targets]`, outputs the loss and every parameter's gradient.
fn traced_step(model: &dyn Module, io: &[Tensor]) -> TensorResult<Vec<Tensor>> {
    let l = loss(&model.forward(&io[0])?, &io[1])?;
    let params: Vec<Tensor> = model.named_parameters().iter().map(|(_, v)| v.tensor().clone()).collect();
    let mut outputs = vec![l.clone()];
    outputs.extend(grad(std::slice::from_ref(&l), &params, false)?);
    Ok(outputs)
}

/// The compiled update: SGD with momentum 0.9, lr 0.05 from gradient inputs (PyTorch's rule
/// `v ← 0.9·v + g`, `p ← p − 0.05·v`), written with tensor ops; each call updates `params` and
/// `velocity` in place.
fn sgd_update(params: &[Var], velocity: &[Tensor], grads: &[Tensor]) -> TensorResult<Vec<Tensor>> {
    for ((p, v), g) in params.iter().zip(velocity).zip(grads) {
        let v_new = v.mul_scalar(0.9).add(g)?;
        p.set(&p.sub(&v_new.mul_scalar(0.05))?)?;
        v.assign(&v_new)?;
    }
    Ok(Vec::new())
}

/// The reference: one process, the whole global batch each step (`ranks × 64` samples of the
/// same epoch order; the last batch holds the rest), no data-parallel code involved.
pub fn train_single(opt: Opt, mode: Mode, epochs: u64, ranks: usize) -> Vec<f32> {
    let data = data();
    let model = Mlp::new(INIT_SEED, HIDDEN, 0.0);
    let mut optimizer = optimizer(opt, model.named_parameters());
    let mut program = compile(|io: &[Tensor]| traced_step(&model, io));
    let order_of = DistributedSampler::new(SAMPLES, BATCH_PER_RANK, 0, 1).unwrap().seed(DATA_SEED);
    for epoch in 0..epochs {
        for chunk in order_of.epoch_order(epoch).chunks(BATCH_PER_RANK * ranks) {
            let (x, t) = batch(&data, chunk, 1.0);
            optimizer.zero_grad();
            match mode {
                Mode::Eager => loss(&model.forward(&x).unwrap(), &t).unwrap().backward().unwrap(),
                Mode::Compiled | Mode::CompiledUpdate => {
                    let out = program.call(&[x, t]).unwrap();
                    for ((_, var), g) in model.named_parameters().iter().zip(&out[1..]) {
                        var.set_grad(Some(g)).unwrap();
                    }
                }
            }
            optimizer.step().unwrap();
        }
    }
    flat(&model)
}

/// What a data-parallel run does besides training.
#[derive(Clone, Debug, Default)]
pub struct RunOptions<'a> {
    /// Dropout probability (masks from `rank_seed(INIT_SEED, rank, epoch)`).
    pub dropout: f64,
    /// Resume from this checkpoint (read by rank 0) before the first epoch.
    pub resume: Option<&'a Path>,
    /// Save a checkpoint here (rank 0) after the last epoch.
    pub save: Option<&'a Path>,
    /// Bytes per gradient bucket (default: 4 KiB, several buckets for this model).
    pub bucket_bytes: Option<usize>,
    /// Overlap off (default: on, whatever the machine).
    pub no_overlap: bool,
}

/// One rank's data-parallel run over `epochs`; returns the parameters and whether this rank
/// built a checkpoint. Each rank initialises its replica from its own seed: the broadcast from
/// rank 0 must make them equal.
pub fn train_ddp(
    group: Arc<dyn ProcessGroup>,
    opt: Opt,
    mode: Mode,
    epochs: std::ops::Range<u64>,
    options: RunOptions<'_>,
) -> graphgrad_distributed::Result<(Vec<f32>, bool)> {
    let rank = group.rank();
    let data = data();
    let seed = if rank == 0 { INIT_SEED } else { rank_seed(INIT_SEED, rank, 1000) };
    let config =
        DdpConfig::default().bucket_bytes(options.bucket_bytes.unwrap_or(4096)).overlap(!options.no_overlap);
    let ddp = DistributedDataParallel::new(Mlp::new(seed, HIDDEN, options.dropout), group.clone(), config)?;
    let mut optimizer = optimizer(opt, ddp.named_parameters());
    if let Some(path) = options.resume {
        let checkpoint = load_checkpoint(group.as_ref(), path)?;
        checkpoint.restore_model(&ddp.named_parameters())?;
        checkpoint.restore_optimizer(optimizer.as_mut())?;
    }
    let sampler = DistributedSampler::for_group(SAMPLES, BATCH_PER_RANK, group.as_ref())?.seed(DATA_SEED);
    let mut program = compile(|io: &[Tensor]| traced_step(ddp.module(), io));
    let params: Vec<Var> = ddp.parameters();
    let velocity: Vec<Tensor> = params.iter().map(|p| Tensor::zeros(p.shape(), p.dtype()).unwrap()).collect();
    let mut update = compile(|grads: &[Tensor]| sgd_update(&params, &velocity, grads));
    assert!(mode != Mode::CompiledUpdate || opt == Opt::Sgd, "the compiled update is SGD's");
    let mut last_epoch = 0;
    for epoch in epochs {
        ddp.module().reseed(rank_seed(INIT_SEED, rank, epoch));
        for b in sampler.batches(epoch)? {
            let (x, t) = batch(&data, &b.indices, b.loss_weight());
            optimizer.zero_grad();
            match mode {
                Mode::Eager => loss(&ddp.forward(&x)?, &t)?.backward()?,
                Mode::Compiled => {
                    let out = program.call(&[x, t])?;
                    ddp.average_gradients(&out[1..])?;
                }
                Mode::CompiledUpdate => {
                    // gradient program → average over the ranks → update program
                    let out = program.call(&[x, t])?;
                    ddp.average_gradients(&out[1..])?;
                    let averaged: Vec<Tensor> = params.iter().map(|p| p.grad().expect("averaged")).collect();
                    update.call(&averaged)?;
                    continue;
                }
            }
            optimizer.step()?;
        }
        last_epoch = epoch;
    }
    let mut built = false;
    if let Some(path) = options.save {
        save_checkpoint(group.as_ref(), path, || {
            built = true;
            Checkpoint::new(&ddp.named_parameters())
                .with_optimizer(optimizer.as_ref())
                .with_progress(last_epoch, 0)
        })?;
    }
    Ok((flat(&ddp), built))
}

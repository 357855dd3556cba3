//! `DistributedDataParallel`: one model replica per rank, gradients averaged over the ranks
//! (PyTorch's `DistributedDataParallel`).
//!
//! At construction every rank checks that all ranks hold the same model (parameter and buffer
//! names, order, types and shapes, and the bucket size), then takes rank 0's parameters and
//! buffers, so every replica starts equal. Each rank then runs its own forward and backward on
//! its share of the batch; as soon as backward has made a parameter's gradient final, a
//! gradient hook ([`graphgrad_autodiff::hooks`]) copies it into its bucket, and each full
//! bucket, in an order that is the same on every rank, is averaged by a communication thread
//! while backward computes the rest. When `backward` returns, every parameter's `.grad()` holds
//! the mean over the ranks, and the optimiser steps as usual: every replica takes the same
//! step and stays equal.
//!
//! The mean over ranks of per-rank mean losses is the mean loss of the whole batch when the
//! ranks' shares are equal; [`DistributedSampler`](crate::DistributedSampler) says how to
//! weigh a rank's loss when they are not.
//!
//! Compiled steps: a program from [`graphgrad_autodiff::compile`] that returns the loss and the
//! gradients is replayed on each rank, then [`DistributedDataParallel::average_gradients`]
//! averages the returned gradients (bucket by bucket, launching each as soon as it is copied)
//! and the optimiser steps. The all-reduce then runs between the program and the update, not
//! inside the program: the compiler has no op that calls out to a process group.

mod buckets;
mod check;
mod flat;
mod reducer;

pub use buckets::{layout as bucket_layout, Bucket};
pub use reducer::Timeline;

use crate::group::{DataMut, ProcessGroup};
use crate::{Error, Result};
use graphgrad_autodiff::hooks::{register_grad_hook, GradEvent, GradHookHandle};
use graphgrad_autodiff::{grad_enabled, DType, Elem, Tensor, Var};
use graphgrad_nn::Module;
use reducer::{Phase, Reducer};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// Settings of a [`DistributedDataParallel`] model; every rank must use the same ones (checked).
#[derive(Clone, Debug, PartialEq)]
pub struct DdpConfig {
    /// The most bytes of gradients averaged in one all-reduce (default 1 MiB). Smaller buckets
    /// start sooner and overlap more of backward; larger ones pay the per-call latency less.
    pub bucket_bytes: usize,
    /// Whether full buckets are averaged while backward is still running, or all of them
    /// after it (the same result either way). Default [`Overlap::Auto`].
    pub overlap: Overlap,
    /// Broadcast rank 0's buffers (batch-norm statistics) before every forward that records a
    /// graph, as PyTorch does (default on).
    pub broadcast_buffers: bool,
}

impl Default for DdpConfig {
    fn default() -> Self {
        DdpConfig { bucket_bytes: 1 << 20, overlap: Overlap::Auto, broadcast_buffers: true }
    }
}

impl DdpConfig {
    /// Sets [`bucket_bytes`](Self::bucket_bytes).
    pub fn bucket_bytes(mut self, bytes: usize) -> DdpConfig {
        self.bucket_bytes = bytes;
        self
    }

    /// Sets [`overlap`](Self::overlap) on or off.
    pub fn overlap(mut self, overlap: bool) -> DdpConfig {
        self.overlap = if overlap { Overlap::On } else { Overlap::Off };
        self
    }

    /// Sets [`broadcast_buffers`](Self::broadcast_buffers).
    pub fn broadcast_buffers(mut self, on: bool) -> DdpConfig {
        self.broadcast_buffers = on;
        self
    }
}

/// When gradients are averaged (see [`DdpConfig::overlap`]).
///
/// Averaging a bucket takes CPU time (shared-memory copies, TCP, the reduction itself) from
/// the communication thread. Overlapped with backward it is hidden when a core is free for
/// it, and slows backward down when every core already computes: measured on a 2-core machine
/// with 2 ranks of 1 thread each (W10), overlap made a step 1.3× slower than averaging after
/// backward, while with cores to spare it saves the averaging time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// On when this machine has a core beyond the compute threads of the ranks it runs
    /// (`cores ≥ local ranks × (threads per rank + 1)`), off otherwise.
    Auto,
    /// Always: each bucket starts as soon as its gradients are final.
    On,
    /// Never: every bucket after backward.
    Off,
}

impl Overlap {
    /// Whether to overlap for `local_ranks` ranks on this machine, each computing with
    /// `threads` threads, on `cores` cores.
    pub fn decide(self, local_ranks: usize, threads: usize, cores: usize) -> bool {
        match self {
            Overlap::On => true,
            Overlap::Off => false,
            Overlap::Auto => cores >= local_ranks * (threads + 1),
        }
    }
}

/// A model replicated on every rank whose gradients are averaged over the ranks during
/// backward (see the module docs).
///
/// Use it where the model was used: `ddp.forward(x)` (a forward through the wrapper arms the
/// next backward to synchronise), `loss.backward()`, `optimizer.step()`. Parameter names are
/// the wrapped model's, so checkpoints are interchangeable with single-process training. It
/// is neither `Send` nor `Sync`: it stays on the thread that created it, where its gradient
/// hook is registered.
///
/// ```
/// use graphgrad_distributed::{DdpConfig, DistributedDataParallel, SingleProcess};
/// use graphgrad_nn::{LinearConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// use std::sync::Arc;
/// let linear = LinearConfig::new(3, 1).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let ddp = DistributedDataParallel::new(linear, Arc::new(SingleProcess), DdpConfig::default())?;
/// let loss = ddp.forward(&Tensor::ones(&[4, 3], DType::F32)?)?.square().mean_all();
/// loss.backward()?; // the gradients are averaged over the ranks (here: one) before it returns
/// assert!(ddp.named_parameters().iter().all(|(_, p)| p.grad().is_some()));
/// # Ok::<(), graphgrad_distributed::Error>(())
/// ```
pub struct DistributedDataParallel<M: Module> {
    module: M,
    group: Arc<dyn ProcessGroup>,
    config: DdpConfig,
    buffers: Vec<(String, Var)>,
    reducer: Rc<RefCell<Reducer>>,
    sync: Cell<bool>,
    _hook: GradHookHandle,
}

impl<M: Module> DistributedDataParallel<M> {
    /// Wraps `module`: checks on every rank that the ranks hold the same model (the same
    /// error on every rank otherwise), broadcasts rank 0's parameters and buffers, and starts
    /// the communication thread.
    pub fn new(module: M, group: Arc<dyn ProcessGroup>, config: DdpConfig) -> Result<Self> {
        let params = module.named_parameters();
        let buffers = module.named_buffers();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let overlap = config.overlap.decide(group.local_size(), rayon::current_num_threads(), cores);
        let reducer = Rc::new(RefCell::new(replicate(&group, params, &buffers, &config, overlap)?));
        let hooked = Rc::downgrade(&reducer);
        let hook = register_grad_hook(move |event| {
            let Some(reducer) = hooked.upgrade() else { return Ok(()) };
            let mut reducer = reducer.borrow_mut();
            match event {
                GradEvent::Ready(leaf) => reducer.grad_ready(leaf),
                GradEvent::Finished => reducer.backward_finished(),
            }
            .map_err(graphgrad_autodiff::Error::from)
        });
        Ok(DistributedDataParallel {
            module,
            group,
            config,
            buffers,
            reducer,
            sync: Cell::new(true),
            _hook: hook,
        })
    }

    /// The wrapped model (a forward through it does not synchronise gradients).
    pub fn module(&self) -> &M {
        &self.module
    }

    /// The process group.
    pub fn group(&self) -> &Arc<dyn ProcessGroup> {
        &self.group
    }

    /// The settings.
    pub fn config(&self) -> &DdpConfig {
        &self.config
    }

    /// Whether buckets are averaged while backward runs ([`DdpConfig::overlap`] decided).
    pub fn overlaps(&self) -> bool {
        self.reducer.borrow().overlap
    }

    /// The gradient buckets, in the order they are averaged.
    pub fn buckets(&self) -> Vec<Bucket> {
        let reducer = self.reducer.borrow();
        reducer.layout().to_vec()
    }

    /// Runs `f` with gradient synchronisation off (PyTorch's `no_sync`): backward passes of
    /// forwards run inside `f` accumulate into `.grad()` locally; the next synchronised
    /// backward averages the accumulated sums. For gradient accumulation over micro-batches.
    pub fn no_sync<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.sync, self.sync.replace(false));
        f()
    }

    /// Averages `grads` (one per parameter, in `named_parameters` order; `None` counts as
    /// zeros) over the ranks and stores the means as the parameters' `.grad()`: the step
    /// between a compiled program that returns gradients and the optimiser's update.
    pub fn average_gradients(&self, grads: &[Tensor]) -> Result<()> {
        let count = self.reducer.borrow().param_count();
        if grads.len() != count {
            return Err(Error::InvalidArgument {
                what: "DistributedDataParallel::average_gradients",
                reason: format!("{} gradients for {count} parameters", grads.len()),
            });
        }
        let grads: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
        self.reducer.borrow_mut().average(&grads)
    }

    /// Averages the gradients the parameters hold now (missing ones as zeros), for loops that
    /// fill `.grad()` themselves.
    pub fn average_accumulated_gradients(&self) -> Result<()> {
        let grads: Vec<Option<Tensor>> =
            self.module.named_parameters().iter().map(|(_, v)| v.grad()).collect();
        self.reducer.borrow_mut().average(&grads)
    }

    /// When each bucket of the last step was averaged, relative to the first final gradient.
    pub fn timeline(&self) -> Timeline {
        self.reducer.borrow().timeline().clone()
    }

    /// Broadcasts rank 0's buffers to every rank.
    pub fn broadcast_buffers(&self) -> Result<()> {
        broadcast_vars(self.group.as_ref(), &self.buffers)
    }

    fn before_forward(&self) -> Result<()> {
        if !grad_enabled() {
            return Ok(());
        }
        if graphgrad_autodiff::compile::tracing() && self.sync.get() {
            // the gradient hooks would average once, at the trace, and never in the program
            return Err(Error::InvalidArgument {
                what: "DistributedDataParallel",
                reason: "a synchronised forward inside a compiled step: the program would not average \
                         gradients; compile the wrapped module's step (`ddp.module()`) and call \
                         `average_gradients` between it and the update"
                    .into(),
            });
        }
        if self.config.broadcast_buffers && !self.buffers.is_empty() {
            self.broadcast_buffers()?;
        }
        self.reducer.borrow_mut().phase = if self.sync.get() { Phase::Armed } else { Phase::Local };
        Ok(())
    }
}

impl<M: Module> Module for DistributedDataParallel<M> {
    /// The wrapped model's forward; with gradients recorded, it arms the next backward to
    /// average the gradients (unless inside [`no_sync`](DistributedDataParallel::no_sync)).
    fn forward(&self, input: &Tensor) -> graphgrad_autodiff::Result<Tensor> {
        self.before_forward()?;
        self.module.forward(input)
    }

    fn visit(&self, visitor: &mut dyn graphgrad_nn::Visitor) {
        self.module.visit(visitor);
    }
}

/// Checks that every rank holds the same parameters and buffers (and settings), takes rank
/// 0's values on every rank, and starts the reducer that averages the parameters' gradients.
fn replicate(
    group: &Arc<dyn ProcessGroup>,
    params: Vec<(String, Var)>,
    buffers: &[(String, Var)],
    config: &DdpConfig,
    overlap: bool,
) -> Result<Reducer> {
    if config.bucket_bytes == 0 {
        return Err(Error::InvalidArgument {
            what: "DdpConfig",
            reason: "bucket_bytes must be positive".into(),
        });
    }
    let settings =
        format!("bucket_bytes {} broadcast_buffers {}", config.bucket_bytes, config.broadcast_buffers);
    check::check_same_model(group.as_ref(), &params, buffers, &settings)?;
    let mut everything = params.clone();
    everything.extend(buffers.iter().cloned());
    broadcast_vars(group.as_ref(), &everything)?;
    let sizes: Vec<(usize, DType)> = params.iter().map(|(_, v)| (v.numel(), v.dtype())).collect();
    let layout = buckets::layout(&sizes, config.bucket_bytes);
    Reducer::new(params, layout, group.clone(), overlap)
}

/// Averages gradients over the ranks of a group, in buckets on a communication thread, for
/// loops that hold a step's gradients in `.grad()` before the update: what
/// [`DistributedDataParallel`] does during backward, called explicitly (the training
/// library's data-parallel mode, and compiled steps, whose backward runs inside a program).
///
/// ```
/// use graphgrad_autodiff::{DType, Tensor, Var};
/// use graphgrad_distributed::{DdpConfig, GradientAverager, SingleProcess};
/// use std::sync::Arc;
/// let w = Var::new("w", &Tensor::ones(&[3], DType::F32)?);
/// let mut averager =
///     GradientAverager::new(Arc::new(SingleProcess), vec![("w".into(), w.clone())], &[], &DdpConfig::default())?;
/// w.set_grad(Some(&Tensor::full(&[3], 2.0, DType::F32)?))?;
/// averager.average()?; // the mean over one rank: unchanged
/// assert_eq!(w.grad().unwrap().to_vec::<f32>()?, vec![2.0; 3]);
/// # Ok::<(), graphgrad_distributed::Error>(())
/// ```
pub struct GradientAverager {
    reducer: Reducer,
    params: Vec<Var>,
    group: Arc<dyn ProcessGroup>,
    buffers: Vec<(String, Var)>,
}

impl GradientAverager {
    /// Checks on every rank that the ranks hold the same `params` and `buffers` (names,
    /// order, types and shapes; the same error on every rank otherwise), gives every rank
    /// rank 0's values, and starts the communication thread. Collective.
    pub fn new(
        group: Arc<dyn ProcessGroup>,
        params: Vec<(String, Var)>,
        buffers: &[(String, Var)],
        config: &DdpConfig,
    ) -> Result<GradientAverager> {
        let vars = params.iter().map(|(_, v)| v.clone()).collect();
        let reducer = replicate(&group, params, buffers, config, false)?;
        Ok(GradientAverager { reducer, params: vars, group, buffers: buffers.to_vec() })
    }

    /// Gives every rank rank 0's values of the buffers (batch-norm statistics, which each
    /// rank updates from its own samples). Collective.
    pub fn broadcast_buffers(&self) -> Result<()> {
        broadcast_vars(self.group.as_ref(), &self.buffers)
    }

    /// Replaces each parameter's `.grad()` by its mean over the ranks (a missing gradient
    /// counts as zeros). Collective: every rank calls it at the same step.
    pub fn average(&mut self) -> Result<()> {
        let grads: Vec<Option<Tensor>> = self.params.iter().map(|v| v.grad()).collect();
        self.reducer.average(&grads)
    }
}

/// Replaces every var's value with rank 0's: one broadcast per element type.
fn broadcast_vars(group: &dyn ProcessGroup, vars: &[(String, Var)]) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    fn typed<T: Communicated>(group: &dyn ProcessGroup, vars: &[&Var]) -> Result<()> {
        let mut flat: Vec<T> = Vec::with_capacity(vars.iter().map(|v| v.numel()).sum());
        for v in vars {
            flat.extend_from_slice(T::slice(&v.read()).expect("internal invariant: vars grouped by dtype"));
        }
        group.broadcast(T::data_mut(&mut flat), 0)?;
        let mut at = 0;
        for v in vars {
            let n = v.numel();
            T::slice_mut(&mut v.write())
                .expect("internal invariant: vars grouped by dtype")
                .copy_from_slice(&flat[at..at + n]);
            at += n;
        }
        Ok(())
    }
    let of = |dtype| vars.iter().map(|(_, v)| v).filter(|v| v.dtype() == dtype).collect::<Vec<_>>();
    typed::<f32>(group, &of(DType::F32))?;
    typed::<f64>(group, &of(DType::F64))
}

/// A tensor element type that collectives can carry.
trait Communicated: Elem {
    fn data_mut(v: &mut [Self]) -> DataMut<'_>;
}

impl Communicated for f32 {
    fn data_mut(v: &mut [f32]) -> DataMut<'_> {
        DataMut::F32(v)
    }
}

impl Communicated for f64 {
    fn data_mut(v: &mut [f64]) -> DataMut<'_> {
        DataMut::F64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::Overlap;

    #[test]
    fn overlap_is_automatic_only_with_a_spare_core() {
        // 2 ranks × 1 thread on 2 cores: every core computes, no overlap
        assert!(!Overlap::Auto.decide(2, 1, 2));
        assert!(Overlap::Auto.decide(2, 1, 4));
        assert!(Overlap::Auto.decide(1, 7, 8));
        assert!(!Overlap::Auto.decide(1, 8, 8));
        assert!(Overlap::On.decide(2, 1, 2) && !Overlap::Off.decide(1, 1, 64));
    }
}

//! Data-parallel training for graphgrad: process groups, `DistributedDataParallel`, a
//! distributed sampler and rank-0 checkpoints.
//!
//! - [`ProcessGroup`]: rank, size, all-reduce, broadcast, all-gather, barrier, abort.
//!   [`SingleProcess`] always; [`ThreadGroup`] (ranks as threads, for tests); and, with the
//!   `mpi` feature, `MpiGroup`: the ranks of an `mpirun` job over the system's MPI library
//!   (OpenMPI or MPICH through rsmpi), on one machine or many.
//! - [`DistributedDataParallel`]: rank 0's parameters broadcast at construction after a check
//!   that every rank has the same model; gradients averaged in buckets, in the same order on
//!   every rank, by a communication thread while backward runs; `no_sync` for gradient
//!   accumulation; [`average_gradients`](DistributedDataParallel::average_gradients) for
//!   compiled steps.
//! - [`DistributedSampler`]: every rank a disjoint shard of each epoch's seeded shuffle, every
//!   sample once per epoch, the same number of steps on every rank; [`rank_seed`] for per-rank
//!   dropout streams.
//! - [`save_checkpoint`] / [`load_checkpoint`]: rank 0 writes, every rank resumes from rank 0's
//!   file.
//! - [`exit_code`]: a rank's error ends the whole job, naming the rank, instead of leaving the
//!   others waiting.
//!
//! A data-parallel training loop (run with `mpirun --bind-to none -np 2 PROGRAM`):
//!
//! ```
//! use graphgrad_distributed::{DdpConfig, DistributedDataParallel, DistributedSampler, ProcessGroup, SingleProcess};
//! use graphgrad_nn::{LinearConfig, Module};
//! use graphgrad_optim::{Optimizer, Sgd, SgdConfig};
//! use graphgrad_autodiff::Tensor;
//! use rand::SeedableRng;
//! use std::sync::Arc;
//! // with the `mpi` feature: let group = graphgrad_distributed::MpiGroup::init(Default::default())?;
//! let group: Arc<dyn ProcessGroup> = Arc::new(SingleProcess);
//! let (x, y): (Vec<f32>, Vec<f32>) = (0..64).map(|i| (i as f32 / 64.0, 2.0 * i as f32 / 64.0)).unzip();
//! let model = LinearConfig::new(1, 1).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
//! let ddp = DistributedDataParallel::new(model, group.clone(), DdpConfig::default())?;
//! let mut opt = Sgd::new(ddp.named_parameters(), SgdConfig::new(0.5))?;
//! let sampler = DistributedSampler::for_group(x.len(), 16, group.as_ref())?.seed(1);
//! for epoch in 0..50 {
//!     for batch in sampler.batches(epoch)? {
//!         let pick = |v: &[f32]| batch.indices.iter().map(|&i| v[i]).collect::<Vec<f32>>();
//!         let xb = Tensor::from_vec(pick(&x), &[batch.indices.len(), 1])?;
//!         let yb = Tensor::from_vec(pick(&y), &[batch.indices.len(), 1])?;
//!         let loss = ddp.forward(&xb)?.sub(&yb)?.square().mean_all().mul_scalar(batch.loss_weight());
//!         opt.zero_grad();
//!         loss.backward()?; // gradients averaged over the ranks
//!         opt.step()?;
//!     }
//! }
//! let w = ddp.named_parameters().iter().find(|(n, _)| n == "weight").unwrap().1.to_vec::<f32>()?;
//! assert!((w[0] - 2.0).abs() < 0.05, "{w:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod ddp;
mod error;
pub mod group;
mod sampler;

pub use checkpoint::{load_checkpoint, save_checkpoint};
pub use ddp::{
    bucket_layout, Bucket, DdpConfig, DistributedDataParallel, GradientAverager, Overlap, Timeline,
};
pub use error::{Error, Result};
pub use group::{Data, DataMut, ProcessGroup, ReduceOp, SingleProcess, ThreadGroup};
#[cfg(feature = "mpi")]
pub use group::{MpiGroup, MpiOptions};
pub use sampler::{rank_seed, DistributedSampler, RankBatch};

use std::process::ExitCode;

/// The process's exit for a rank's outcome: success; or the error printed as
/// `PROGRAM: rank R of N: ERROR` and the whole job aborted (code 1), so no rank is left
/// waiting for one that has stopped (alone, `PROGRAM: ERROR` and code 1).
pub fn exit_code<E: std::fmt::Display>(
    group: &dyn ProcessGroup,
    program: &str,
    result: Result<(), E>,
) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if group.size() == 1 {
                eprintln!("{program}: {e}");
                return ExitCode::FAILURE;
            }
            eprintln!("{program}: rank {} of {}: {e}", group.rank(), group.size());
            group.abort(1)
        }
    }
}

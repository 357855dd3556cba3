//! graphgrad: define models imperatively, get exact gradients by reverse-mode autodiff, check
//! them numerically, and compile a training step into a fused, memory-planned program.
//!
//! This facade re-exports the workspace crates:
//! [`ops`] (kernels), [`autodiff`] (tensors and gradients), [`nn`] (layers, losses, data),
//! [`optim`] (optimisers and training control), [`train`] (the training loop as a library:
//! `Trainer`, progress, logs, plots, checkpoint strategies), [`distributed`] (data-parallel
//! training; over MPI with the `mpi` feature).

pub use graphgrad_autodiff as autodiff;
pub use graphgrad_distributed as distributed;
pub use graphgrad_nn as nn;
pub use graphgrad_ops as ops;
pub use graphgrad_optim as optim;
pub use graphgrad_train as train;

/// The README's code blocks, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

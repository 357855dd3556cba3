//! [`autodiff`]: crate::autodiff
//! [`distributed`]: crate::distributed
//! [`nn`]: crate::nn
//! [`ops`]: crate::ops
//! [`optim`]: crate::optim
//! [`train`]: crate::train
//! [`prelude`]: crate::prelude
#![doc = include_str!("../README.md")]
//!
//! # The crates
//!
//! This facade re-exports the workspace crates, each documented on its own page:
//! [`ops`] (kernels on plain buffers), [`autodiff`] (tensors, gradients, function transforms,
//! the compiler), [`nn`] (modules, layers, losses, data, metrics), [`optim`] (optimisers,
//! schedules, clipping, stopping criteria, checkpoints), [`train`] (the training loop as a
//! library: `Trainer`, progress, logs, plots, checkpoint strategies) and [`distributed`]
//! (data-parallel training; over MPI with the `mpi` feature); [`prelude`] imports what a
//! training program needs, and [`rand`], [`rand_chacha`] and [`ChaCha8Rng`] are the versions
//! graphgrad itself uses.

#![warn(missing_docs)]

#[doc(inline)]
pub use graphgrad_autodiff as autodiff;
#[doc(inline)]
pub use graphgrad_distributed as distributed;
#[doc(inline)]
pub use graphgrad_nn as nn;
#[doc(inline)]
pub use graphgrad_ops as ops;
#[doc(inline)]
pub use graphgrad_optim as optim;
#[doc(inline)]
pub use graphgrad_train as train;

pub mod prelude;

/// The `rand` that graphgrad uses: its traits ([`rand::SeedableRng`], [`rand::Rng`]) are the
/// ones graphgrad's RNG implements, whatever `rand` a program also depends on.
pub use rand;
/// The `rand_chacha` that graphgrad uses.
pub use rand_chacha;
/// The random-number generator every initialiser, shuffle and random tensor takes
/// (`&mut ChaCha8Rng`): seeded with `ChaCha8Rng::seed_from_u64`, and saved in checkpoints.
pub use rand_chacha::ChaCha8Rng;

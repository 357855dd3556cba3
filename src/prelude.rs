//! One import for a training program: `use graphgrad::prelude::*;`.
//!
//! It brings tensors and parameters ([`Tensor`], [`Var`], [`DType`], [`no_grad`], [`grad`]),
//! the [`Module`] trait and its derive, every layer and its `Config`, the losses and
//! [`Reduction`], data sets and batches, metrics, initialisers, the optimisers and their
//! configs, learning-rate schedules, clipping, early stopping and checkpoints, the
//! [`Trainer`] and its objectives and metrics, and the random-number generator every
//! initialiser and shuffle takes ([`ChaCha8Rng`], with [`SeedableRng`] for `seed_from_u64`
//! and [`Rng`] for drawing), from the versions of `rand` and `rand_chacha` that graphgrad
//! itself uses, so that a program needs no `rand` dependency of its own.
//!
//! [`Result`] and [`Error`] are the tensor API's (what ops, layers, losses, data sets and
//! [`Module::forward`] return), so `impl Module` and helper functions written with
//! `Result<Tensor>` match the library's signatures. Its default error type can be replaced:
//! a `main` that also calls the optimisers and the `Trainer`, whose errors are their own
//! crates', returns `Result<(), Box<dyn std::error::Error>>`, into which every graphgrad
//! error converts with `?`.
//!
//! ```
//! use graphgrad::prelude::*;
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//! let model = Sequential::new().append(LinearConfig::new(3, 1).init(&mut rng)?);
//! let mut optimizer = Sgd::new(model.named_parameters(), SgdConfig::new(0.1))?;
//! let x = Tensor::randn(&[8, 3], 0.0, 1.0, DType::F32, &mut rng)?;
//! let loss = model.forward(&x)?.square().mean_all(); // drive the outputs to 0
//! optimizer.zero_grad();
//! loss.backward()?;
//! optimizer.step()?;
//! assert!(model.forward(&x)?.square().mean_all().item()? < loss.item()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::autodiff::{
    compile, grad, no_grad, CompileOptions, Compiled, ConvOptions, DType, Error, Generator, Result, Tensor,
    Var,
};
pub use crate::nn::data::{load_digits, Batch, Dataset, SplitFractions};
pub use crate::nn::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss, cross_entropy,
    hinge_embedding_loss, huber_loss, kl_div, l1_loss, margin_ranking_loss, mse_loss, multi_margin_loss,
    nll_loss, one_hot, smooth_l1_loss, triplet_margin_loss,
};
pub use crate::nn::{functional_call, init, loss, metrics, Module, Reduction};
pub use crate::nn::{
    AdditiveAttention, AdditiveAttentionConfig, Autoencoder, AutoencoderConfig, AvgPool2d, BatchNorm,
    BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvAutoencoder,
    ConvAutoencoderConfig, ConvConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout, DropoutConfig,
    Embedding, EmbeddingConfig, Flatten, GeluApproximate, Gru, GruConfig, Hardtanh, LayerNorm,
    LayerNormConfig, LeakyReLU, Linear, LinearConfig, LogSigmoid, LogSoftmax, Lstm, LstmConfig, MaxPool2d,
    MemN2N, MemN2NConfig, MultiheadAttention, MultiheadAttentionConfig, ReLU, Rnn, RnnConfig, Sequential,
    SiLU, Sigmoid, Softmax, Softplus, Tanh, TransformerEncoder, TransformerEncoderLayer,
    TransformerEncoderLayerConfig, Vae, VaeConfig, ELU, GELU,
};
pub use crate::optim::{
    clip_grad_norm, clip_grad_value, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig,
    Checkpoint, CosineAnnealingLr, EarlyStopping, ExponentialLr, LinearWarmup, LrScheduler, MetricMode,
    MultiStepLr, Optimizer, ReduceLrOnPlateau, RmsProp, RmsPropConfig, Sgd, SgdConfig, StepLr,
    StoppingCriteria,
};
pub use crate::train::{
    Callback, CheckpointPolicy, CrossEntropy, Execution, MeanSquaredError, Metric, Objective, Trainer,
};
pub use crate::ChaCha8Rng;
pub use rand::{Rng, SeedableRng};

//! Modules, layers, losses, initialisers, metrics and data sets.

#![warn(missing_docs)]

// `#[derive(Module)]` names this crate `::graphgrad_nn`, also from inside it.
extern crate self as graphgrad_nn;

pub mod data;
mod functional;
pub mod init;
pub mod layers;
pub mod loss;
pub mod metrics;
mod module;

pub use functional::functional_call;
/// `#[derive(Module)]`: writes [`Module::visit`] from a struct's fields (see
/// `graphgrad-nn-derive` for the field attributes) and `forward` as a call to the struct's own
/// inherent `forward`.
pub use graphgrad_nn_derive::Module;
pub use layers::{
    AdditiveAttention, AdditiveAttentionConfig, AttentionMasks, Autoencoder, AutoencoderConfig,
    ConvAutoencoder, ConvAutoencoderConfig, Gru, GruConfig, Lstm, LstmConfig, MemN2N, MemN2NConfig,
    MultiheadAttention, MultiheadAttentionConfig, Rnn, RnnConfig, TransformerEncoder,
    TransformerEncoderLayer, TransformerEncoderLayerConfig, Vae, VaeConfig,
};
pub use layers::{
    AvgPool2d, BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d,
    Conv2dConfig, ConvConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout, DropoutConfig, Embedding,
    EmbeddingConfig, Flatten, GeluApproximate, Hardtanh, LayerNorm, LayerNormConfig, LeakyReLU, Linear,
    LinearConfig, LogSigmoid, LogSoftmax, MaxPool2d, ReLU, Sequential, SiLU, Sigmoid, Softmax, Softplus,
    Tanh, ELU, GELU,
};
pub use loss::Reduction;
pub use module::{prefixed, BufferField, Field, Module, Visitor};

/// What the code `#[derive(Module)]` writes refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use graphgrad_autodiff::{Result, Tensor};
}

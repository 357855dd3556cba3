//! Modules, layers, losses, initialisers, metrics and data sets.

#![warn(missing_docs)]

pub mod data;
pub mod init;
pub mod layers;
pub mod loss;
pub mod metrics;
mod module;

pub use layers::{
    AdditiveAttention, AdditiveAttentionConfig, AttentionMasks, Autoencoder, AutoencoderConfig,
    ConvAutoencoder, ConvAutoencoderConfig, Gru, GruConfig, Lstm, LstmConfig, MemN2N, MemN2NConfig,
    MultiheadAttention, MultiheadAttentionConfig, Rnn, RnnConfig, TransformerEncoder,
    TransformerEncoderLayer, TransformerEncoderLayerConfig, Vae, VaeConfig,
};
pub use layers::{
    AvgPool2d, BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d,
    Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout, DropoutConfig, Embedding, EmbeddingConfig,
    Flatten, GeluApproximate, Hardtanh, LayerNorm, LayerNormConfig, LeakyReLU, Linear, LinearConfig,
    LogSigmoid, LogSoftmax, MaxPool2d, ReLU, Sequential, SiLU, Sigmoid, Softmax, Softplus, Tanh, ELU, GELU,
};
pub use loss::Reduction;
pub use module::{prefixed, Module};

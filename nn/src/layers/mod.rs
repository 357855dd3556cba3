//! Layers: one file per layer (a `Config` with PyTorch defaults and `init`, and the layer,
//! which implements [`Module`](crate::Module)). Parameter layouts and names follow PyTorch so
//! state dicts move to and from it. Layers without parameters or randomness (activations,
//! pooling, `Flatten`) are plain values built with `new`/`default`.
//!
//! Dimension names used in the `# Shapes` sections: `batch`, `channels`, `height`, `width`,
//! `length`, `in_features`, `out_features`; `*` is any number of leading axes.

mod activation;
mod batch_norm;
mod conv;
mod conv1d;
mod conv2d;
mod conv_transpose2d;
mod dropout;
mod embedding;
mod flatten;
mod layer_norm;
mod linear;
mod pool;
mod sequential;

// Sequence, attention, memory and autoencoder layers (nn-seq).
mod attention;
mod autoencoder;
mod memn2n;
mod rnn;
mod transformer;

pub use activation::{
    GeluApproximate, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Softplus,
    Tanh, ELU, GELU,
};
pub use batch_norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use conv::{Conv1dConfig, Conv2dConfig, ConvConfig, ConvTranspose2dConfig};
pub use conv1d::Conv1d;
pub use conv2d::Conv2d;
pub use conv_transpose2d::ConvTranspose2d;
pub use dropout::{Dropout, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::Flatten;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::{Linear, LinearConfig};
pub use pool::{AvgPool2d, MaxPool2d};
pub use sequential::Sequential;

pub use attention::{
    causal_mask, padding_mask, AdditiveAttention, AdditiveAttentionConfig, AttentionMasks, AttentionOutput,
    MultiheadAttention, MultiheadAttentionConfig,
};
pub use autoencoder::{
    kl_divergence, kl_divergence_per_sample, reparameterize, Autoencoder, AutoencoderConfig, ConvAutoencoder,
    ConvAutoencoderConfig, OutputActivation, Vae, VaeConfig, VaeOutput,
};
pub use memn2n::{position_encoding, Hops, MemN2N, MemN2NConfig, MemN2NOutput, WeightTying};
pub use rnn::{
    Gru, GruConfig, Lstm, LstmConfig, LstmState, RecurrentWeights, Rnn, RnnConfig, RnnNonlinearity,
};
pub use transformer::{
    sinusoidal_positional_encoding, FeedForwardActivation, TransformerEncoder, TransformerEncoderLayer,
    TransformerEncoderLayerConfig,
};

#[cfg(test)]
pub(crate) mod testing;

//! [`TransformerEncoderLayer`] (PyTorch's `nn.TransformerEncoderLayer(batch_first=True)`):
//! self-attention and a two-layer feed-forward block, each with a residual connection and
//! layer normalisation, either after the residual sum (post-LN, the original Transformer and
//! PyTorch's default) or before each block (pre-LN, `norm_first`). Also
//! [`TransformerEncoder`] (a stack with an optional final norm) and
//! [`sinusoidal_positional_encoding`].
//!
//! Parameter names match PyTorch: `self_attn.in_proj_weight`, `linear1.weight`,
//! `norm1.weight`, ... (and `layers.{i}.` prefixes inside the encoder stack).

use super::attention::{AttentionMasks, MultiheadAttention, MultiheadAttentionConfig};
use super::dropout::{Dropout, DropoutConfig};
use super::layer_norm::{LayerNorm, LayerNormConfig};
use crate::{Field, Linear, LinearConfig, Module, Visitor};
use graphgrad_autodiff::{bail, DType, Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// The feed-forward block's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedForwardActivation {
    /// max(x, 0) (PyTorch's default).
    Relu,
    /// The exact (erf) GELU.
    Gelu,
}

/// Configuration of a [`TransformerEncoderLayer`].
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// Model width.
    pub d_model: usize,
    /// Attention heads; must divide `d_model`.
    pub nhead: usize,
    /// Hidden width of the feed-forward block (default 2048).
    pub dim_feedforward: usize,
    /// Dropout after attention, inside and after the feed-forward block, and on the attention
    /// weights (default 0.1; active only in training mode).
    pub dropout: f64,
    /// Feed-forward activation (default ReLU).
    pub activation: FeedForwardActivation,
    /// Added to the variance in the layer norms (default 1e-5).
    pub layer_norm_eps: f64,
    /// Pre-LN when true, post-LN (default) when false.
    pub norm_first: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl TransformerEncoderLayerConfig {
    /// PyTorch's defaults: feed-forward 2048, dropout 0.1, ReLU, post-LN, eps 1e-5.
    pub fn new(d_model: usize, nhead: usize) -> Self {
        TransformerEncoderLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: FeedForwardActivation::Relu,
            layer_norm_eps: 1e-5,
            norm_first: false,
            dtype: DType::F32,
        }
    }

    /// Sets the feed-forward width.
    pub fn with_dim_feedforward(mut self, dim: usize) -> Self {
        self.dim_feedforward = dim;
        self
    }

    /// Sets the dropout probability.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets the feed-forward activation.
    pub fn with_activation(mut self, activation: FeedForwardActivation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the layer-norm epsilon.
    pub fn with_layer_norm_eps(mut self, eps: f64) -> Self {
        self.layer_norm_eps = eps;
        self
    }

    /// Chooses pre-LN (`true`) or post-LN (`false`).
    pub fn with_norm_first(mut self, norm_first: bool) -> Self {
        self.norm_first = norm_first;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the layer (each part initialised as in PyTorch), in training mode.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<TransformerEncoderLayer> {
        if self.dim_feedforward == 0 {
            bail!("TransformerEncoderLayer", "dim_feedforward must be positive");
        }
        let (d, ff) = (self.d_model, self.dim_feedforward);
        let self_attn = MultiheadAttentionConfig::new(d, self.nhead)
            .with_dropout(self.dropout)
            .with_dtype(self.dtype)
            .init(rng)?;
        let norm = || LayerNormConfig::new(&[d]).with_eps(self.layer_norm_eps).with_dtype(self.dtype);
        let dropout = DropoutConfig::new(self.dropout);
        Ok(TransformerEncoderLayer {
            self_attn,
            linear1: LinearConfig::new(d, ff).with_dtype(self.dtype).init(rng)?,
            linear2: LinearConfig::new(ff, d).with_dtype(self.dtype).init(rng)?,
            norm1: norm().init(rng)?,
            norm2: norm().init(rng)?,
            dropout: dropout.init(rng)?,
            dropout1: dropout.init(rng)?,
            dropout2: dropout.init(rng)?,
            activation: self.activation,
            norm_first: self.norm_first,
        })
    }
}

/// One Transformer encoder block.
///
/// post-LN: `x = norm1(x + sa(x)); x = norm2(x + ff(x))`;
/// pre-LN: `x = x + sa(norm1(x)); x = x + ff(norm2(x))`,
/// where `ff(x) = linear2(dropout(act(linear1(x))))` and each block's output passes a dropout.
///
/// # Shapes
/// - input: `[batch, seq, d_model]` (batch first)
/// - output: `[batch, seq, d_model]`
///
/// ```
/// use graphgrad_nn::layers::{AttentionMasks, TransformerEncoderLayerConfig};
/// use graphgrad_nn::Module;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let layer = TransformerEncoderLayerConfig::new(8, 2)
///     .with_dim_feedforward(16)
///     .with_norm_first(true)
///     .init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// layer.set_training(false); // no dropout
/// let x = Tensor::ones(&[2, 5, 8], DType::F32)?;
/// let y = layer.forward_with_masks(&x, &AttentionMasks::causal())?;
/// assert_eq!(y.shape(), &[2, 5, 8]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct TransformerEncoderLayer {
    /// Self-attention.
    pub self_attn: MultiheadAttention,
    /// `[dim_feedforward, d_model]`.
    pub linear1: Linear,
    /// `[d_model, dim_feedforward]`.
    pub linear2: Linear,
    /// Norm of the attention block.
    pub norm1: LayerNorm,
    /// Norm of the feed-forward block.
    pub norm2: LayerNorm,
    dropout: Dropout,
    dropout1: Dropout,
    dropout2: Dropout,
    activation: FeedForwardActivation,
    norm_first: bool,
}

impl TransformerEncoderLayer {
    /// Whether the layer normalises before each block (pre-LN).
    pub fn norm_first(&self) -> bool {
        self.norm_first
    }

    /// Runs the block with attention masks (key padding `[batch, seq]`, causal, ...).
    pub fn forward_with_masks(&self, x: &Tensor, masks: &AttentionMasks) -> Result<Tensor> {
        if self.norm_first {
            let x = x.add(&self.attention_block(&self.norm1.forward(x)?, masks)?)?;
            x.add(&self.feed_forward_block(&self.norm2.forward(&x)?)?)
        } else {
            let x = self.norm1.forward(&x.add(&self.attention_block(x, masks)?)?)?;
            self.norm2.forward(&x.add(&self.feed_forward_block(&x)?)?)
        }
    }

    fn attention_block(&self, x: &Tensor, masks: &AttentionMasks) -> Result<Tensor> {
        self.dropout1.forward(&self.self_attn.forward_attention(x, x, x, masks)?.output)
    }

    fn feed_forward_block(&self, x: &Tensor) -> Result<Tensor> {
        // h: [batch, seq, dim_feedforward]
        let h = self.linear1.forward(x)?;
        let h = match self.activation {
            FeedForwardActivation::Relu => h.relu(),
            FeedForwardActivation::Gelu => h.gelu(),
        };
        self.dropout2.forward(&self.linear2.forward(&self.dropout.forward(&h)?)?)
    }
}

impl Module for TransformerEncoderLayer {
    /// The block without masks.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_with_masks(input, &AttentionMasks::none())
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.child("self_attn", &self.self_attn);
        v.child("linear1", &self.linear1);
        v.child("linear2", &self.linear2);
        v.child("norm1", &self.norm1);
        v.child("norm2", &self.norm2);
        v.child("dropout", &self.dropout);
        v.child("dropout1", &self.dropout1);
        v.child("dropout2", &self.dropout2);
    }
}

/// A stack of identical-shaped encoder layers (independently initialised), with an optional
/// final layer norm (PyTorch's `nn.TransformerEncoder`; use one with pre-LN layers).
///
/// # Shapes
/// - input and output: `[batch, seq, d_model]`
#[derive(Debug)]
pub struct TransformerEncoder {
    /// The layers, applied in order (`layers.{i}.…` in parameter names).
    pub layers: Vec<TransformerEncoderLayer>,
    /// Final norm (`norm.…`), when present.
    pub norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `num_layers` layers of `config`, plus a final norm when `final_norm`.
    pub fn new(
        config: &TransformerEncoderLayerConfig,
        num_layers: usize,
        final_norm: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<TransformerEncoder> {
        if num_layers == 0 {
            bail!("TransformerEncoder", "num_layers must be positive");
        }
        let layers = (0..num_layers).map(|_| config.init(rng)).collect::<Result<Vec<_>>>()?;
        let norm = if final_norm {
            let ln = LayerNormConfig::new(&[config.d_model])
                .with_eps(config.layer_norm_eps)
                .with_dtype(config.dtype);
            Some(ln.init(rng)?)
        } else {
            None
        };
        Ok(TransformerEncoder { layers, norm })
    }

    /// Runs every layer with the same masks, then the final norm.
    pub fn forward_with_masks(&self, x: &Tensor, masks: &AttentionMasks) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward_with_masks(&x, masks)?;
        }
        match &self.norm {
            Some(norm) => norm.forward(&x),
            None => Ok(x),
        }
    }
}

impl Module for TransformerEncoder {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_with_masks(input, &AttentionMasks::none())
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.layers.visit_field("layers", v);
        self.norm.visit_field("norm", v);
    }
}

/// The sinusoidal position table of "Attention Is All You Need", `[len, d_model]`:
/// PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d)). Add it to token
/// embeddings `[batch, len, d_model]` (it broadcasts).
pub fn sinusoidal_positional_encoding(len: usize, d_model: usize, dtype: DType) -> Tensor {
    let mut values = vec![0.0f64; len * d_model];
    for p in 0..len {
        for j in 0..d_model {
            let freq = 1.0 / 10000f64.powf((j - j % 2) as f64 / d_model as f64);
            let angle = p as f64 * freq;
            values[p * d_model + j] = if j % 2 == 0 { angle.sin() } else { angle.cos() };
        }
    }
    Tensor::from_vec(values, &[len, d_model]).expect("len·d_model values").to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_module_gradients;
    use graphgrad_ops::testing::{assert_close, random_vec};
    use rand::SeedableRng;

    fn rand_t(shape: &[usize], seed: u64) -> Tensor {
        Tensor::from_vec(random_vec::<f64>(shape.iter().product(), seed), shape).unwrap()
    }

    fn layer(norm_first: bool, activation: FeedForwardActivation, seed: u64) -> TransformerEncoderLayer {
        let config = TransformerEncoderLayerConfig::new(4, 2)
            .with_dim_feedforward(6)
            .with_dropout(0.0)
            .with_activation(activation)
            .with_norm_first(norm_first)
            .with_dtype(DType::F64);
        let layer = config.init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        // non-trivial norm parameters and attention biases
        for (name, p) in layer.named_parameters() {
            if name.starts_with("norm") || name.contains("bias") {
                p.set(&rand_t(p.shape(), seed + name.len() as u64)).unwrap();
            }
        }
        layer
    }

    /// Row-wise layer norm over the last axis of width `d`, then ·w + b.
    fn ln_ref(x: &[f64], w: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
        let d = w.len();
        x.chunks(d)
            .flat_map(|r| {
                let mean = r.iter().sum::<f64>() / d as f64;
                let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
                r.iter()
                    .enumerate()
                    .map(move |(j, v)| (v - mean) / (var + eps).sqrt() * w[j] + b[j])
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn linear_ref(x: &[f64], l: &Linear) -> Vec<f64> {
        let (w, b) = (l.weight.to_f64_vec(), l.bias.as_ref().unwrap().to_f64_vec());
        let (o, i) = (l.out_features(), l.in_features());
        x.chunks(i)
            .flat_map(|r| {
                (0..o).map(|k| b[k] + (0..i).map(|c| w[k * i + c] * r[c]).sum::<f64>()).collect::<Vec<_>>()
            })
            .collect()
    }

    /// x·Φ(x): std has no erf, so the scalar goes through the tensor op (tested in ops).
    fn gelu(x: f64) -> f64 {
        Tensor::from_vec(vec![x], &[1]).unwrap().gelu().to_f64_vec()[0]
    }

    /// The block with plain loops, taking the (separately tested) attention as given.
    fn reference(l: &TransformerEncoderLayer, x: &Tensor, masks: &AttentionMasks) -> Vec<f64> {
        let p = |v: &Option<graphgrad_autodiff::Var>| v.as_ref().unwrap().to_f64_vec();
        let ln1 = |v: &[f64]| ln_ref(v, &p(&l.norm1.weight), &p(&l.norm1.bias), 1e-5);
        let ln2 = |v: &[f64]| ln_ref(v, &p(&l.norm2.weight), &p(&l.norm2.bias), 1e-5);
        let attn = |v: &[f64]| {
            let t = Tensor::from_vec(v.to_vec(), x.shape()).unwrap();
            l.self_attn.forward_attention(&t, &t, &t, masks).unwrap().output.to_f64_vec()
        };
        let ff = |v: &[f64]| {
            let h: Vec<f64> = linear_ref(v, &l.linear1)
                .into_iter()
                .map(|h| match l.activation {
                    FeedForwardActivation::Relu => h.max(0.0),
                    FeedForwardActivation::Gelu => gelu(h),
                })
                .collect();
            linear_ref(&h, &l.linear2)
        };
        let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect::<Vec<f64>>();
        let x = x.to_f64_vec();
        if l.norm_first {
            let x = add(&x, &attn(&ln1(&x)));
            add(&x, &ff(&ln2(&x)))
        } else {
            let x = ln1(&add(&x, &attn(&x)));
            ln2(&add(&x, &ff(&x)))
        }
    }

    #[test]
    fn pre_and_post_ln_match_the_reference() {
        let x = rand_t(&[2, 3, 4], 1);
        for (norm_first, act) in [
            (false, FeedForwardActivation::Relu),
            (true, FeedForwardActivation::Relu),
            (false, FeedForwardActivation::Gelu),
            (true, FeedForwardActivation::Gelu),
        ] {
            let l = layer(norm_first, act, 3);
            for masks in [AttentionMasks::none(), AttentionMasks::causal()] {
                let y = l.forward_with_masks(&x, &masks).unwrap();
                assert_close(&y.to_f64_vec(), &reference(&l, &x, &masks), 1e-12, 1e-10);
            }
        }
        // the two orders really differ
        let post = layer(false, FeedForwardActivation::Relu, 3).forward(&x).unwrap().to_f64_vec();
        let pre = layer(true, FeedForwardActivation::Relu, 3).forward(&x).unwrap().to_f64_vec();
        assert!(post.iter().zip(&pre).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn causal_layer_output_ignores_the_future() {
        // changing the last position must not change earlier outputs under a causal mask
        let l = layer(true, FeedForwardActivation::Gelu, 5);
        let x = rand_t(&[1, 4, 4], 2);
        let mut v = x.to_f64_vec();
        v[12..].iter_mut().for_each(|e| *e += 1.0);
        let x2 = Tensor::from_vec(v, &[1, 4, 4]).unwrap();
        let (a, b) = (
            l.forward_with_masks(&x, &AttentionMasks::causal()).unwrap().to_f64_vec(),
            l.forward_with_masks(&x2, &AttentionMasks::causal()).unwrap().to_f64_vec(),
        );
        assert_close(&a[..12], &b[..12], 1e-14, 1e-12);
        assert!((a[12] - b[12]).abs() > 1e-6);
    }

    #[test]
    fn names_dropout_modes_and_stack() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let l = TransformerEncoderLayerConfig::new(4, 2).with_dim_feedforward(8).init(&mut rng).unwrap();
        let names: Vec<String> = l.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "self_attn.in_proj_weight",
                "self_attn.in_proj_bias",
                "self_attn.out_proj.weight",
                "self_attn.out_proj.bias",
                "linear1.weight",
                "linear1.bias",
                "linear2.weight",
                "linear2.bias",
                "norm1.weight",
                "norm1.bias",
                "norm2.weight",
                "norm2.bias",
            ]
        );
        // dropout 0.1 makes training non-deterministic across calls; eval mode is repeatable
        let x = Tensor::from_vec(random_vec::<f32>(2 * 3 * 4, 1), &[2, 3, 4]).unwrap();
        let (t1, t2) = (
            l.forward(&x).unwrap().to_vec::<f32>().unwrap(),
            l.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        );
        assert_ne!(t1, t2);
        l.set_training(false);
        assert_eq!(
            l.forward(&x).unwrap().to_vec::<f32>().unwrap(),
            l.forward(&x).unwrap().to_vec::<f32>().unwrap()
        );
        assert!(TransformerEncoderLayerConfig::new(4, 3).init(&mut rng).is_err());
        let config = TransformerEncoderLayerConfig::new(4, 2).with_dim_feedforward(8).with_norm_first(true);
        let stack = TransformerEncoder::new(&config, 2, true, &mut rng).unwrap();
        let names: Vec<String> = stack.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            (names[0].as_str(), names.last().unwrap().as_str()),
            ("layers.0.self_attn.in_proj_weight", "norm.bias")
        );
        assert_eq!(names.len(), 2 * 12 + 2);
        stack.set_training(false);
        assert_eq!(stack.forward(&x).unwrap().shape(), &[2, 3, 4]);
    }

    #[test]
    fn gradcheck_both_orders() {
        let x = rand_t(&[2, 3, 4], 7);
        check_module_gradients(&layer(false, FeedForwardActivation::Gelu, 8), &x);
        check_module_gradients(&layer(true, FeedForwardActivation::Relu, 9), &x);
    }

    #[test]
    fn positional_encoding_values() {
        // p = 1, d = 4: [sin 1, cos 1, sin(1/100), cos(1/100)]
        let pe = sinusoidal_positional_encoding(2, 4, DType::F64).to_f64_vec();
        assert_close(&pe[..4], &[0.0, 1.0, 0.0, 1.0], 1e-15, 0.0);
        assert_close(&pe[4..], &[1f64.sin(), 1f64.cos(), 0.01f64.sin(), 0.01f64.cos()], 1e-15, 1e-14);
    }
}

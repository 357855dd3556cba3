//! Attention: [`MultiheadAttention`] (scaled dot-product, as PyTorch's
//! `nn.MultiheadAttention(batch_first=True)`) with key-padding, boolean and causal masks, and
//! [`AdditiveAttention`] (Bahdanau et al. 2015).
//!
//! Masks are tensors of any float dtype where a **nonzero entry means "may not attend"**
//! (PyTorch's boolean-mask convention). Masked scores are set to −∞ before the softmax, so a
//! masked position gets a weight of exactly zero and no gradient. A query row whose keys are
//! all masked has no defined softmax and yields NaN, as in PyTorch.

use super::dropout::{Dropout, DropoutConfig};
use crate::{init, Linear, LinearConfig, Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Which key positions each query may not attend to.
#[derive(Clone, Debug, Default)]
pub struct AttentionMasks {
    /// `[batch, src]`, nonzero where the key is padding (ignored by every query).
    pub key_padding: Option<Tensor>,
    /// `[tgt, src]` or `[batch, heads, tgt, src]` (or anything broadcasting to it), nonzero
    /// where attention is not allowed.
    pub attn: Option<Tensor>,
    /// Query position `i` may attend only to keys `j ≤ i` (needs `tgt == src`).
    pub causal: bool,
}

impl AttentionMasks {
    /// No masking.
    pub fn none() -> AttentionMasks {
        AttentionMasks::default()
    }

    /// Only the causal mask.
    pub fn causal() -> AttentionMasks {
        AttentionMasks { causal: true, ..AttentionMasks::default() }
    }

    /// Adds a key-padding mask `[batch, src]` (nonzero = padding).
    pub fn with_key_padding(mut self, mask: Tensor) -> AttentionMasks {
        self.key_padding = Some(mask);
        self
    }

    /// Adds a general mask (nonzero = not allowed).
    pub fn with_attn(mut self, mask: Tensor) -> AttentionMasks {
        self.attn = Some(mask);
        self
    }

    /// Sets causal masking.
    pub fn with_causal(mut self, causal: bool) -> AttentionMasks {
        self.causal = causal;
        self
    }
}

/// A key-padding mask `[batch, max_len]` from sequence lengths: 1 at positions `≥ len`.
pub fn padding_mask(lengths: &[usize], max_len: usize, dtype: DType) -> Result<Tensor> {
    if let Some(&bad) = lengths.iter().find(|&&l| l > max_len) {
        bail!("padding_mask", "length {bad} exceeds max_len {max_len}");
    }
    let values: Vec<f64> =
        lengths.iter().flat_map(|&len| (0..max_len).map(move |j| if j >= len { 1.0 } else { 0.0 })).collect();
    Tensor::from_vec(values, &[lengths.len(), max_len]).map(|t| t.to_dtype(dtype))
}

/// `[len, len]` with 1 above the diagonal (position `i` may not see `j > i`).
pub fn causal_mask(len: usize, dtype: DType) -> Tensor {
    let values: Vec<f64> = (0..len * len).map(|k| if k % len > k / len { 1.0 } else { 0.0 }).collect();
    Tensor::from_vec(values, &[len, len]).expect("len² values").to_dtype(dtype)
}

/// Sets `scores` `[batch, heads, tgt, src]` (heads may be 1) to −∞ where any mask is set.
fn apply_masks(scores: Tensor, masks: &AttentionMasks, op: &'static str) -> Result<Tensor> {
    let (batch, tgt, src) = (scores.shape()[0], scores.shape()[2], scores.shape()[3]);
    let dtype = scores.dtype();
    let mut scores = scores;
    if let Some(kp) = &masks.key_padding {
        if kp.shape() != [batch, src] {
            return Err(Error::ShapeMismatch { op, lhs: scores.shape().into(), rhs: kp.shape().into() });
        }
        // [batch, 1, 1, src] broadcasts over heads and queries
        scores = scores.masked_fill(&kp.to_dtype(dtype).reshape(&[batch, 1, 1, src])?, f64::NEG_INFINITY)?;
    }
    if let Some(m) = &masks.attn {
        match scores.masked_fill(&m.to_dtype(dtype), f64::NEG_INFINITY) {
            Ok(filled) if filled.shape() == scores.shape() => scores = filled,
            _ => return Err(Error::ShapeMismatch { op, lhs: scores.shape().into(), rhs: m.shape().into() }),
        }
    }
    if masks.causal {
        if tgt != src {
            bail!(op, "a causal mask needs as many queries as keys, got {tgt} and {src}");
        }
        scores = scores.masked_fill(&causal_mask(tgt, dtype), f64::NEG_INFINITY)?;
    }
    Ok(scores)
}

/// The result of an attention layer.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// The attended values: `[batch, tgt, embed]` (multi-head) or `[batch, tgt, value]`
    /// (additive).
    pub output: Tensor,
    /// Attention weights: `[batch, heads, tgt, src]` (multi-head) or `[batch, tgt, src]`
    /// (additive). Each row sums to 1 over `src`; masked keys have weight exactly 0.
    pub weights: Tensor,
}

/// Configuration of a [`MultiheadAttention`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Model width E (query, key and value features).
    pub embed_dim: usize,
    /// Number of heads; must divide `embed_dim`.
    pub num_heads: usize,
    /// Dropout on the attention weights in training (default 0).
    pub dropout: f64,
    /// Whether the projections have biases (default true).
    pub bias: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl MultiheadAttentionConfig {
    /// `num_heads` heads over width `embed_dim`, with biases and no dropout.
    pub fn new(embed_dim: usize, num_heads: usize) -> Self {
        MultiheadAttentionConfig { embed_dim, num_heads, dropout: 0.0, bias: true, dtype: DType::F32 }
    }

    /// Sets the attention-weight dropout.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets whether the projections have biases.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the layer as PyTorch does: `in_proj_weight` Xavier-uniform, biases zero,
    /// `out_proj.weight` U(−1/√E, 1/√E).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<MultiheadAttention> {
        let (e, h) = (self.embed_dim, self.num_heads);
        if e == 0 || h == 0 || e % h != 0 {
            bail!("MultiheadAttention", "embed_dim {e} must be a positive multiple of num_heads {h}");
        }
        let in_proj_weight =
            Var::new("in_proj_weight", &init::xavier_uniform(&[3 * e, e], 1.0, self.dtype, rng)?);
        let in_proj_bias = self
            .bias
            .then(|| Tensor::zeros(&[3 * e], self.dtype).map(|t| Var::new("in_proj_bias", &t)))
            .transpose()?;
        let out = LinearConfig::new(e, e).with_bias(false).with_dtype(self.dtype).init(rng)?;
        let zero_bias = Tensor::zeros(&[e], self.dtype)?;
        let out_proj = Linear::from_tensors(&out.weight, self.bias.then_some(&zero_bias))?;
        let dropout = DropoutConfig::new(self.dropout).init(rng)?;
        Ok(MultiheadAttention { in_proj_weight, in_proj_bias, out_proj, num_heads: h, dropout })
    }
}

/// Multi-head scaled dot-product attention with batch-first tensors:
/// softmax(Q·Kᵀ/√d_head + mask)·V per head, heads concatenated and projected.
///
/// # Shapes
/// - query: `[batch, tgt, embed]`, key and value: `[batch, src, embed]`
/// - output: `[batch, tgt, embed]`, weights: `[batch, heads, tgt, src]`
/// - `in_proj_weight`: `[3·embed, embed]` (rows: W_q, W_k, W_v), `in_proj_bias`: `[3·embed]`,
///   `out_proj`: Linear `[embed, embed]` — PyTorch's names and layout.
///
/// ```
/// use graphgrad_nn::layers::{AttentionMasks, MultiheadAttentionConfig};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mha = MultiheadAttentionConfig::new(8, 2).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let x = Tensor::ones(&[3, 5, 8], DType::F32)?;
/// let out = mha.forward_attention(&x, &x, &x, &AttentionMasks::causal())?;
/// assert_eq!((out.output.shape(), out.weights.shape()), (&[3, 5, 8][..], &[3, 2, 5, 5][..]));
/// assert_eq!(out.weights.to_vec::<f32>()?[1], 0.0); // query 0 cannot see key 1
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct MultiheadAttention {
    /// `[3·embed, embed]`: the query, key and value projections stacked.
    pub in_proj_weight: Var,
    /// `[3·embed]`, when the layer has biases.
    pub in_proj_bias: Option<Var>,
    /// The output projection `[embed, embed]`.
    pub out_proj: Linear,
    num_heads: usize,
    dropout: Dropout,
}

impl MultiheadAttention {
    /// Model width E.
    pub fn embed_dim(&self) -> usize {
        self.in_proj_weight.shape()[1]
    }

    /// Number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Projection `k` (0 = query, 1 = key, 2 = value) of `x` `[batch, len, embed]`.
    fn project(&self, x: &Tensor, k: usize) -> Result<Tensor> {
        let e = self.embed_dim();
        let w = self.in_proj_weight.narrow(0, k * e, e)?;
        let y = x.matmul_with(&w, false, true)?;
        match &self.in_proj_bias {
            Some(b) => y.add(&b.narrow(0, k * e, e)?),
            None => Ok(y),
        }
    }

    /// `[batch, len, embed]` → `[batch, heads, len, d_head]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, len, e) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        x.reshape(&[b, len, self.num_heads, e / self.num_heads])?.permute(&[0, 2, 1, 3])
    }

    /// Attends from `query` to `key`/`value` under `masks`; returns the output and the
    /// per-head weights.
    pub fn forward_attention(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        masks: &AttentionMasks,
    ) -> Result<AttentionOutput> {
        let e = self.embed_dim();
        let ok = |t: &Tensor| t.rank() == 3 && t.shape()[2] == e;
        if !ok(query)
            || !ok(key)
            || !ok(value)
            || key.shape() != value.shape()
            || query.shape()[0] != key.shape()[0]
        {
            bail!(
                "MultiheadAttention",
                "query {:?}, key {:?} and value {:?} must be [batch, len, {e}] with equal batches and key = value shapes",
                query.shape(),
                key.shape(),
                value.shape()
            );
        }
        let (batch, tgt) = (query.shape()[0], query.shape()[1]);
        let d_head = e / self.num_heads;
        // q: [batch, heads, tgt, d_head], scaled by 1/√d_head as PyTorch does
        let q = self.split_heads(&self.project(query, 0)?)?.mul_scalar(1.0 / (d_head as f64).sqrt());
        // k, v: [batch, heads, src, d_head]
        let k = self.split_heads(&self.project(key, 1)?)?;
        let v = self.split_heads(&self.project(value, 2)?)?;
        // scores: [batch, heads, tgt, src]
        let scores = apply_masks(q.matmul_with(&k, false, true)?, masks, "MultiheadAttention")?;
        let weights = scores.softmax(-1)?;
        // ctx: [batch, heads, tgt, d_head] → [batch, tgt, embed]
        let ctx = self.dropout.forward(&weights)?.matmul(&v)?;
        let ctx = ctx.permute(&[0, 2, 1, 3])?.reshape(&[batch, tgt, e])?;
        Ok(AttentionOutput { output: self.out_proj.forward(&ctx)?, weights })
    }
}

impl Module for MultiheadAttention {
    /// Self-attention of `input` `[batch, seq, embed]`, unmasked.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_attention(input, input, input, &AttentionMasks::none())?.output)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.parameter("in_proj_weight", &self.in_proj_weight);
        if let Some(bias) = &self.in_proj_bias {
            v.parameter("in_proj_bias", bias);
        }
        v.child("out_proj", &self.out_proj);
        v.child("dropout", &self.dropout);
    }
}

/// Configuration of an [`AdditiveAttention`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct AdditiveAttentionConfig {
    /// Features of a query (the decoder state).
    pub query_size: usize,
    /// Features of a key (an encoder state).
    pub key_size: usize,
    /// Width of the scoring layer.
    pub hidden_size: usize,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl AdditiveAttentionConfig {
    /// Scores with a hidden layer of `hidden_size`, in f32.
    pub fn new(query_size: usize, key_size: usize, hidden_size: usize) -> Self {
        AdditiveAttentionConfig { query_size, key_size, hidden_size, dtype: DType::F32 }
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the layer (Linear default initialisation for all three maps).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<AdditiveAttention> {
        if self.query_size == 0 || self.key_size == 0 || self.hidden_size == 0 {
            bail!("AdditiveAttention", "sizes must be positive, got {self:?}");
        }
        let linear = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).with_dtype(self.dtype);
        Ok(AdditiveAttention {
            query_proj: linear(self.query_size, self.hidden_size, false).init(rng)?,
            key_proj: linear(self.key_size, self.hidden_size, true).init(rng)?,
            score: linear(self.hidden_size, 1, false).init(rng)?,
        })
    }
}

/// Additive (Bahdanau) attention: score(q, kⱼ) = vᵀ·tanh(W_q·q + W_k·kⱼ + b), weights =
/// softmax over keys, output = Σⱼ weightⱼ·valueⱼ.
///
/// # Shapes
/// - query: `[batch, tgt, query_size]` (or `[batch, query_size]` for one query per sample)
/// - keys: `[batch, src, key_size]`, values: `[batch, src, value_size]`
/// - key padding mask (optional): `[batch, src]`, nonzero = padding
/// - output: `[batch, tgt, value_size]`, weights: `[batch, tgt, src]` (without `tgt` for a
///   rank-2 query)
///
/// ```
/// use graphgrad_nn::layers::AdditiveAttentionConfig;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let att = AdditiveAttentionConfig::new(4, 6, 5).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let (q, keys) = (Tensor::ones(&[2, 4], DType::F32)?, Tensor::ones(&[2, 7, 6], DType::F32)?);
/// let out = att.forward_attention(&q, &keys, &keys, None)?;
/// assert_eq!((out.output.shape(), out.weights.shape()), (&[2, 6][..], &[2, 7][..]));
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdditiveAttention {
    /// W_q: `[hidden, query_size]`, no bias.
    pub query_proj: Linear,
    /// W_k and b: `[hidden, key_size]`, `[hidden]`.
    pub key_proj: Linear,
    /// v: `[1, hidden]`, no bias.
    pub score: Linear,
}

impl AdditiveAttention {
    /// Attends from `query` over `keys`, averaging `values`; `key_padding` `[batch, src]`
    /// (nonzero = padding) gives padded keys weight exactly 0.
    pub fn forward_attention(
        &self,
        query: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        key_padding: Option<&Tensor>,
    ) -> Result<AttentionOutput> {
        let single = query.rank() == 2;
        let query = if single { query.unsqueeze(1)? } else { query.clone() };
        let shapes_ok = query.rank() == 3
            && keys.rank() == 3
            && values.rank() == 3
            && keys.shape()[..2] == values.shape()[..2]
            && query.shape()[0] == keys.shape()[0];
        if !shapes_ok {
            bail!(
                "AdditiveAttention",
                "query {:?}, keys {:?} and values {:?} must be [batch, tgt, q], [batch, src, k], [batch, src, v]",
                query.shape(),
                keys.shape(),
                values.shape()
            );
        }
        // qp: [batch, tgt, 1, hidden], kp: [batch, 1, src, hidden]
        let qp = self.query_proj.forward(&query)?.unsqueeze(2)?;
        let kp = self.key_proj.forward(keys)?.unsqueeze(1)?;
        // scores: [batch, tgt, src, 1] → [batch, 1, tgt, src] (a heads axis for the masks)
        let scores = self.score.forward(&qp.add(&kp)?.tanh())?.squeeze(-1)?.unsqueeze(1)?;
        let masks = AttentionMasks { key_padding: key_padding.cloned(), ..AttentionMasks::default() };
        // weights: [batch, tgt, src]
        let weights = apply_masks(scores, &masks, "AdditiveAttention")?.squeeze(1)?.softmax(-1)?;
        // output: [batch, tgt, value]
        let output = weights.matmul(values)?;
        if single {
            return Ok(AttentionOutput { output: output.squeeze(1)?, weights: weights.squeeze(1)? });
        }
        Ok(AttentionOutput { output, weights })
    }
}

impl Module for AdditiveAttention {
    /// Self-attention: `input` `[batch, seq, features]` is query, keys and values (needs
    /// `query_size == key_size`).
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.forward_attention(input, input, input, None)?.output)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.child("query_proj", &self.query_proj);
        v.child("key_proj", &self.key_proj);
        v.child("score", &self.score);
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;

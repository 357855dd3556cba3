//! [`MemN2N`]: the end-to-end memory network of Sukhbaatar, Szlam, Weston and Fergus,
//! "End-To-End Memory Networks" (NeurIPS 2015), for question answering over a story.
//!
//! Each story sentence xᵢ (word indices) is embedded twice per hop k, as an input memory
//! mᵢ = Σⱼ lⱼ ⊙ Aᵏxᵢⱼ + T_Aᵏ(i) and an output memory cᵢ = Σⱼ lⱼ ⊙ Cᵏxᵢⱼ + T_Cᵏ(i); the question
//! is embedded u¹ = Σⱼ lⱼ ⊙ Bqⱼ. A hop attends pᵢ = softmax(uᵏ·mᵢ), reads oᵏ = Σᵢ pᵢcᵢ and
//! updates the controller; after K hops the answer logits are W·u^{K+1}.
//!
//! - **Position encoding** (PE): lₖⱼ = (1 − j/J) − (k/d)(1 − 2j/J) (1-based j ≤ J words,
//!   k ≤ d dimensions); without it lⱼ = 1 (bag of words).
//! - **Temporal encoding** (TE): learned rows T(i) per memory slot i, added to the memories.
//!   Slot i is the i-th sentence as given: order the story as the paper does (most recent
//!   first) or oldest first, but consistently.
//! - **Adjacent tying**: Aᵏ⁺¹ = Cᵏ, B = A¹, Wᵀ = Cᴷ, u^{k+1} = uᵏ + oᵏ; the parameters are
//!   `embeddings.{0..=K}` (A¹, C¹, …, Cᴷ) and `temporal.{0..=K}` (T_A¹, T_C¹, …).
//! - **Layer-wise (RNN-like) tying**: A¹ = … = Aᴷ, C¹ = … = Cᴷ, u^{k+1} = H·uᵏ + oᵏ; the
//!   parameters are `query_embedding` (B), `memory_in` (A), `memory_out` (C), `temporal_in`,
//!   `temporal_out`, `h.weight` (H) and `answer` (W).
//! - **Padding**: words equal to `padding_idx` embed to zero, and a memory slot whose words
//!   are all padding gets attention weight exactly 0 (unless every slot of a sample is empty).
//! - **Linear start** (LS, §4.2): [`MemN2N::set_linear_start`] removes the softmax over
//!   memories until switched off.
//!
//! All weights start from N(0, 0.1²) as in the paper.

use crate::{init, prefixed, Linear, Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, Flag, IntoIndices, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// How the embedding matrices of the hops are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightTying {
    /// Aᵏ⁺¹ = Cᵏ, B = A¹, Wᵀ = Cᴷ.
    Adjacent,
    /// The same A and C in every hop, with a linear map H between hops.
    LayerWise,
}

/// Configuration of a [`MemN2N`].
#[derive(Clone, Debug, PartialEq)]
pub struct MemN2NConfig {
    /// Words in the vocabulary (inputs and answers share it).
    pub vocab_size: usize,
    /// Embedding width d.
    pub embed_dim: usize,
    /// Most memory slots (sentences) a story may have: the size of the temporal tables.
    pub memory_size: usize,
    /// Number of hops K (default 3).
    pub hops: usize,
    /// Weight sharing (default adjacent).
    pub tying: WeightTying,
    /// Position encoding (default true).
    pub position_encoding: bool,
    /// Temporal encoding (default true).
    pub temporal_encoding: bool,
    /// The padding word, which embeds to zero (default `Some(0)`).
    pub padding_idx: Option<usize>,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl MemN2NConfig {
    /// Three hops, adjacent tying, PE and TE, padding word 0, f32.
    pub fn new(vocab_size: usize, embed_dim: usize, memory_size: usize) -> Self {
        MemN2NConfig {
            vocab_size,
            embed_dim,
            memory_size,
            hops: 3,
            tying: WeightTying::Adjacent,
            position_encoding: true,
            temporal_encoding: true,
            padding_idx: Some(0),
            dtype: DType::F32,
        }
    }

    /// Sets the number of hops.
    pub fn with_hops(mut self, hops: usize) -> Self {
        self.hops = hops;
        self
    }

    /// Sets the weight tying.
    pub fn with_tying(mut self, tying: WeightTying) -> Self {
        self.tying = tying;
        self
    }

    /// Turns position encoding on or off.
    pub fn with_position_encoding(mut self, on: bool) -> Self {
        self.position_encoding = on;
        self
    }

    /// Turns temporal encoding on or off.
    pub fn with_temporal_encoding(mut self, on: bool) -> Self {
        self.temporal_encoding = on;
        self
    }

    /// Sets the padding word (`None`: every index is a real word).
    pub fn with_padding_idx(mut self, padding_idx: Option<usize>) -> Self {
        self.padding_idx = padding_idx;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Creates the network with N(0, 0.1²) weights.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<MemN2N> {
        let (v, d, m, k) = (self.vocab_size, self.embed_dim, self.memory_size, self.hops);
        if v == 0 || d == 0 || m == 0 || k == 0 {
            bail!(
                "MemN2N",
                "vocab_size, embed_dim, memory_size and hops must be positive, got {v}, {d}, {m}, {k}"
            );
        }
        if let Some(p) = self.padding_idx.filter(|&p| p >= v) {
            bail!("MemN2N", "padding_idx {p} is not a word of a vocabulary of {v}");
        }
        let mut param = |name: String, shape: &[usize]| -> Result<Var> {
            Ok(Var::new(name, &init::normal(shape, 0.0, 0.1, self.dtype, rng)?))
        };
        let te = self.temporal_encoding;
        let mut named = Vec::new();
        let net = match self.tying {
            WeightTying::Adjacent => {
                let emb =
                    (0..=k).map(|i| param(format!("embeddings.{i}"), &[v, d])).collect::<Result<Vec<_>>>()?;
                let temporal = if te {
                    (0..=k).map(|i| param(format!("temporal.{i}"), &[m, d])).collect::<Result<Vec<_>>>()?
                } else {
                    Vec::new()
                };
                named.extend(emb.iter().chain(&temporal).map(|p| (p.name().to_string(), p.clone())));
                Hops {
                    query_embedding: emb[0].clone(),
                    memory_in: emb[..k].to_vec(),
                    memory_out: emb[1..].to_vec(),
                    temporal_in: if te { temporal[..k].to_vec() } else { Vec::new() },
                    temporal_out: if te { temporal[1..].to_vec() } else { Vec::new() },
                    h: None,
                    answer: emb[k].clone(),
                }
            }
            WeightTying::LayerWise => {
                let b = param("query_embedding".into(), &[v, d])?;
                let a = param("memory_in".into(), &[v, d])?;
                let c = param("memory_out".into(), &[v, d])?;
                let temporal = if te {
                    vec![param("temporal_in".into(), &[m, d])?, param("temporal_out".into(), &[m, d])?]
                } else {
                    Vec::new()
                };
                let h = Linear::from_tensors(&init::normal(&[d, d], 0.0, 0.1, self.dtype, rng)?, None)?;
                let w = Var::new("answer", &init::normal(&[v, d], 0.0, 0.1, self.dtype, rng)?);
                named.extend(
                    [&b, &a, &c].into_iter().chain(&temporal).map(|p| (p.name().to_string(), p.clone())),
                );
                named.extend(prefixed("h", h.named_parameters()));
                named.push(("answer".to_string(), w.clone()));
                Hops {
                    query_embedding: b,
                    memory_in: vec![a; k],
                    memory_out: vec![c; k],
                    temporal_in: if te { vec![temporal[0].clone(); k] } else { Vec::new() },
                    temporal_out: if te { vec![temporal[1].clone(); k] } else { Vec::new() },
                    h: Some(h),
                    answer: w,
                }
            }
        };
        Ok(MemN2N { hops: net, named, config: self.clone(), linear_start: Flag::new(false) })
    }
}

/// The per-hop view of the (possibly shared) parameters.
#[derive(Clone, Debug)]
pub struct Hops {
    /// B: `[vocab, d]`.
    pub query_embedding: Var,
    /// Aᵏ for each hop: `[vocab, d]`.
    pub memory_in: Vec<Var>,
    /// Cᵏ for each hop: `[vocab, d]`.
    pub memory_out: Vec<Var>,
    /// T_Aᵏ for each hop: `[memory_size, d]` (empty without temporal encoding).
    pub temporal_in: Vec<Var>,
    /// T_Cᵏ for each hop: `[memory_size, d]` (empty without temporal encoding).
    pub temporal_out: Vec<Var>,
    /// H (layer-wise tying only): `[d, d]`.
    pub h: Option<Linear>,
    /// W: `[vocab, d]`; logits = u·Wᵀ.
    pub answer: Var,
}

/// What [`MemN2N::forward_story`] returns.
#[derive(Clone, Debug)]
pub struct MemN2NOutput {
    /// Answer logits `[batch, vocab]`.
    pub logits: Tensor,
    /// Attention over memory slots of each hop, `[batch, memories]`.
    pub attention: Vec<Tensor>,
}

/// An end-to-end memory network (see the module docs for the model and its options).
///
/// # Shapes
/// - story: `[batch, memories, words]` word indices (`memories ≤ memory_size`)
/// - query: `[batch, query_words]` word indices
/// - output: answer logits `[batch, vocab]`
/// - [`Module::forward`] takes both packed in one float tensor `[batch, memories + 1, words]`
///   whose last row per sample is the query.
///
/// ```
/// use graphgrad_nn::layers::MemN2NConfig;
/// use rand::SeedableRng;
/// let net = MemN2NConfig::new(10, 8, 4).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// // one story of 2 sentences of 3 words (0 = padding), and a 2-word question
/// let story = [1, 2, 3, 4, 5, 0];
/// let out = net.forward_story(&story, [1, 2, 3], &[6, 7])?;
/// assert_eq!(out.logits.shape(), &[1, 10]);
/// assert_eq!(out.attention.len(), 3); // one per hop
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct MemN2N {
    /// The parameters as each hop uses them.
    pub hops: Hops,
    named: Vec<(String, Var)>,
    config: MemN2NConfig,
    linear_start: Flag,
}

/// PE weights `[words, d]`: `l[j][k] = (1 − j/J) − (k/d)(1 − 2j/J)`, 1-based j and k.
pub fn position_encoding(words: usize, d: usize, dtype: DType) -> Tensor {
    let (jj, dd) = (words as f64, d as f64);
    let values: Vec<f64> = (1..=words)
        .flat_map(|j| {
            (1..=d).map(move |k| (1.0 - j as f64 / jj) - (k as f64 / dd) * (1.0 - 2.0 * j as f64 / jj))
        })
        .collect();
    Tensor::from_vec(values, &[words, d]).expect("words·d values").to_dtype(dtype)
}

impl MemN2N {
    /// The configuration the network was built from.
    pub fn config(&self) -> &MemN2NConfig {
        &self.config
    }

    /// Linear start: while on, hops use the raw scores uᵀmᵢ as weights (no softmax).
    pub fn set_linear_start(&self, on: bool) {
        self.linear_start.set(on);
    }

    /// Whether linear start is on.
    pub fn linear_start(&self) -> bool {
        self.linear_start.get()
    }

    /// Embeds sentences of word ids `[*lead, words]` (i64) with `table`, zeroing padding
    /// words, weighting by PE and summing over words: `[*lead, d]`.
    fn encode(&self, table: &Var, ids: &Tensor) -> Result<Tensor> {
        let dtype = table.dtype();
        let words = ids.shape()[ids.rank() - 1];
        // e: [*lead, words, d]
        let mut e = table.embedding(ids)?;
        if let Some(pad) = self.config.padding_idx {
            let mut keep_shape = ids.shape().to_vec();
            keep_shape.push(1);
            let keep = ids.to_dtype(DType::F64).ne_scalar(pad as f64).reshape(&keep_shape)?;
            e = e.mul(&keep.to_dtype(dtype))?;
        }
        if self.config.position_encoding {
            e = e.mul(&position_encoding(words, self.config.embed_dim, dtype))?;
        }
        e.sum(&[-2], false)
    }

    /// Answers `query` (`[batch, query_words]`, flattened) about `story` (`[batch, memories,
    /// words]`, flattened, shape given). Inside a compiled step, pass the ids as tensors
    /// ([`forward_ids`](MemN2N::forward_ids)): index lists would be frozen, and are refused.
    pub fn forward_story(
        &self,
        story: &[usize],
        story_shape: [usize; 3],
        query: &[usize],
    ) -> Result<MemN2NOutput> {
        let [batch, memories, words] = story_shape;
        if batch == 0
            || memories == 0
            || words == 0
            || graphgrad_ops::checked_numel(&story_shape) != Some(story.len())
        {
            bail!(
                "MemN2N",
                "story of {} indices does not fill a non-empty shape {story_shape:?}",
                story.len()
            );
        }
        if query.is_empty() || query.len().rem_euclid(batch) != 0 {
            bail!("MemN2N", "query of {} indices does not divide into {batch} questions", query.len());
        }
        let vocab = self.config.vocab_size;
        if let Some(&bad) = story.iter().chain(query).find(|&&i| i >= vocab) {
            return Err(Error::IndexOutOfRange { op: "MemN2N", index: bad as i64, len: vocab });
        }
        let story = story.into_indices("MemN2N", Some(&story_shape))?;
        let query = query.into_indices("MemN2N", Some(&[batch, query.len() / batch]))?;
        self.forward_ids(&story, &query)
    }

    /// Answers the questions `query` (word ids `[batch, query_words]`, i64) about `story`
    /// (word ids `[batch, memories, words]`): the form a compiled step takes, new ids at every
    /// call.
    pub fn forward_ids(&self, story: &Tensor, query: &Tensor) -> Result<MemN2NOutput> {
        let cfg = &self.config;
        let (&[batch, memories, words], &[qbatch, qwords]) = (story.shape(), query.shape()) else {
            bail!(
                "MemN2N",
                "story must be [batch, memories, words] and query [batch, words], got {:?} and {:?}",
                story.shape(),
                query.shape()
            );
        };
        if batch == 0 || memories == 0 || words == 0 || qwords == 0 || qbatch != batch {
            bail!(
                "MemN2N",
                "story {:?} and query {:?} must be non-empty with one question per story",
                story.shape(),
                query.shape()
            );
        }
        if memories > cfg.memory_size {
            bail!("MemN2N", "{memories} memories exceed memory_size {}", cfg.memory_size);
        }
        let dtype = self.hops.answer.dtype();
        let hops = &self.hops;
        // u: [batch, d]
        let mut u = self.encode(&hops.query_embedding, query)?;
        let empty = self.empty_slots(story, dtype)?;
        let mut attention = Vec::with_capacity(cfg.hops);
        for k in 0..cfg.hops {
            // m, c: [batch, memories, d]
            let mut m = self.encode(&hops.memory_in[k], story)?;
            let mut c = self.encode(&hops.memory_out[k], story)?;
            if cfg.temporal_encoding {
                m = m.add(&hops.temporal_in[k].narrow(0, 0, memories)?)?;
                c = c.add(&hops.temporal_out[k].narrow(0, 0, memories)?)?;
            }
            // scores: [batch, memories] = m · u
            let scores = m.matmul(&u.unsqueeze(-1)?)?.squeeze(-1)?;
            let p = match (&empty, self.linear_start.get()) {
                (Some(mask), false) => scores.masked_fill(mask, f64::NEG_INFINITY)?.softmax(-1)?,
                (None, false) => scores.softmax(-1)?,
                (Some(mask), true) => scores.masked_fill(mask, 0.0)?,
                (None, true) => scores,
            };
            // o: [batch, d] = Σᵢ pᵢ cᵢ
            let o = p.unsqueeze(1)?.matmul(&c)?.squeeze(1)?;
            u = match &hops.h {
                Some(h) => h.forward(&u)?.add(&o)?,
                None => u.add(&o)?,
            };
            attention.push(p);
        }
        // logits: [batch, vocab] = u · Wᵀ
        let logits = u.matmul_with(&hops.answer, false, true)?;
        Ok(MemN2NOutput { logits, attention })
    }

    /// `[batch, memories]`: 1 for memory slots holding only padding (not attended to), except
    /// in a story that has no sentence at all (then nothing is masked); `None` without padding.
    fn empty_slots(&self, story: &Tensor, dtype: DType) -> Result<Option<Tensor>> {
        let Some(pad) = self.config.padding_idx else { return Ok(None) };
        // has: [batch, memories], 1 where the slot holds a word
        let has = story.to_dtype(DType::F64).ne_scalar(pad as f64).sum(&[-1], false)?.gt_scalar(0.0);
        let story_empty = has.sum(&[-1], true)?.eq_scalar(0.0);
        let mask = has.neg().add_scalar(1.0).mul(&story_empty.neg().add_scalar(1.0))?;
        Ok(Some(mask.to_dtype(dtype)))
    }
}

/// Converts a float tensor of word indices to `usize`, checking each is a whole number ≥ 0.
fn indices_of(t: &Tensor) -> Result<Vec<usize>> {
    t.to_f64_vec()
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 && v.is_finite() {
                Ok(v as usize)
            } else {
                bail!("MemN2N", "{v} is not a word index")
            }
        })
        .collect()
}

impl Module for MemN2N {
    /// `input`: `[batch, memories + 1, words]` word indices as floats, the last row of each
    /// sample being the question; returns answer logits `[batch, vocab]`.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        if input.rank() != 3 || input.shape()[1] < 2 || input.shape()[2] == 0 {
            bail!("MemN2N", "packed input must be [batch, memories + 1, words], got {:?}", input.shape());
        }
        let (batch, rows, words) = (input.shape()[0], input.shape()[1], input.shape()[2]);
        let all = indices_of(input)?;
        let (mut story, mut query) = (Vec::new(), Vec::new());
        for sample in all.chunks(rows * words) {
            story.extend_from_slice(&sample[..(rows - 1) * words]);
            query.extend_from_slice(&sample[(rows - 1) * words..]);
        }
        Ok(self.forward_story(&story, [batch, rows - 1, words], &query)?.logits)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for (name, param) in &self.named {
            v.parameter(name, param);
        }
    }
}

#[cfg(test)]
#[path = "memn2n_tests.rs"]
mod tests;

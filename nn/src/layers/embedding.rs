//! `Embedding`: a lookup table of vectors (PyTorch's `nn.Embedding`).
//!
//! Indices arrive as an `i64` tensor through [`Module::forward`] (inside a compiled step: a
//! runtime input, new ids at every call), or as `&[usize]` with their shape
//! ([`Embedding::lookup`]). A float tensor of whole numbers is accepted too and converted.
//! With `padding_idx` the padding row starts at zero and receives no gradient, as in PyTorch.

use crate::{init, Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, IntoIndices, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Configuration of an [`Embedding`].
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingConfig {
    /// Size of the dictionary.
    pub num_embeddings: usize,
    /// Size of each vector.
    pub embedding_dim: usize,
    /// A row that is initialised to zero and never updated (default none).
    pub padding_idx: Option<usize>,
    /// Element type of the table (default f32).
    pub dtype: DType,
}

impl EmbeddingConfig {
    /// A table of `num_embeddings` vectors of size `embedding_dim`, in f32.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> EmbeddingConfig {
        EmbeddingConfig { num_embeddings, embedding_dim, padding_idx: None, dtype: DType::F32 }
    }

    /// Sets the padding row.
    pub fn with_padding_idx(mut self, padding_idx: Option<usize>) -> EmbeddingConfig {
        self.padding_idx = padding_idx;
        self
    }

    /// Sets the table's element type.
    pub fn with_dtype(mut self, dtype: DType) -> EmbeddingConfig {
        self.dtype = dtype;
        self
    }

    /// Creates the table from N(0, 1), as PyTorch (the padding row zeroed).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Embedding> {
        if self.num_embeddings == 0 || self.embedding_dim == 0 {
            bail!(
                "Embedding",
                "num_embeddings and embedding_dim must be positive, got {} and {}",
                self.num_embeddings,
                self.embedding_dim
            );
        }
        let shape = [self.num_embeddings, self.embedding_dim];
        let mut weight = init::normal(&shape, 0.0, 1.0, self.dtype, rng)?;
        if let Some(pad) = self.padding_idx {
            if pad >= self.num_embeddings {
                bail!(
                    "Embedding",
                    "padding_idx {pad} is out of range for {} embeddings",
                    self.num_embeddings
                );
            }
            let mut values = weight.to_f64_vec();
            values[pad * self.embedding_dim..(pad + 1) * self.embedding_dim].fill(0.0);
            weight = Tensor::from_vec(values, &shape)?.to_dtype(self.dtype).detach();
        }
        Ok(Embedding { weight: Var::new("weight", &weight), padding_idx: self.padding_idx })
    }
}

/// Maps each index to a row of `weight`.
///
/// # Shapes
/// - input: `[*]` indices (any shape)
/// - output: `[*, embedding_dim]`
/// - `weight`: `[num_embeddings, embedding_dim]`
///
/// ```
/// use graphgrad_nn::EmbeddingConfig;
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let emb = EmbeddingConfig::new(10, 4).init(&mut rng)?;
/// let y = emb.lookup(&[1, 2, 9, 0, 0, 3], &[2, 3])?; // y: [batch 2, seq 3, dim 4]
/// assert_eq!(y.shape(), &[2, 3, 4]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Var,
    /// The row that receives no gradient.
    pub padding_idx: Option<usize>,
}

impl Embedding {
    /// A layer holding a copy of `weight` `[num_embeddings, embedding_dim]`.
    pub fn from_tensor(weight: &Tensor, padding_idx: Option<usize>) -> Result<Embedding> {
        if weight.rank() != 2 {
            bail!("Embedding", "weight must be [num_embeddings, embedding_dim], got {:?}", weight.shape());
        }
        if let Some(pad) = padding_idx.filter(|&p| p >= weight.shape()[0]) {
            return Err(Error::IndexOutOfRange {
                op: "Embedding",
                index: pad as i64,
                len: weight.shape()[0],
            });
        }
        Ok(Embedding { weight: Var::new("weight", weight), padding_idx })
    }

    /// Size of the dictionary.
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The rows for `indices` (row-major, of shape `index_shape`): `[index_shape, dim]`.
    pub fn lookup(&self, indices: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        self.embed(indices.into_indices("Embedding", Some(index_shape))?)
    }

    /// The rows for an `i64` index tensor: `[index shape, dim]`.
    fn embed(&self, ids: Tensor) -> Result<Tensor> {
        let rows = self.weight.embedding(&ids).map_err(|e| e.called_as("Embedding"))?;
        let Some(pad) = self.padding_idx else { return Ok(rows) };
        // Padding positions take the padding row as a constant, so no gradient reaches it.
        let dim = self.embedding_dim();
        let mut mask_shape = ids.shape().to_vec();
        mask_shape.push(1);
        let mask = ids
            .to_dtype(DType::F64)
            .eq_scalar(pad as f64)
            .reshape(&mask_shape)?
            .to_dtype(self.weight.dtype());
        let pad_row = self.weight.detach().narrow(0, pad, 1)?.reshape(&[dim])?;
        Tensor::where_(&mask, &pad_row, &rows)
    }
}

impl Module for Embedding {
    /// Looks up an `i64` tensor of indices (or a float tensor of whole-number indices); see
    /// [`Embedding::lookup`].
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        if input.dtype() == DType::I64 {
            return self.embed(input.clone());
        }
        if graphgrad_autodiff::compile::tracing() {
            // Inside a compiled step the values are new at every call: cast them in the
            // program, and check they were whole numbers with one value that stays 1 while they
            // are (a guard that does not re-trace). The range is checked by the lookup itself.
            let ids = input.to_dtype(DType::I64);
            let whole = input.sub(&ids.to_dtype(input.dtype()))?.abs().sum_all().eq_scalar(0.0);
            if whole.item()? != 1.0 {
                bail!("Embedding", "an index of the input {:?} is not a whole number", input.shape());
            }
            return self.embed(ids);
        }
        let n = self.num_embeddings();
        let values = input.to_f64_vec();
        let mut indices = Vec::with_capacity(values.len());
        for v in values {
            if !(v >= 0.0 && v.fract() == 0.0 && v < n as f64) {
                bail!("Embedding", "index {v} is not a whole number in 0..{n}");
            }
            indices.push(v as usize);
        }
        self.lookup(&indices, input.shape())
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.parameter("weight", &self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_parameter_gradients;
    use rand::SeedableRng;

    fn table() -> Embedding {
        // rows: [0, 1], [10, 11], [20, 21], [30, 31]
        let w = Tensor::from_vec(vec![0.0f64, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0], &[4, 2]).unwrap();
        Embedding::from_tensor(&w, None).unwrap()
    }

    #[test]
    fn lookup_matches_rows() {
        let emb = table();
        let y = emb.lookup(&[3, 0, 2, 2], &[2, 2]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 2]);
        assert_eq!(y.to_f64_vec(), vec![30.0, 31.0, 0.0, 1.0, 20.0, 21.0, 20.0, 21.0]);
        let via_forward =
            emb.forward(&Tensor::from_vec(vec![3.0f32, 0.0, 2.0, 2.0], &[2, 2]).unwrap()).unwrap();
        assert_eq!(via_forward.to_f64_vec(), y.to_f64_vec());
        assert!(emb.lookup(&[4], &[1]).is_err());
        assert!(emb.forward(&Tensor::from_vec(vec![1.5f32], &[1]).unwrap()).is_err());
        assert!(emb.forward(&Tensor::from_vec(vec![-1.0f32], &[1]).unwrap()).is_err());
    }

    #[test]
    fn gradient_accumulates_repeated_rows() {
        // L = Σ y over indices [1, 1, 3]: row 1 gets 2 per element, row 3 gets 1, others 0
        let emb = table();
        emb.lookup(&[1, 1, 3], &[3]).unwrap().sum_all().backward().unwrap();
        assert_eq!(emb.weight.grad().unwrap().to_f64_vec(), vec![0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 1.0, 1.0]);
        let emb = table();
        check_parameter_gradients(
            &emb,
            &Tensor::from_vec(vec![0.0f64, 2.0, 2.0, 3.0, 1.0, 0.0], &[3, 2]).unwrap(),
        );
    }

    #[test]
    fn padding_row_is_zero_and_frozen() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let emb = EmbeddingConfig::new(5, 3)
            .with_padding_idx(Some(2))
            .with_dtype(DType::F64)
            .init(&mut rng)
            .unwrap();
        assert_eq!(&emb.weight.to_f64_vec()[6..9], &[0.0, 0.0, 0.0]);
        let y = emb.lookup(&[2, 4, 2], &[3]).unwrap();
        assert_eq!(&y.to_f64_vec()[..3], &[0.0, 0.0, 0.0]);
        y.sum_all().backward().unwrap();
        let g = emb.weight.grad().unwrap().to_f64_vec();
        assert_eq!(&g[6..9], &[0.0, 0.0, 0.0]);
        assert_eq!(&g[12..15], &[1.0, 1.0, 1.0]);
        assert!(EmbeddingConfig::new(5, 3).with_padding_idx(Some(5)).init(&mut rng).is_err());
    }

    #[test]
    fn init_is_standard_normal_and_seeded() {
        let make = |seed| EmbeddingConfig::new(500, 100).init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let w = make(1).weight.to_f64_vec();
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "mean {mean} var {var}");
        assert_eq!(make(1).weight.to_f64_vec(), w);
    }
}

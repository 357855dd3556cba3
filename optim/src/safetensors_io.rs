//! safetensors export and import of state dicts (the `safetensors` crate), so weights move to
//! and from PyTorch (`safetensors.torch.load_file` / `save_file`).
//!
//! Only F32 and F64 tensors exist in graphgrad: importing a file that holds any other element
//! type (F16, BF16, integers...) is an error naming the tensor and its type, never a silent
//! conversion. Exported files carry the metadata `{"format": "pt"}` that Hugging Face tools
//! expect.

use crate::{write_atomic, Error, Result};
use graphgrad_autodiff::{load_state, StateDict, Tensor, Var};
use safetensors::tensor::{Dtype, View};
use safetensors::SafeTensors;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// One tensor's little-endian bytes, as the safetensors writer wants them.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(tensor: &Tensor) -> Bytes {
    let values = tensor.read();
    let (dtype, data) = match &*values {
        graphgrad_autodiff::Buffer::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        graphgrad_autodiff::Buffer::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        graphgrad_autodiff::Buffer::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    Bytes { dtype, shape: tensor.shape().to_vec(), data }
}

fn error(path: Option<&Path>, reason: String) -> Error {
    Error::Safetensors { path: path.map(Path::to_path_buf), reason }
}

/// Encodes a state dict as a safetensors file's bytes.
///
/// ```
/// use graphgrad_autodiff::{StateDict, Tensor};
/// use graphgrad_optim::{from_safetensors_bytes, to_safetensors_bytes};
/// let mut state = StateDict::new();
/// state.insert("linear.weight".into(), Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?);
/// let bytes = to_safetensors_bytes(&state)?;
/// let back = from_safetensors_bytes(&bytes)?;
/// assert_eq!(back["linear.weight"].to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(back["linear.weight"].shape(), &[2, 2]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub fn to_safetensors_bytes(state: &StateDict) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Bytes)> = state.iter().map(|(name, t)| (name.clone(), to_bytes(t))).collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(tensors.iter().map(|(n, b)| (n.as_str(), b)), Some(metadata))
        .map_err(|e| error(None, format!("cannot encode: {e}")))
}

/// Decodes a safetensors file's bytes into a state dict of F32, F64 and I64 tensors.
pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<StateDict> {
    decode(bytes, None)
}

fn decode(bytes: &[u8], path: Option<&Path>) -> Result<StateDict> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| error(path, format!("not a valid file: {e}")))?;
    let mut state = StateDict::new();
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in tensors {
        let (shape, data) = (view.shape(), view.data());
        let tensor = match view.dtype() {
            Dtype::F32 => Tensor::from_vec(
                data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
                shape,
            ),
            Dtype::F64 => Tensor::from_vec(
                data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
                shape,
            ),
            Dtype::I64 => Tensor::from_vec(
                data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
                shape,
            ),
            other => {
                return Err(error(
                    path,
                    format!(
                        "tensor `{name}` has element type {other:?}; only F32, F64 and I64 can be imported"
                    ),
                ))
            }
        }
        .map_err(|e| error(path, format!("tensor `{name}`: {e}")))?;
        state.insert(name, tensor);
    }
    Ok(state)
}

/// Writes a state dict to a safetensors file (atomically, like checkpoints).
pub fn save_safetensors(state: &StateDict, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_safetensors_bytes(state).map_err(|e| match e {
        Error::Safetensors { reason, .. } => error(Some(path), reason),
        other => other,
    })?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file into a state dict (F32/F64 only; other types are an error).
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<StateDict> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, Some(path))
}

/// Reads a safetensors file into `params` in place: every parameter needs a tensor of its
/// name, shape and dtype, and every tensor a parameter; otherwise nothing is written and the
/// error lists the missing, unexpected and mismatched names and shapes.
pub fn load_safetensors_into(params: &[(String, Var)], path: impl AsRef<Path>) -> Result<()> {
    let state = load_safetensors(path)?;
    Ok(load_state(params, &state)?)
}

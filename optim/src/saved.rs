//! Serialisable tensors: the plain-data form in which checkpoints and optimiser state hold
//! values (autodiff's `Tensor` and `Buffer` carry no serde derives, on purpose).
//!
//! Invariant after [`SavedTensor::validate`]: the element count is the product of the shape.

use crate::{Error, FormatError, Result};
use graphgrad_autodiff::{Buffer, DType, StateDict, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The elements of a saved tensor, in row-major order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SavedData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit integers.
    I64(Vec<i64>),
}

impl SavedData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            SavedData::F32(v) => v.len(),
            SavedData::F64(v) => v.len(),
            SavedData::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            SavedData::F32(_) => DType::F32,
            SavedData::F64(_) => DType::F64,
            SavedData::I64(_) => DType::I64,
        }
    }

    /// A copy of a live buffer.
    pub fn from_buffer(buffer: &Buffer) -> SavedData {
        match buffer {
            Buffer::F32(v) => SavedData::F32(v.to_vec()),
            Buffer::F64(v) => SavedData::F64(v.to_vec()),
            Buffer::I64(v) => SavedData::I64(v.to_vec()),
        }
    }

    /// A live buffer holding these elements.
    pub fn to_buffer(&self) -> Buffer {
        match self {
            SavedData::F32(v) => Buffer::from(v.clone()),
            SavedData::F64(v) => Buffer::from(v.clone()),
            SavedData::I64(v) => Buffer::from(v.clone()),
        }
    }
}

/// A tensor's shape and elements, detached from any graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedTensor {
    /// Dimension sizes, outermost first.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: SavedData,
}

impl SavedTensor {
    /// A copy of `tensor`'s value.
    pub fn from_tensor(tensor: &Tensor) -> SavedTensor {
        SavedTensor { shape: tensor.shape().to_vec(), data: SavedData::from_buffer(&tensor.read()) }
    }

    /// A new leaf tensor with this value (errors when shape and element count disagree).
    pub fn to_tensor(&self) -> Result<Tensor> {
        let tensor = match &self.data {
            SavedData::F32(v) => Tensor::from_slice(v, &self.shape)?,
            SavedData::F64(v) => Tensor::from_slice(v, &self.shape)?,
            SavedData::I64(v) => Tensor::from_slice(v, &self.shape)?,
        };
        Ok(tensor)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Checks that the element count is the product of the shape (without overflow).
    pub fn validate(&self, name: &str) -> Result<(), FormatError> {
        let numel = self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        match numel {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(FormatError::Malformed {
                reason: format!(
                    "tensor `{name}` has shape {:?} but {} elements",
                    self.shape,
                    self.data.len()
                ),
            }),
        }
    }
}

/// A state dict in saved form: name → tensor, ordered by name.
pub type SavedState = BTreeMap<String, SavedTensor>;

/// Copies a state dict into saved form.
pub fn save_state_dict(state: &StateDict) -> SavedState {
    state.iter().map(|(name, t)| (name.clone(), SavedTensor::from_tensor(t))).collect()
}

/// Rebuilds a state dict of fresh leaf tensors from saved form.
pub fn load_state_dict(saved: &SavedState) -> Result<StateDict> {
    saved
        .iter()
        .map(|(name, t)| t.to_tensor().map(|t| (name.clone(), t)))
        .collect::<Result<StateDict>>()
        .map_err(|e| match e {
            Error::Tensor(e) => Error::checkpoint(None, FormatError::Malformed { reason: e.to_string() }),
            other => other,
        })
}

//! Indexing: index_select / index_add and gather / scatter_add, each pair the other's adjoint.
//!
//! The indices are an operand of the op, an `i64` tensor, so a compiled program reads new
//! indices (labels, token ids) at every call. Their values are checked against the indexed
//! axis before a kernel runs (`check_values`: when an op is recorded, and by a compiled program
//! before each indexing step), so kernels never see a bad index.

use super::movement::normalize_axis;
use super::{Arg, InputGrads, Op, Operand};
use crate::buffer::{Elem, Storage};
use crate::{DType, Error, Result, Tensor};
use graphgrad_ops::facts::fact::DIFFERENTIABLE;
use graphgrad_ops::{index, op_facts, split_at_axis, Shape};
use smallvec::smallvec;

/// Indexing by an `i64` index tensor (the second operand); each pair is the other's adjoint.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexOp {
    /// Slices at a 1-d list of indices along `axis`.
    IndexSelect {
        /// The axis.
        axis: usize,
    },
    /// Adjoint of `IndexSelect`: zeros of length `len` along `axis` with the input's slices
    /// added at the indices (one per input slice).
    IndexAdd {
        /// The axis.
        axis: usize,
        /// The output's size along `axis`.
        len: usize,
    },
    /// `torch.gather` along `axis`; the index has the output's shape.
    Gather {
        /// The axis.
        axis: usize,
    },
    /// Adjoint of `Gather`: zeros of `shape` with the input scattered and added along `axis`
    /// at the index (of the input's shape).
    ScatterAdd {
        /// The axis.
        axis: usize,
        /// The output shape.
        shape: Shape,
    },
}

op_facts! { IndexOp;
    IndexSelect { axis: 0 } => "index_select", DIFFERENTIABLE;
    IndexAdd { axis: 0, len: 1 } => "index_add", DIFFERENTIABLE;
    Gather { axis: 0 } => "gather", DIFFERENTIABLE;
    ScatterAdd { axis: 0, shape: smallvec![1] } => "scatter_add", DIFFERENTIABLE;
}

/// `i64` index values as `usize`, once [`IndexOp::check_values`] has found them all in range
/// (so none is negative).
fn as_indices(values: &[i64]) -> &[usize] {
    const _: () = assert!(std::mem::size_of::<usize>() == std::mem::size_of::<i64>());
    // SAFETY: same size and alignment on the 64-bit targets this crate builds for (asserted
    // above); every value was checked non-negative, so each reads back as the same number.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<usize>(), values.len()) }
}

impl IndexOp {
    fn axis(&self) -> usize {
        match self {
            IndexOp::IndexSelect { axis }
            | IndexOp::IndexAdd { axis, .. }
            | IndexOp::Gather { axis }
            | IndexOp::ScatterAdd { axis, .. } => *axis,
        }
    }

    /// Whether the data operand may be an integer tensor (selecting labels by position).
    fn moves_only(&self) -> bool {
        matches!(self, IndexOp::IndexSelect { .. } | IndexOp::Gather { .. })
    }

    /// The output dtype and shape for data `x` and index `index`.
    pub(super) fn infer(&self, x: Operand<'_>, index: Operand<'_>) -> Result<(DType, Shape)> {
        let name = self.name();
        if index.dtype != DType::I64 {
            crate::bail!(
                name,
                "the index must be an i64 tensor, got {} of shape {:?}",
                index.dtype,
                index.shape
            );
        }
        if !(x.dtype.is_float() || self.moves_only()) {
            crate::bail!(name, "needs a float tensor, got {} of shape {:?}", x.dtype, x.shape);
        }
        let (dtype, x, idx) = (x.dtype, x.shape, index.shape);
        let axis = self.axis();
        if axis >= x.len() {
            return Err(Error::AxisOutOfRange { op: name, axis: axis as isize, shape: x.into() });
        }
        let shape = match self {
            IndexOp::IndexSelect { .. } | IndexOp::IndexAdd { .. } if idx.len() != 1 => {
                crate::bail!(name, "the indices must be 1-d, got shape {idx:?}")
            }
            IndexOp::IndexSelect { .. } => {
                let mut shape = Shape::from_slice(x);
                shape[axis] = idx[0];
                shape
            }
            IndexOp::IndexAdd { len, .. } => {
                if idx[0] != x[axis] {
                    crate::bail!(name, "{} indices for {} slices of shape {x:?}", idx[0], x[axis]);
                }
                let mut shape = Shape::from_slice(x);
                shape[axis] = *len;
                shape
            }
            // the index has the output's shape and reads from `x`
            IndexOp::Gather { .. } => {
                check_index_shape(name, axis, idx, x)?;
                Shape::from_slice(idx)
            }
            // the index has the input's shape and writes into the output
            IndexOp::ScatterAdd { shape, .. } => {
                if idx != x {
                    return Err(Error::ShapeMismatch { op: name, lhs: x.into(), rhs: idx.into() });
                }
                check_index_shape(name, axis, x, shape)?;
                shape.clone()
            }
        };
        Ok((dtype, shape))
    }

    /// Every index value lies in the indexed axis: `0 <= i < len`.
    pub(super) fn check_values(&self, ins: &[Arg<'_>], out_shape: &[usize]) -> Result<()> {
        let axis = self.axis();
        let len = match self {
            IndexOp::IndexSelect { .. } | IndexOp::Gather { .. } => ins[0].shape[axis],
            IndexOp::IndexAdd { len, .. } => *len,
            IndexOp::ScatterAdd { .. } => out_shape[axis],
        };
        match ins[1].data::<i64>().iter().find(|&&i| i < 0 || i as u64 >= len as u64) {
            Some(&index) => Err(Error::IndexOutOfRange { op: self.name(), index, len }),
            None => Ok(()),
        }
    }

    /// The kernels that only move data, for every element type.
    pub(super) fn forward_moves<T: Storage>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        let (x, index) = (ins[0], as_indices(ins[1].data::<i64>()));
        match self {
            IndexOp::IndexSelect { axis } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                index::index_select(x.data::<T>(), outer, len, inner, index, out)
            }
            IndexOp::Gather { axis } => index::gather(x.data::<T>(), x.shape, *axis, index, shape, out),
            IndexOp::IndexAdd { .. } | IndexOp::ScatterAdd { .. } => {
                unreachable!("internal invariant: the shape rule refuses integer adds")
            }
        }
    }

    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        let (x, index) = (ins[0], as_indices(ins[1].data::<i64>()));
        match self {
            IndexOp::IndexSelect { .. } | IndexOp::Gather { .. } => self.forward_moves(ins, shape, out),
            IndexOp::IndexAdd { axis, .. } => {
                out.fill(T::ZERO);
                let (outer, len, inner) = split_at_axis(shape, *axis);
                index::index_add(x.data::<T>(), outer, len, inner, index, out)
            }
            IndexOp::ScatterAdd { axis, .. } => {
                out.fill(T::ZERO);
                index::scatter_add(out, shape, *axis, index, x.shape, x.data::<T>())
            }
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let (x, index) = (&node.inputs()[0], &node.inputs()[1]);
        let grad = match self {
            // adjoint of selecting rows: add them back
            IndexOp::IndexSelect { axis } => g.index_add_into(*axis, index, x.shape()[*axis])?,
            // adjoint of adding rows: select them
            IndexOp::IndexAdd { axis, .. } => g.index_op(IndexOp::IndexSelect { axis: *axis }, index)?,
            // adjoint of gather: scatter-add
            IndexOp::Gather { axis } => g.scatter_add_into(*axis, index, x.shape())?,
            // adjoint of scatter-add: gather
            IndexOp::ScatterAdd { axis, .. } => g.index_op(IndexOp::Gather { axis: *axis }, index)?,
        };
        Ok(smallvec![Some(grad), None])
    }
}

/// An index of `index_shape` addresses `data_shape` along `axis`: same rank, no larger on the
/// other axes.
fn check_index_shape(
    op: &'static str,
    axis: usize,
    index_shape: &[usize],
    data_shape: &[usize],
) -> Result<()> {
    let fits = index_shape.len() == data_shape.len()
        && index_shape.iter().zip(data_shape).enumerate().all(|(d, (&i, &s))| d == axis || i <= s);
    if !fits {
        return Err(Error::ShapeMismatch { op, lhs: data_shape.into(), rhs: index_shape.into() });
    }
    Ok(())
}

/// Index data given as a `usize` list or as an `i64` tensor: what every indexing op and loss
/// accepts. A list becomes a tensor of the program inside a compiled step, so it is frozen
/// into it and refused there, unless wrapped in [`compile::constant_indices`](crate::compile::constant_indices)
/// (crate::compile::constant_indices); pass indices that change per call as a tensor input.
pub trait IntoIndices {
    /// The indices as an `i64` tensor of `shape` (`None`: 1-d), for the op `op`.
    fn into_indices(self, op: &'static str, shape: Option<&[usize]>) -> Result<Tensor>;
}

impl IntoIndices for &Tensor {
    fn into_indices(self, op: &'static str, shape: Option<&[usize]>) -> Result<Tensor> {
        if self.dtype() != DType::I64 {
            crate::bail!(
                op,
                "the indices must be an i64 tensor, got {} of shape {:?}",
                self.dtype(),
                self.shape()
            );
        }
        match shape {
            Some(s) if s != self.shape() => self.reshape(s),
            _ => Ok(self.clone()),
        }
    }
}

impl IntoIndices for &[usize] {
    fn into_indices(self, op: &'static str, shape: Option<&[usize]>) -> Result<Tensor> {
        if !crate::mode::index_lists_allowed() {
            crate::bail!(
                op,
                "an index list inside a compiled step would be a constant of the program, reused on \
                 every call; pass the indices (class labels, token ids) as an i64 tensor input of the \
                 step (`Tensor::from_indices`), or wrap indices that truly are constant in \
                 `compile::constant_indices`"
            );
        }
        Tensor::from_indices(self, shape.unwrap_or(&[self.len()]))
    }
}

impl IntoIndices for &Vec<usize> {
    fn into_indices(self, op: &'static str, shape: Option<&[usize]>) -> Result<Tensor> {
        self.as_slice().into_indices(op, shape)
    }
}

impl<const N: usize> IntoIndices for &[usize; N] {
    fn into_indices(self, op: &'static str, shape: Option<&[usize]>) -> Result<Tensor> {
        self.as_slice().into_indices(op, shape)
    }
}

impl Tensor {
    /// An `i64` tensor of indices (class labels, token ids) of `shape`.
    ///
    /// ```
    /// use graphgrad_autodiff::{DType, Tensor};
    /// let labels = Tensor::from_indices(&[3, 0, 7], &[3])?;
    /// assert_eq!((labels.dtype(), labels.to_vec::<i64>()?), (DType::I64, vec![3, 0, 7]));
    /// # Ok::<(), graphgrad_autodiff::Error>(())
    /// ```
    pub fn from_indices(indices: &[usize], shape: &[usize]) -> Result<Tensor> {
        let values = indices
            .iter()
            .map(|&i| {
                i64::try_from(i).map_err(|_| Error::InvalidArgument {
                    op: "from_indices",
                    reason: format!("index {i} does not fit in an i64"),
                })
            })
            .collect::<Result<Vec<i64>>>()?;
        Tensor::from_vec(values, shape)
    }

    fn index_op(&self, op: IndexOp, index: &Tensor) -> Result<Tensor> {
        Tensor::record(Op::Index(op), &[self, index])
    }

    /// Slices at `indices` along `axis` (like `torch.index_select`); `indices` is an `i64`
    /// tensor or a `usize` list (see [`IntoIndices`]).
    pub fn index_select(&self, axis: isize, indices: impl IntoIndices) -> Result<Tensor> {
        let index = indices.into_indices("index_select", None)?;
        let axis = normalize_axis("index_select", axis, self.shape())?;
        self.index_op(IndexOp::IndexSelect { axis }, &index)
    }

    fn index_add_into(&self, axis: usize, index: &Tensor, len: usize) -> Result<Tensor> {
        self.index_op(IndexOp::IndexAdd { axis, len }, index)
    }

    /// `self` plus `source` slices added at `indices` along `axis` (like `torch.index_add`).
    pub fn index_add(&self, axis: isize, indices: impl IntoIndices, source: &Tensor) -> Result<Tensor> {
        let index = indices.into_indices("index_add", None)?;
        let a = normalize_axis("index_add", axis, self.shape())?;
        let mut expected: Shape = self.shape().into();
        expected[a] = index.numel();
        if source.shape() != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                op: "index_add",
                lhs: self.shape().into(),
                rhs: source.shape().into(),
            });
        }
        self.add(&source.index_add_into(a, &index, self.shape()[a])?)
    }

    /// Rows of this `[num, dim]` table for each index; the result has the indices' shape
    /// plus `[dim]` (an embedding lookup). A `usize` list is taken as 1-d.
    pub fn embedding(&self, indices: impl IntoIndices) -> Result<Tensor> {
        if self.rank() != 2 {
            crate::bail!("embedding", "the table must be [num_embeddings, dim], got {:?}", self.shape());
        }
        let index = indices.into_indices("embedding", None)?;
        let mut shape: Shape = index.shape().into();
        shape.push(self.shape()[1]);
        self.index_select(0, &index.reshape(&[index.numel()])?)?.reshape(&shape)
    }

    /// `out[.., j, ..] = self[.., index[.., j, ..], ..]` along `axis` (like `torch.gather`); the
    /// output has the index's shape (`index_shape` for a `usize` list).
    pub fn gather(
        &self,
        axis: isize,
        index: impl IntoIndices,
        index_shape: Option<&[usize]>,
    ) -> Result<Tensor> {
        let index = index.into_indices("gather", index_shape)?;
        let axis = normalize_axis("gather", axis, self.shape())?;
        self.index_op(IndexOp::Gather { axis }, &index)
    }

    fn scatter_add_into(&self, axis: usize, index: &Tensor, shape: &[usize]) -> Result<Tensor> {
        self.index_op(IndexOp::ScatterAdd { axis, shape: shape.into() }, index)
    }

    /// `self` with `source` added at `index` along `axis` (like `torch.scatter_add`); `index`
    /// has the shape of `source`.
    pub fn scatter_add(&self, axis: isize, index: impl IntoIndices, source: &Tensor) -> Result<Tensor> {
        let index = index.into_indices("scatter_add", Some(source.shape()))?;
        let a = normalize_axis("scatter_add", axis, self.shape())?;
        self.add(&source.scatter_add_into(a, &index, self.shape())?)
    }
}

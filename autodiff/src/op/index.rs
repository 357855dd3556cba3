//! Indexing: index_select / index_add and gather / scatter_add, each pair the other's adjoint.
//!
//! Index lists are validated here (in range, matching shapes) so kernels never see a bad index.

use super::movement::normalize_axis;
use super::{Arg, InputGrads, Op};
use crate::buffer::Elem;
use crate::{Error, Result, Tensor};
use graphgrad_ops::facts::fact::DIFFERENTIABLE;
use graphgrad_ops::{index, numel, op_facts, split_at_axis, Shape};
use smallvec::smallvec;
use std::sync::Arc;

/// Indexing by an index list carried in the op; each pair is the other's adjoint.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexOp {
    /// Rows `indices` along `axis`.
    IndexSelect {
        /// The axis.
        axis: usize,
        /// The selected indices.
        indices: Arc<[usize]>,
    },
    /// Adjoint of `IndexSelect`: zeros of length `len` along `axis` with the input's slices
    /// added at `indices`.
    IndexAdd {
        /// The axis.
        axis: usize,
        /// Target indices, one per input slice.
        indices: Arc<[usize]>,
        /// The output's size along `axis`.
        len: usize,
    },
    /// `torch.gather` along `axis`; the index has the output's shape.
    Gather {
        /// The axis.
        axis: usize,
        /// Flat index values.
        index: Arc<[usize]>,
        /// The output shape (the index's).
        shape: Shape,
    },
    /// Adjoint of `Gather`: zeros of `shape` with the input scattered and added along `axis`.
    ScatterAdd {
        /// The axis.
        axis: usize,
        /// Flat index values, of the input's shape.
        index: Arc<[usize]>,
        /// The output shape.
        shape: Shape,
    },
}

op_facts! { IndexOp;
    IndexSelect { axis: 0, indices: Arc::from([0usize]) } => "index_select", DIFFERENTIABLE;
    IndexAdd { axis: 0, indices: Arc::from([0usize]), len: 1 } => "index_add", DIFFERENTIABLE;
    Gather { axis: 0, index: Arc::from([0usize]), shape: smallvec![1] } => "gather", DIFFERENTIABLE;
    ScatterAdd { axis: 0, index: Arc::from([0usize]), shape: smallvec![1] } => "scatter_add", DIFFERENTIABLE;
}

impl IndexOp {
    pub(super) fn infer(&self, x: &[usize]) -> Result<Shape> {
        let name = self.name();
        let axis = match self {
            IndexOp::IndexSelect { axis, .. }
            | IndexOp::IndexAdd { axis, .. }
            | IndexOp::Gather { axis, .. }
            | IndexOp::ScatterAdd { axis, .. } => *axis,
        };
        if axis >= x.len() {
            return Err(Error::AxisOutOfRange { op: name, axis: axis as isize, shape: x.into() });
        }
        match self {
            IndexOp::IndexSelect { indices, .. } => {
                check_range(name, indices, x[axis])?;
                let mut shape = Shape::from_slice(x);
                shape[axis] = indices.len();
                Ok(shape)
            }
            IndexOp::IndexAdd { indices, len, .. } => {
                check_range(name, indices, *len)?;
                if indices.len() != x[axis] {
                    crate::bail!(name, "{} indices for {} slices of shape {x:?}", indices.len(), x[axis]);
                }
                let mut shape = Shape::from_slice(x);
                shape[axis] = *len;
                Ok(shape)
            }
            // the index has the output's shape and reads from `x`
            IndexOp::Gather { index, shape, .. } => {
                check_index_shape(name, axis, index, shape, x)?;
                Ok(shape.clone())
            }
            // the index has the input's shape and writes into the output
            IndexOp::ScatterAdd { index, shape, .. } => {
                check_index_shape(name, axis, index, x, shape)?;
                Ok(shape.clone())
            }
        }
    }

    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        let x = ins[0];
        match self {
            IndexOp::IndexSelect { axis, indices } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                index::index_select(x.data::<T>(), outer, len, inner, indices, out)
            }
            IndexOp::IndexAdd { axis, indices, .. } => {
                out.fill(T::ZERO);
                let (outer, len, inner) = split_at_axis(shape, *axis);
                index::index_add(x.data::<T>(), outer, len, inner, indices, out)
            }
            IndexOp::Gather { axis, index, .. } => {
                index::gather(x.data::<T>(), x.shape, *axis, index, shape, out)
            }
            IndexOp::ScatterAdd { axis, index, .. } => {
                out.fill(T::ZERO);
                index::scatter_add(out, shape, *axis, index, x.shape, x.data::<T>())
            }
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let x = &node.inputs()[0];
        let grad = match self {
            // adjoint of selecting rows: add them back
            IndexOp::IndexSelect { axis, indices } => {
                g.index_add_into(*axis, indices.clone(), x.shape()[*axis])?
            }
            // adjoint of adding rows: select them
            IndexOp::IndexAdd { axis, indices, .. } => g.index_select_checked(*axis, indices.clone())?,
            // adjoint of gather: scatter-add
            IndexOp::Gather { axis, index, .. } => g.scatter_add_into(*axis, index.clone(), x.shape())?,
            // adjoint of scatter-add: gather
            IndexOp::ScatterAdd { axis, index, .. } => g.gather_checked(*axis, index.clone(), x.shape())?,
        };
        Ok(smallvec![Some(grad)])
    }
}

/// `index` (of `index_shape`) addresses `data_shape` along `axis`: same rank, no larger on the
/// other axes, every value in range.
fn check_index_shape(
    op: &'static str,
    axis: usize,
    index: &[usize],
    index_shape: &[usize],
    data_shape: &[usize],
) -> Result<()> {
    if numel(index_shape) != index.len() {
        return Err(Error::DataLength { shape: index_shape.into(), len: index.len() });
    }
    let fits = index_shape.len() == data_shape.len()
        && index_shape.iter().zip(data_shape).enumerate().all(|(d, (&i, &s))| d == axis || i <= s);
    if !fits {
        return Err(Error::ShapeMismatch { op, lhs: data_shape.into(), rhs: index_shape.into() });
    }
    check_range(op, index, data_shape[axis])
}

/// Inside a compiled trace an index list would be frozen into the program and silently reused
/// on every replay: refuse unless the caller declared it constant.
fn check_traceable(op: &'static str) -> Result<()> {
    if !crate::mode::index_lists_allowed() {
        crate::bail!(
            op,
            "an index list inside a compiled step would be a constant of the program, reused on \
             every call; pass class targets as a one-hot tensor input, or wrap indices that truly \
             are constant in `compile::constant_indices`"
        );
    }
    Ok(())
}

fn check_range(op: &'static str, indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, len }),
        None => Ok(()),
    }
}

impl Tensor {
    /// Slices `indices` along `axis` (like `torch.index_select`).
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor> {
        check_traceable("index_select")?;
        let a = normalize_axis("index_select", axis, self.shape())?;
        self.index_select_checked(a, indices.into())
    }

    fn index_select_checked(&self, axis: usize, indices: Arc<[usize]>) -> Result<Tensor> {
        Tensor::record(Op::Index(IndexOp::IndexSelect { axis, indices }), &[self])
    }

    /// `self` plus `source` slices added at `indices` along `axis` (like `torch.index_add`).
    pub fn index_add(&self, axis: isize, indices: &[usize], source: &Tensor) -> Result<Tensor> {
        check_traceable("index_add")?;
        let a = normalize_axis("index_add", axis, self.shape())?;
        check_range("index_add", indices, self.shape()[a])?;
        let mut expected: Shape = self.shape().into();
        expected[a] = indices.len();
        if source.shape() != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                op: "index_add",
                lhs: self.shape().into(),
                rhs: source.shape().into(),
            });
        }
        self.add(&source.index_add_into(a, indices.into(), self.shape()[a])?)
    }

    fn index_add_into(&self, axis: usize, indices: Arc<[usize]>, len: usize) -> Result<Tensor> {
        Tensor::record(Op::Index(IndexOp::IndexAdd { axis, indices, len }), &[self])
    }

    /// Rows of this `[num, dim]` table for each index; the result has shape
    /// `index_shape + [dim]` (an embedding lookup).
    pub fn embedding(&self, indices: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        if self.rank() != 2 {
            crate::bail!("embedding", "the table must be [num_embeddings, dim], got {:?}", self.shape());
        }
        if numel(index_shape) != indices.len() {
            return Err(Error::DataLength { shape: index_shape.into(), len: indices.len() });
        }
        let mut shape: Shape = index_shape.into();
        shape.push(self.shape()[1]);
        self.index_select(0, indices)?.reshape(&shape)
    }

    /// `out[.., j, ..] = self[.., index[.., j, ..], ..]` along `axis` (like `torch.gather`); the
    /// output has `index_shape`.
    pub fn gather(&self, axis: isize, index: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        check_traceable("gather")?;
        let a = normalize_axis("gather", axis, self.shape())?;
        self.gather_checked(a, index.into(), index_shape)
    }

    fn gather_checked(&self, axis: usize, index: Arc<[usize]>, index_shape: &[usize]) -> Result<Tensor> {
        Tensor::record(Op::Index(IndexOp::Gather { axis, index, shape: index_shape.into() }), &[self])
    }

    /// `self` with `source` added at `index` along `axis` (like `torch.scatter_add`); `index`
    /// has the shape of `source`.
    pub fn scatter_add(&self, axis: isize, index: &[usize], source: &Tensor) -> Result<Tensor> {
        check_traceable("scatter_add")?;
        let a = normalize_axis("scatter_add", axis, self.shape())?;
        self.add(&source.scatter_add_into(a, index.into(), self.shape())?)
    }

    fn scatter_add_into(&self, axis: usize, index: Arc<[usize]>, shape: &[usize]) -> Result<Tensor> {
        Tensor::record(Op::Index(IndexOp::ScatterAdd { axis, index, shape: shape.into() }), &[self])
    }
}

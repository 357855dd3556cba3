//! Indexing: index_select / index_add and gather / scatter_add, each pair the other's adjoint.
//!
//! Index lists are validated here (in range, matching shapes) so kernels never see a bad index.

use super::movement::normalize_axis;
use super::{Arg, InputGrads, Op};
use crate::buffer::{compute, Buffer};
use crate::{Error, Result, Tensor};
use graphgrad_ops::{index, numel, split_at_axis, Shape};
use smallvec::smallvec;
use std::sync::Arc;

pub(super) fn forward(op: &Op, inputs: &[Arg<'_>], shape: &Shape) -> Buffer {
    let x = inputs[0];
    compute!(zeroed x.buf.dtype(), numel(shape), |T, out| {
        match op {
            Op::IndexSelect { axis, indices } => {
                let (outer, len, inner) = split_at_axis(x.shape, *axis);
                index::index_select(x.data::<T>(), outer, len, inner, indices, &mut out)
            }
            Op::IndexAdd { axis, indices } => {
                let (outer, len, inner) = split_at_axis(shape, *axis);
                index::index_add(x.data::<T>(), outer, len, inner, indices, &mut out)
            }
            Op::Gather { axis, index } => {
                index::gather(x.data::<T>(), x.shape, *axis, index, shape, &mut out)
            }
            Op::ScatterAdd { axis, index } => {
                index::scatter_add(&mut out, shape, *axis, index, x.shape, x.data::<T>())
            }
            _ => unreachable!("internal invariant: {op} is not an indexing op"),
        }
    })
}

pub(super) fn vjp(node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let x = &node.inputs()[0];
    let grad = match node.op() {
        // adjoint of selecting rows: add them back
        Op::IndexSelect { axis, indices } => g.index_add_into(*axis, indices.clone(), x.shape()[*axis]),
        // adjoint of adding rows: select them
        Op::IndexAdd { axis, indices } => g.index_select_checked(*axis, indices.clone()),
        // adjoint of gather: scatter-add
        Op::Gather { axis, index } => g.scatter_add_into(*axis, index.clone(), x.shape()),
        // adjoint of scatter-add: gather
        Op::ScatterAdd { axis, index } => g.gather_checked(*axis, index.clone(), x.shape()),
        other => unreachable!("internal invariant: {other} is not an indexing op"),
    };
    Ok(smallvec![Some(grad)])
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
        check_range("index_select", indices, self.shape()[a])?;
        Ok(self.index_select_checked(a, indices.into()))
    }

    fn index_select_checked(&self, axis: usize, indices: Arc<[usize]>) -> Tensor {
        let mut shape: Shape = self.shape().into();
        shape[axis] = indices.len();
        Tensor::record(Op::IndexSelect { axis, indices }, &[self], shape)
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
        self.add(&source.index_add_into(a, indices.into(), self.shape()[a]))
    }

    fn index_add_into(&self, axis: usize, indices: Arc<[usize]>, len: usize) -> Tensor {
        let mut shape: Shape = self.shape().into();
        shape[axis] = len;
        Tensor::record(Op::IndexAdd { axis, indices }, &[self], shape)
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

    fn check_index_shape(
        &self,
        op: &'static str,
        axis: usize,
        index: &[usize],
        index_shape: &[usize],
    ) -> Result<()> {
        if numel(index_shape) != index.len() {
            return Err(Error::DataLength { shape: index_shape.into(), len: index.len() });
        }
        let fits = index_shape.len() == self.rank()
            && index_shape.iter().zip(self.shape()).enumerate().all(|(d, (&i, &s))| d == axis || i <= s);
        if !fits {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().into(), rhs: index_shape.into() });
        }
        check_range(op, index, self.shape()[axis])
    }

    /// `out[.., j, ..] = self[.., index[.., j, ..], ..]` along `axis` (like `torch.gather`); the
    /// output has `index_shape`.
    pub fn gather(&self, axis: isize, index: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        check_traceable("gather")?;
        let a = normalize_axis("gather", axis, self.shape())?;
        self.check_index_shape("gather", a, index, index_shape)?;
        Ok(self.gather_checked(a, index.into(), index_shape))
    }

    fn gather_checked(&self, axis: usize, index: Arc<[usize]>, index_shape: &[usize]) -> Tensor {
        Tensor::record(Op::Gather { axis, index }, &[self], index_shape.into())
    }

    /// `self` with `source` added at `index` along `axis` (like `torch.scatter_add`); `index`
    /// has the shape of `source`.
    pub fn scatter_add(&self, axis: isize, index: &[usize], source: &Tensor) -> Result<Tensor> {
        check_traceable("scatter_add")?;
        let a = normalize_axis("scatter_add", axis, self.shape())?;
        self.check_index_shape("scatter_add", a, index, source.shape())?;
        self.add(&source.scatter_add_into(a, index.into(), self.shape()))
    }

    pub(crate) fn scatter_add_into(&self, axis: usize, index: Arc<[usize]>, shape: &[usize]) -> Tensor {
        Tensor::record(Op::ScatterAdd { axis, index }, &[self], shape.into())
    }
}

//! Movement ops: reshape, permute, expand, cat, narrow, pad, and the composites built on them
//! (transpose, squeeze, unsqueeze, flatten, stack, split).
//!
//! Each primitive's backward is another movement (or a sum, for expand): reshape ↔ reshape,
//! permute ↔ inverse permute, narrow ↔ pad, cat → narrows, expand → sum.

use super::{Arg, InputGrads, Op};
use crate::buffer::{compute, Buffer};
use crate::{Error, Result, Tensor};
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::{layout, numel, split_at_axis, Element, Shape};
use smallvec::{smallvec, SmallVec};

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let rank = shape.len() as isize;
    let resolved = if axis < 0 { axis + rank } else { axis };
    if (0..rank).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(Error::AxisOutOfRange { op, axis, shape: shape.into() })
    }
}

/// Sums `g` down to `shape` over the axes that broadcasting expanded.
pub(crate) fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let axes: Shape =
        (0..g.rank()).filter(|&d| d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)).collect();
    g.reduce(ReduceOp::Sum, &axes, true)?.reshape(shape)
}

pub(super) fn forward(op: &Op, inputs: &[Arg<'_>], shape: &Shape) -> Buffer {
    let dtype = inputs[0].buf.dtype();
    if let Op::Reshape = op {
        return inputs[0].buf.clone();
    }
    compute!(dtype, numel(shape), |T, out| {
        let x = inputs[0];
        match op {
            Op::Permute(perm) => layout::permute(x.data::<T>(), x.shape, perm, &mut out),
            Op::Expand => layout::expand(x.data::<T>(), x.shape, shape, &mut out),
            Op::Cat { axis } => {
                let (outer, total, inner) = split_at_axis(shape, *axis);
                let mut start = 0;
                for part in inputs {
                    let n = part.shape[*axis];
                    layout::write_slab(part.data::<T>(), (outer, total, inner), start, n, &mut out);
                    start += n;
                }
            }
            Op::Narrow { axis, start, len } => {
                let dims = split_at_axis(x.shape, *axis);
                layout::narrow(x.data::<T>(), dims, *start, *len, &mut out)
            }
            Op::Pad { pads, value } => {
                layout::pad(x.data::<T>(), x.shape, pads, T::from_f64(*value), &mut out)
            }
            _ => unreachable!("internal invariant: {op} is not a movement op"),
        }
    })
}

pub(super) fn vjp(node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let inputs = node.inputs();
    let x = &inputs[0];
    Ok(match node.op() {
        // reshape back
        Op::Reshape => smallvec![Some(g.reshape(x.shape())?)],
        // apply the inverse permutation
        Op::Permute(perm) => {
            let mut inverse: SmallVec<[usize; 6]> = smallvec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            smallvec![Some(g.permute(&inverse)?)]
        }
        // broadcasting's adjoint is a sum
        Op::Expand => smallvec![Some(sum_to_shape(g, x.shape())?)],
        // each input gets its slab back
        Op::Cat { axis } => {
            let mut start = 0;
            let mut grads = InputGrads::new();
            for part in inputs {
                let n = part.shape()[*axis];
                grads.push(Some(g.narrow(*axis as isize, start, n)?));
                start += n;
            }
            grads
        }
        // zeros outside the slab
        Op::Narrow { axis, start, len } => {
            let mut pads: SmallVec<[(usize, usize); 6]> = smallvec![(0, 0); x.rank()];
            pads[*axis] = (*start, x.shape()[*axis] - start - len);
            smallvec![Some(g.pad(&pads, 0.0)?)]
        }
        // the inner block
        Op::Pad { pads, .. } => {
            let mut inner = g.clone();
            for (axis, &(before, _)) in pads.iter().enumerate() {
                inner = inner.narrow(axis as isize, before, x.shape()[axis])?;
            }
            smallvec![Some(inner)]
        }
        other => unreachable!("internal invariant: {other} is not a movement op"),
    })
}

impl Tensor {
    /// Same data, new shape (one entry may be −1: inferred). Errors when element counts differ.
    pub fn reshape_inferred(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let unknown = shape.iter().filter(|&&d| d < 0).count();
        let bad = || Error::InvalidArgument {
            op: "reshape",
            reason: format!("cannot view shape {:?} as {shape:?}", self.shape()),
        };
        if unknown > 1 || shape.iter().any(|&d| d < -1) {
            return Err(bad());
        }
        let resolved: Shape = shape
            .iter()
            .map(|&d| if d < 0 { self.numel().checked_div(known).unwrap_or(0) } else { d as usize })
            .collect();
        if numel(&resolved) != self.numel() {
            return Err(bad());
        }
        self.reshape(&resolved)
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::ShapeMismatch { op: "reshape", lhs: self.shape().into(), rhs: shape.into() });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Tensor::record(Op::Reshape, &[self], shape.into()))
    }

    /// Collapses all dimensions from `start` on into one (like `torch.flatten(x, start)`).
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        if start > self.rank() {
            return Err(Error::AxisOutOfRange {
                op: "flatten",
                axis: start as isize,
                shape: self.shape().into(),
            });
        }
        let mut shape: Shape = self.shape()[..start].into();
        shape.push(numel(&self.shape()[start..]));
        self.reshape(&shape)
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        let valid = perm.len() == self.rank()
            && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            crate::bail!("permute", "{perm:?} is not a permutation of the axes of shape {:?}", self.shape());
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let shape: Shape = perm.iter().map(|&p| self.shape()[p]).collect();
        Ok(Tensor::record(Op::Permute(perm.into()), &[self], shape))
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_axis("transpose", a, self.shape())?;
        let b = normalize_axis("transpose", b, self.shape())?;
        let mut perm: Shape = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Inserts a size-1 axis at `axis` (`0..=rank`, negative counts from the end).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let at = if axis < 0 { axis + rank + 1 } else { axis };
        if !(0..=rank).contains(&at) {
            return Err(Error::AxisOutOfRange { op: "unsqueeze", axis, shape: self.shape().into() });
        }
        let mut shape: Shape = self.shape().into();
        shape.insert(at as usize, 1);
        self.reshape(&shape)
    }

    /// Removes axis `axis`, which must have size 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("squeeze", axis, self.shape())?;
        if self.shape()[a] != 1 {
            crate::bail!(
                "squeeze",
                "axis {axis} of shape {:?} has size {}, not 1",
                self.shape(),
                self.shape()[a]
            );
        }
        let mut shape: Shape = self.shape().into();
        shape.remove(a);
        self.reshape(&shape)
    }

    /// Broadcasts to `shape` (NumPy rules).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let ok = graphgrad_ops::broadcast_shapes(self.shape(), shape).is_some_and(|s| s.as_slice() == shape);
        if !ok {
            return Err(Error::ShapeMismatch { op: "expand", lhs: self.shape().into(), rhs: shape.into() });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Tensor::record(Op::Expand, &[self], shape.into()))
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    pub fn cat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else { crate::bail!("cat", "needs at least one tensor") };
        let a = normalize_axis("cat", axis, first.shape())?;
        let mut shape: Shape = first.shape().into();
        shape[a] = 0;
        for t in tensors {
            first.same_dtype(t, "cat")?;
            let agrees = t.rank() == first.rank()
                && t.shape().iter().zip(first.shape()).enumerate().all(|(d, (x, y))| d == a || x == y);
            if !agrees {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().into(),
                    rhs: t.shape().into(),
                });
            }
            shape[a] += t.shape()[a];
        }
        let refs: Vec<&Tensor> = tensors.iter().collect();
        Ok(Tensor::record(Op::Cat { axis: a }, &refs, shape))
    }

    /// Joins same-shaped tensors along a new axis.
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let unsqueezed = tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&unsqueezed, axis)
    }

    /// The slice `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = normalize_axis("narrow", axis, self.shape())?;
        if start + len > self.shape()[a] {
            crate::bail!(
                "narrow",
                "range {start}..{} exceeds axis {a} of shape {:?}",
                start + len,
                self.shape()
            );
        }
        if len == self.shape()[a] {
            return Ok(self.clone());
        }
        let mut shape: Shape = self.shape().into();
        shape[a] = len;
        Ok(Tensor::record(Op::Narrow { axis: a, start, len }, &[self], shape))
    }

    /// Splits into consecutive pieces of `size` along `axis` (the last may be smaller).
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Tensor>> {
        let a = normalize_axis("split", axis, self.shape())?;
        if size == 0 {
            crate::bail!("split", "split size must be positive");
        }
        let len = self.shape()[a];
        (0..len).step_by(size).map(|start| self.narrow(a as isize, start, size.min(len - start))).collect()
    }

    /// Pads with `value`: `pads[d] = (before, after)` for each axis `d`.
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        if pads.len() != self.rank() {
            crate::bail!("pad", "{} (before, after) pairs given for shape {:?}", pads.len(), self.shape());
        }
        if pads.iter().all(|&p| p == (0, 0)) {
            return Ok(self.clone());
        }
        let shape: Shape = self.shape().iter().zip(pads).map(|(&s, &(b, a))| s + b + a).collect();
        Ok(Tensor::record(Op::Pad { pads: pads.into(), value }, &[self], shape))
    }
}

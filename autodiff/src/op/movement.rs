//! Movement ops: reshape, permute, expand, cat, narrow, pad, and the composites built on them
//! (transpose, squeeze, unsqueeze, flatten, stack, split).
//!
//! Each primitive's backward is another movement (or a sum, for expand): reshape ↔ reshape,
//! permute ↔ inverse permute, narrow ↔ pad, cat → narrows, expand → sum.

use super::{Arg, Arity, InputGrads, Op, Operand};
use crate::buffer::Storage;
use crate::{Error, Result, Tensor};
use graphgrad_ops::facts::fact::DIFFERENTIABLE;
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::{layout, numel, op_facts, split_at_axis, Shape};
use smallvec::{smallvec, SmallVec};

/// Data movement; reshape and expand name their target shape.
#[derive(Clone, Debug, PartialEq)]
pub enum MovementOp {
    /// Same data, this shape (same element count).
    Reshape(Shape),
    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    Permute(Shape),
    /// Broadcast to this shape (NumPy rules).
    Expand(Shape),
    /// Concatenation along an axis.
    Cat {
        /// The axis.
        axis: usize,
    },
    /// The slice `start..start + len` along an axis.
    Narrow {
        /// The axis.
        axis: usize,
        /// First index kept.
        start: usize,
        /// Number of indices kept.
        len: usize,
    },
    /// Constant padding, `(before, after)` per axis.
    Pad {
        /// Padding per axis.
        pads: SmallVec<[(usize, usize); 6]>,
        /// The fill value.
        value: f64,
    },
}

op_facts! { MovementOp;
    Reshape(smallvec![6]) => "reshape", DIFFERENTIABLE;
    Permute(smallvec![1, 0]) => "permute", DIFFERENTIABLE;
    Expand(smallvec![2, 3]) => "expand", DIFFERENTIABLE;
    Cat { axis: 0 } => "cat", DIFFERENTIABLE;
    Narrow { axis: 0, start: 0, len: 1 } => "narrow", DIFFERENTIABLE;
    Pad { pads: smallvec![(1, 0)], value: 0.0 } => "pad", DIFFERENTIABLE;
}

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

impl MovementOp {
    pub(super) fn arity(&self) -> Arity {
        match self {
            MovementOp::Cat { .. } => Arity::AtLeast(1),
            MovementOp::Reshape(_)
            | MovementOp::Permute(_)
            | MovementOp::Expand(_)
            | MovementOp::Narrow { .. }
            | MovementOp::Pad { .. } => Arity::Exactly(1),
        }
    }

    pub(super) fn infer(&self, ins: &[Operand<'_>]) -> Result<Shape> {
        let name = self.name();
        let x = ins[0].shape;
        let mismatch = |rhs: &[usize]| Error::ShapeMismatch { op: name, lhs: x.to_vec(), rhs: rhs.into() };
        match self {
            MovementOp::Reshape(shape) => {
                if graphgrad_ops::checked_numel(shape) != Some(numel(x)) {
                    return Err(mismatch(shape));
                }
                Ok(shape.clone())
            }
            MovementOp::Permute(perm) => {
                let mut seen = vec![false; x.len()];
                let valid = perm.len() == x.len()
                    && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
                if !valid {
                    crate::bail!(name, "{perm:?} is not a permutation of the axes of shape {x:?}");
                }
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            MovementOp::Expand(shape) => {
                let ok = graphgrad_ops::broadcast_shapes(x, shape).is_some_and(|s| s == *shape);
                if !ok {
                    return Err(mismatch(shape));
                }
                Ok(shape.clone())
            }
            MovementOp::Cat { axis } => {
                if *axis >= x.len() {
                    return Err(Error::AxisOutOfRange { op: name, axis: *axis as isize, shape: x.to_vec() });
                }
                let mut shape = Shape::from_slice(x);
                shape[*axis] = 0;
                for part in ins {
                    let s = part.shape;
                    let agrees = s.len() == x.len()
                        && s.iter().zip(x).enumerate().all(|(d, (a, b))| d == *axis || a == b);
                    if !agrees {
                        return Err(mismatch(s));
                    }
                    shape[*axis] += s[*axis];
                }
                Ok(shape)
            }
            MovementOp::Narrow { axis, start, len } => {
                let fits = *axis < x.len() && start.checked_add(*len).is_some_and(|end| end <= x[*axis]);
                if !fits {
                    let end = start.checked_add(*len).map_or(format!("{start}+{len}"), |e| e.to_string());
                    crate::bail!(name, "range {start}..{end} exceeds axis {axis} of shape {x:?}");
                }
                let mut shape = Shape::from_slice(x);
                shape[*axis] = *len;
                Ok(shape)
            }
            MovementOp::Pad { pads, .. } => {
                if pads.len() != x.len() {
                    crate::bail!(name, "{} (before, after) pairs given for shape {x:?}", pads.len());
                }
                x.iter()
                    .zip(pads)
                    .map(|(&s, &(b, a))| s.checked_add(b).and_then(|v| v.checked_add(a)))
                    .collect::<Option<Shape>>()
                    .ok_or_else(|| Error::InvalidArgument {
                        op: name,
                        reason: format!("padding {pads:?} overflows shape {x:?}"),
                    })
            }
        }
    }

    pub(super) fn forward<T: Storage>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        let x = ins[0];
        match self {
            MovementOp::Reshape(_) => out.copy_from_slice(x.data::<T>()),
            MovementOp::Permute(perm) => layout::permute(x.data::<T>(), x.shape, perm, out),
            MovementOp::Expand(_) => layout::expand(x.data::<T>(), x.shape, shape, out),
            MovementOp::Cat { axis } => {
                let (outer, _, inner) = split_at_axis(shape, *axis);
                let parts: SmallVec<[&[T]; 4]> = ins.iter().map(|part| part.data::<T>()).collect();
                let ns: SmallVec<[usize; 4]> = ins.iter().map(|part| part.shape[*axis]).collect();
                layout::concat(&parts, &ns, (outer, inner), out);
            }
            MovementOp::Narrow { axis, start, len } => {
                let dims = split_at_axis(x.shape, *axis);
                layout::narrow(x.data::<T>(), dims, *start, *len, out)
            }
            MovementOp::Pad { pads, value } => {
                layout::pad(x.data::<T>(), x.shape, pads, T::cast_from_f64(*value), out)
            }
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let inputs = node.inputs();
        let x = &inputs[0];
        Ok(match self {
            // reshape back
            MovementOp::Reshape(_) => smallvec![Some(g.reshape(x.shape())?)],
            // apply the inverse permutation
            MovementOp::Permute(perm) => {
                let mut inverse: SmallVec<[usize; 6]> = smallvec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                smallvec![Some(g.permute(&inverse)?)]
            }
            // broadcasting's adjoint is a sum
            MovementOp::Expand(_) => smallvec![Some(sum_to_shape(g, x.shape())?)],
            // each input gets its slab back
            MovementOp::Cat { axis } => {
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
            MovementOp::Narrow { axis, start, len } => {
                let mut pads: SmallVec<[(usize, usize); 6]> = smallvec![(0, 0); x.rank()];
                pads[*axis] = (*start, x.shape()[*axis] - start - len);
                smallvec![Some(g.pad(&pads, 0.0)?)]
            }
            // the inner block
            MovementOp::Pad { pads, .. } => {
                let mut inner = g.clone();
                for (axis, &(before, _)) in pads.iter().enumerate() {
                    inner = inner.narrow(axis as isize, before, x.shape()[axis])?;
                }
                smallvec![Some(inner)]
            }
        })
    }
}

impl MovementOp {
    /// Data movement is linear: the tangent moves like the value (padding with zeros, missing
    /// tangents of `cat` taken as zeros).
    pub(super) fn jvp(&self, node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let moved = |op: MovementOp, ins: &[&Tensor]| Tensor::record(Op::Movement(op), ins).map(Some);
        match self {
            MovementOp::Cat { .. } => {
                let parts: Vec<Tensor> = node
                    .inputs()
                    .iter()
                    .zip(t)
                    .map(|(x, t)| t.clone().map_or_else(|| Tensor::zeros(x.shape(), x.dtype()), Ok))
                    .collect::<Result<_>>()?;
                moved(self.clone(), &parts.iter().collect::<Vec<_>>())
            }
            MovementOp::Pad { pads, .. } => match &t[0] {
                Some(t) => moved(MovementOp::Pad { pads: pads.clone(), value: 0.0 }, &[t]),
                None => Ok(None),
            },
            MovementOp::Reshape(_)
            | MovementOp::Permute(_)
            | MovementOp::Expand(_)
            | MovementOp::Narrow { .. } => match &t[0] {
                Some(t) => moved(self.clone(), &[t]),
                None => Ok(None),
            },
        }
    }
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
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Tensor::record(Op::Movement(MovementOp::Reshape(Shape::from_slice(shape))), &[self])
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
        if perm.len() == self.rank() && perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        Tensor::record(Op::Movement(MovementOp::Permute(perm.into())), &[self])
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_axis("transpose", a, self.shape())?;
        let b = normalize_axis("transpose", b, self.shape())?;
        let mut perm: Shape = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The transpose of a matrix, PyTorch's `.t()`: a tensor of rank 0 or 1 is returned as it
    /// is; a rank above 2 is an error (use [`transpose`](Self::transpose)).
    pub fn t(&self) -> Result<Tensor> {
        match self.rank() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            _ => crate::bail!("t", "expects a tensor of rank at most 2, got shape {:?}", self.shape()),
        }
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
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Tensor::record(Op::Movement(MovementOp::Expand(shape.into())), &[self])
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    pub fn cat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else { crate::bail!("cat", "needs at least one tensor") };
        let axis = normalize_axis("cat", axis, first.shape())?;
        let refs: Vec<&Tensor> = tensors.iter().collect();
        Tensor::record(Op::Movement(MovementOp::Cat { axis }), &refs)
    }

    /// Joins same-shaped tensors along a new axis.
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let stacked =
            || Tensor::cat(&tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<Vec<_>>>()?, axis);
        stacked().map_err(|e| e.called_as("stack"))
    }

    /// The slice `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let axis = normalize_axis("narrow", axis, self.shape())?;
        if start == 0 && len == self.shape()[axis] {
            return Ok(self.clone());
        }
        Tensor::record(Op::Movement(MovementOp::Narrow { axis, start, len }), &[self])
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
        if pads.iter().all(|&p| p == (0, 0)) && pads.len() == self.rank() {
            return Ok(self.clone());
        }
        Tensor::record(Op::Movement(MovementOp::Pad { pads: pads.into(), value }), &[self])
    }
}

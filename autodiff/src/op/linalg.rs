//! Matrix products: batched, broadcasting `matmul` over the last two axes, with operands that
//! may be stored transposed (so the backward pass never materialises a transpose).
//!
//! Backward of C = op(A)·op(B): dA = g·op(B)ᵀ and dB = op(A)ᵀ·g, expressed as matmuls with
//! transpose flags, then summed over broadcast batch axes.

use super::movement::sum_to_shape;
use super::{Arg, InputGrads, Op};
use crate::buffer::Elem;
use crate::{Error, Result, Tensor};
use graphgrad_ops::gemm::{batched_gemm, Gemm};
use graphgrad_ops::{broadcast_shapes, checked_numel, layout, numel, Shape};
use smallvec::smallvec;

/// (rows, cols) of an operand as used in the product.
fn dims(shape: &[usize], transposed: bool) -> (usize, usize) {
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if transposed {
        (c, r)
    } else {
        (r, c)
    }
}

/// The operand's data laid out for every batch of `out_batch`, and its batch stride.
fn batch_operand<'a, T: crate::Elem>(
    x: Arg<'a>,
    out_batch: &[usize],
    owned: &'a mut Vec<T>,
) -> (&'a [T], usize) {
    let data = x.data::<T>();
    let rank = x.shape.len();
    let (batch, matrix) = x.shape.split_at(rank - 2);
    let per = numel(matrix);
    if numel(batch) == numel(out_batch) {
        (data, per)
    } else if numel(batch) == 1 {
        (data, 0)
    } else {
        // Partial broadcast: materialise the operand for every batch.
        let mut full: Shape = out_batch.into();
        full.extend_from_slice(matrix);
        *owned = vec![T::ZERO; numel(&full)];
        layout::expand(data, x.shape, &full, owned);
        (owned, per)
    }
}

/// `[.., m, k]·[.., k, n] → [.., m, n]` (after the transpose flags), batch axes broadcast.
pub(super) fn infer(trans_a: bool, trans_b: bool, a: &[usize], b: &[usize]) -> Result<Shape> {
    let mismatch = || Error::ShapeMismatch { op: "matmul", lhs: a.into(), rhs: b.into() };
    if a.len() < 2 || b.len() < 2 {
        return Err(mismatch());
    }
    let (m, k) = dims(a, trans_a);
    let (k2, n) = dims(b, trans_b);
    if k != k2 {
        return Err(mismatch());
    }
    let mut shape = broadcast_shapes(&a[..a.len() - 2], &b[..b.len() - 2]).ok_or_else(mismatch)?;
    shape.extend_from_slice(&[m, n]);
    Ok(shape)
}

pub(super) fn forward<T: Elem>(
    trans_a: bool,
    trans_b: bool,
    ins: &[Arg<'_>],
    shape: &[usize],
    out: &mut [T],
) {
    let (a, b) = (ins[0], ins[1]);
    let (m, k) = dims(a.shape, trans_a);
    let n = dims(b.shape, trans_b).1;
    let out_batch = &shape[..shape.len() - 2];
    let g = Gemm { m, n, k, trans_a, trans_b, accumulate: false };
    let (mut a_owned, mut b_owned) = (Vec::new(), Vec::new());
    let (a_data, a_stride) = batch_operand::<T>(a, out_batch, &mut a_owned);
    let (b_data, b_stride) = batch_operand::<T>(b, out_batch, &mut b_owned);
    batched_gemm(&g, numel(out_batch), a_data, a_stride, b_data, b_stride, out);
}

/// Backward of C = op(A)·op(B).
pub(super) fn vjp(trans_a: bool, trans_b: bool, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let (a, b) = (&node.inputs()[0], &node.inputs()[1]);
    let ga = if a.requires_grad() {
        // dA = g·op(B)ᵀ, or its transpose op(B)·gᵀ when A is stored transposed
        let grad =
            if trans_a { b.matmul_with(g, trans_b, true)? } else { g.matmul_with(b, false, !trans_b)? };
        Some(sum_to_shape(&grad, a.shape())?)
    } else {
        None
    };
    let gb = if b.requires_grad() {
        // dB = op(A)ᵀ·g, or its transpose gᵀ·op(A) when B is stored transposed
        let grad =
            if trans_b { g.matmul_with(a, true, trans_a)? } else { a.matmul_with(g, !trans_a, false)? };
        Some(sum_to_shape(&grad, b.shape())?)
    } else {
        None
    };
    Ok(smallvec![ga, gb])
}

impl Tensor {
    /// Matrix product with PyTorch's rules: 1-d operands are promoted (and the added axis
    /// removed), leading axes are batch axes and broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        match (self.rank(), other.rank()) {
            (0, _) | (_, 0) => Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().into(),
                rhs: other.shape().into(),
            }),
            (1, 1) => self.unsqueeze(0)?.matmul_with(&other.unsqueeze(1)?, false, false)?.reshape(&[]),
            (1, _) => self.unsqueeze(0)?.matmul_with(other, false, false)?.squeeze(-2),
            (_, 1) => self.matmul_with(&other.unsqueeze(1)?, false, false)?.squeeze(-1),
            _ => self.matmul_with(other, false, false),
        }
    }

    /// `op(self)·op(other)` for operands of rank ≥ 2, where `op` transposes the last two axes
    /// of an operand whose flag is set (without copying it).
    pub fn matmul_with(&self, other: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        let shape = infer(trans_a, trans_b, self.shape(), other.shape())?;
        // [..., m, k]·[k, n]: fold the batch into the rows, so the product (and the weight
        // gradient) is one large GEMM instead of a batch of small ones and a sum. (With k = 0
        // the rows are counted from the other dimensions, whose product may not fit.)
        let (rows, k) = self.shape().split_at(self.rank().saturating_sub(1));
        if let (true, Some(rows)) = (other.rank() == 2 && self.rank() > 2 && !trans_a, checked_numel(rows)) {
            return self.reshape(&[rows, k[0]])?.matmul_with(other, false, trans_b)?.reshape(&shape);
        }
        Tensor::record(Op::MatMul { trans_a, trans_b }, &[self, other])
    }
}

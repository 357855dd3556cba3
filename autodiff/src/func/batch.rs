//! Batching rules: each op of a recording made on one sample, replayed on a batch. Batched
//! values carry the batch at axis 0; an unbatched operand is the same for every sample. One
//! exhaustive match over the op catalogue, so a new op does not compile until it has a rule.
//!
//! Elementwise ops broadcast (a batched operand gets size-1 axes after the batch axis so it
//! lines up with the output's rank); axis arguments shift by one; matrix products broadcast
//! their batch axes, so a batched operand times a shared one is one GEMM and two batched
//! operands one batched GEMM; convolution and pooling fold the batch into their image axis.
//! What has no batched form (a convolution with per-sample weights, its weight gradient per
//! sample, random draws from a batched state) runs once per sample and is stacked.

use crate::op::{ConvOp, IndexOp, MovementOp, NormOp, PoolOp};
use crate::{Op, Result, Tensor};
use graphgrad_ops::Shape;
use smallvec::SmallVec;

/// An operand of a replayed op: batched (batch at axis 0) or the same for every sample.
#[derive(Clone)]
pub(super) struct Arg {
    pub value: Tensor,
    pub batched: bool,
}

/// `[size] ++ shape`.
fn with_batch(size: usize, shape: &[usize]) -> Shape {
    let mut s: Shape = smallvec::smallvec![size];
    s.extend_from_slice(shape);
    s
}

/// A batched operand with size-1 axes inserted after the batch axis, up to `rank` sample axes
/// (so it broadcasts like its sample did); an unbatched one as it is.
fn lift(arg: &Arg, rank: usize) -> Result<Tensor> {
    let v = &arg.value;
    if !arg.batched || v.rank() > rank {
        return Ok(v.clone());
    }
    let mut shape: Shape = smallvec::smallvec![v.shape()[0]];
    shape.extend(std::iter::repeat_n(1, rank - (v.rank() - 1)));
    shape.extend_from_slice(&v.shape()[1..]);
    v.reshape(&shape)
}

/// The operand with a batch axis, copied for every sample when it has none.
fn materialize(arg: &Arg, size: usize) -> Result<Tensor> {
    if arg.batched {
        return Ok(arg.value.clone());
    }
    arg.value.unsqueeze(0)?.expand(&with_batch(size, arg.value.shape()))
}

/// An index of the sample shape `[n]` along `axis` of the data, batched as `[size, n]`, as a
/// gather/scatter index of the batched `shape` (`[size] ++ sample shape`).
fn spread_index(index: &Tensor, axis: usize, shape: &[usize]) -> Result<Tensor> {
    let mut aligned: Shape = smallvec::smallvec![1; shape.len()];
    aligned[0] = shape[0];
    aligned[axis + 1] = index.shape()[1];
    index.reshape(&aligned)?.expand(shape)
}

fn record(op: Op, operands: &[&Tensor]) -> Result<Tensor> {
    Tensor::record(op, operands)
}

/// `node`, recorded on one sample, applied to `args` (its operands on the batch of `size`):
/// the batched value, batch at axis 0.
pub(super) fn rule(node: &Tensor, args: &[Arg], size: usize) -> Result<Tensor> {
    let out = with_batch(size, node.shape());
    let rank = node.rank();
    let first = &args[0].value;
    let shift = |axes: &[usize]| -> Shape { axes.iter().map(|a| a + 1).collect() };
    match node.op() {
        // leaves have no operands, so never reach a rule
        Op::Leaf => Ok(node.clone()),
        // elementwise on one operand: the batch is one more axis
        Op::Cast(_) | Op::StopGradient | Op::Unary(_) => record(node.op().clone(), &[first]),
        // broadcasting: a batched operand lines up with the output's rank
        Op::Binary(_) | Op::Where => {
            let lifted = args.iter().map(|a| lift(a, rank)).collect::<Result<Vec<_>>>()?;
            let refs: SmallVec<[&Tensor; 3]> = lifted.iter().collect();
            record(node.op().clone(), &refs)
        }
        Op::Reduce { op, axes, keepdim } => {
            record(Op::Reduce { op: *op, axes: shift(axes), keepdim: *keepdim }, &[first])
        }
        // batch axes broadcast: one GEMM for [B, m, k]·[k, n], a batched one for two batches
        Op::MatMul { trans_a, trans_b } => {
            let (a, b) = (lift(&args[0], rank)?, lift(&args[1], rank)?);
            a.matmul_with(&b, *trans_a, *trans_b)
        }
        Op::Movement(m) => movement(m, args, size, &out),
        Op::Index(i) => index(i, args, size, &out),
        Op::Norm(n) => {
            let ins = args.iter().map(|a| materialize(a, size)).collect::<Result<Vec<_>>>()?;
            let refs: SmallVec<[&Tensor; 3]> = ins.iter().collect();
            let op = match n {
                NormOp::Softmax { axis } => NormOp::Softmax { axis: axis + 1 },
                NormOp::LogSoftmax { axis } => NormOp::LogSoftmax { axis: axis + 1 },
                NormOp::SoftmaxBackward { axis } => NormOp::SoftmaxBackward { axis: axis + 1 },
                NormOp::LogSoftmaxBackward { axis } => NormOp::LogSoftmaxBackward { axis: axis + 1 },
                // over the last `cols` elements: the batch is outside them
                NormOp::LayerNorm { .. } | NormOp::LayerNormBackward { .. } => n.clone(),
            };
            record(Op::Norm(op), &refs)
        }
        Op::Conv(c) => {
            // images of every sample in one convolution, when only the images are batched
            let folded = match *c {
                ConvOp::Conv2d(mut geo) if !args[1].batched => {
                    geo.batch *= size;
                    Some(ConvOp::Conv2d(geo))
                }
                ConvOp::Conv2dBackwardInput(mut geo) if !args[1].batched => {
                    geo.batch *= size;
                    Some(ConvOp::Conv2dBackwardInput(geo))
                }
                _ => None,
            };
            match folded {
                Some(op) => {
                    let x = fold(first)?;
                    record(Op::Conv(op), &[&x, &args[1].value])?.reshape(&out)
                }
                None => per_sample(node, args, size),
            }
        }
        Op::Pool(p) => {
            let ins = args.iter().map(|a| fold(&materialize(a, size)?)).collect::<Result<Vec<_>>>()?;
            let refs: SmallVec<[&Tensor; 3]> = ins.iter().collect();
            let scaled = |mut geo: graphgrad_ops::pool::Pool2dGeometry| {
                geo.batch *= size;
                geo
            };
            let op = match *p {
                PoolOp::MaxPool2dIndices(geo) => PoolOp::MaxPool2dIndices(scaled(geo)),
                PoolOp::MaxPool2d(geo) => PoolOp::MaxPool2d(scaled(geo)),
                PoolOp::MaxPool2dBackward(geo) => PoolOp::MaxPool2dBackward(scaled(geo)),
                PoolOp::AvgPool2d(geo) => PoolOp::AvgPool2d(scaled(geo)),
                PoolOp::AvgPool2dBackward(geo) => PoolOp::AvgPool2dBackward(scaled(geo)),
            };
            record(Op::Pool(op), &refs)?.reshape(&out)
        }
        Op::Random(_) => per_sample(node, args, size),
        // the segment's function, batched
        Op::Checkpoint(segment) => {
            let batched: Vec<Option<Tensor>> =
                args.iter().map(|a| materialize(a, size).map(Some)).collect::<Result<_>>()?;
            let f = |xs: &[Tensor]| segment.call(xs);
            let outputs = super::vmap::batched_call(&f, node.inputs(), &batched, size)?;
            Ok(outputs[segment.output_index()].clone())
        }
    }
}

/// `[B, N, ...]` as `[B·N, ...]`.
fn fold(x: &Tensor) -> Result<Tensor> {
    let mut shape: Shape = smallvec::smallvec![x.shape()[0] * x.shape()[1]];
    shape.extend_from_slice(&x.shape()[2..]);
    x.reshape(&shape)
}

fn movement(m: &MovementOp, args: &[Arg], size: usize, out: &[usize]) -> Result<Tensor> {
    let x = &args[0].value;
    let op = match m {
        MovementOp::Reshape(_) => return x.reshape(out),
        MovementOp::Permute(perm) => {
            let mut p: Shape = smallvec::smallvec![0];
            p.extend(perm.iter().map(|a| a + 1));
            MovementOp::Permute(p)
        }
        MovementOp::Expand(shape) => return lift(&args[0], shape.len())?.expand(out),
        MovementOp::Cat { axis } => {
            let parts = args.iter().map(|a| materialize(a, size)).collect::<Result<Vec<_>>>()?;
            return record(
                Op::Movement(MovementOp::Cat { axis: axis + 1 }),
                &parts.iter().collect::<Vec<_>>(),
            );
        }
        MovementOp::Narrow { axis, start, len } => {
            MovementOp::Narrow { axis: axis + 1, start: *start, len: *len }
        }
        MovementOp::Pad { pads, value } => {
            let mut p = pads.clone();
            p.insert(0, (0, 0));
            MovementOp::Pad { pads: p, value: *value }
        }
    };
    record(Op::Movement(op), &[x])
}

fn index(i: &IndexOp, args: &[Arg], size: usize, out: &[usize]) -> Result<Tensor> {
    let (data, idx) = (&args[0], &args[1]);
    let op = match (i, idx.batched) {
        // shared indices: the same op one axis further in
        (IndexOp::IndexSelect { axis }, false) => IndexOp::IndexSelect { axis: axis + 1 },
        (IndexOp::IndexAdd { axis, len }, false) => IndexOp::IndexAdd { axis: axis + 1, len: *len },
        // per-sample indices: a gather (scatter) with the index spread over the other axes
        (IndexOp::IndexSelect { axis }, true) => {
            let index = spread_index(&idx.value, *axis, out)?;
            return record(
                Op::Index(IndexOp::Gather { axis: axis + 1 }),
                &[&materialize(data, size)?, &index],
            );
        }
        (IndexOp::IndexAdd { axis, .. }, true) => {
            let source = materialize(data, size)?;
            let index = spread_index(&idx.value, *axis, source.shape())?;
            let op = IndexOp::ScatterAdd { axis: axis + 1, shape: out.into() };
            return record(Op::Index(op), &[&source, &index]);
        }
        (IndexOp::Gather { axis }, _) => IndexOp::Gather { axis: axis + 1 },
        (IndexOp::ScatterAdd { axis, .. }, _) => IndexOp::ScatterAdd { axis: axis + 1, shape: out.into() },
    };
    let index = if matches!(op, IndexOp::Gather { .. } | IndexOp::ScatterAdd { .. }) {
        materialize(idx, size)?
    } else {
        idx.value.clone()
    };
    let data = if matches!(op, IndexOp::Gather { .. } | IndexOp::ScatterAdd { .. }) {
        materialize(data, size)?
    } else {
        data.value.clone()
    };
    record(Op::Index(op), &[&data, &index])
}

/// The op once per sample, stacked: for ops without a batched form.
fn per_sample(node: &Tensor, args: &[Arg], size: usize) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(size);
    for b in 0..size {
        let ins = args
            .iter()
            .map(|a| if a.batched { a.value.narrow(0, b, 1)?.squeeze(0) } else { Ok(a.value.clone()) })
            .collect::<Result<Vec<_>>>()?;
        outs.push(record(node.op().clone(), &ins.iter().collect::<SmallVec<[&Tensor; 3]>>())?);
    }
    Tensor::stack(&outs, 0)
}

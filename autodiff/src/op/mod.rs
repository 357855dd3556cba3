//! The op catalogue: one plain-data enum whose families are enums of their own, each defined in
//! one file with its four rules side by side:
//!
//! - `infer`: the shape rule (operand shapes → output shape, or an error naming the op and the
//!   shapes), used when an op is recorded and by the IR verifier after every compiler pass;
//! - `forward`: the kernel call, writing into an output buffer the caller provides (the buffer
//!   pool in eager mode, a planned slot in a compiled program);
//! - `vjp`: the vector-Jacobian product, written with tensor ops so it differentiates again;
//! - `jvp`: the tangent rule (Jacobian-vector product, forward mode), also written with tensor
//!   ops, so forward and reverse mode compose in any order;
//! - its facts table (`op_facts!`): names, flags and `all()`.
//!
//! This file only dispatches, and every match here and in the family files is exhaustive: a new
//! variant is a compile error wherever it must be handled. Every op except `Cast` keeps one
//! element type, checked here before the family's shape rule runs.

mod conv;
mod elementwise;
mod index;
mod linalg;
mod movement;
mod norm;
mod pool;
mod random;
mod reduce;

pub use conv::ConvOp;
pub use index::{IndexOp, IntoIndices};
pub use movement::MovementOp;
pub use norm::NormOp;
pub use pool::{Pool2dOptions, PoolOp};
pub use random::{Generator, RandomOp};

use crate::buffer::{with_storage, Buffer, Elem, Storage};
use crate::{Error, Result, Tensor};
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::facts::fact;
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::unary::UnaryOp;
use graphgrad_ops::{numel, DType, Shape};
use smallvec::SmallVec;
use std::fmt;

/// Gradients for each input of a node, in input order (`None`: no gradient flows).
pub(crate) type InputGrads = SmallVec<[Option<Tensor>; 3]>;

/// Shape and element type of one value: what a shape rule takes and returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueInfo {
    /// Dimension sizes.
    pub shape: Shape,
    /// Element type.
    pub dtype: DType,
}

impl ValueInfo {
    /// Bytes the value occupies.
    pub fn bytes(&self) -> usize {
        numel(&self.shape) * self.dtype.size()
    }

    /// This value as an operand of a shape rule.
    pub fn operand(&self) -> Operand<'_> {
        Operand { shape: &self.shape, dtype: self.dtype }
    }
}

/// An operand as a shape rule sees it: borrowed, so recording an op copies no shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand<'a> {
    /// Dimension sizes.
    pub shape: &'a [usize],
    /// Element type.
    pub dtype: DType,
}

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exactly(usize),
    /// This many or more (`cat`).
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` operands fit.
    pub fn admits(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

/// What produced a tensor. Arguments are inline plain data; index lists are shared slices.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Data or a parameter: no inputs.
    Leaf,
    /// Conversion to another element type.
    Cast(DType),
    /// The operand's value with no gradient flowing back (`detach` inside a compiled step).
    StopGradient,
    /// Elementwise function of one input.
    Unary(UnaryOp),
    /// Elementwise function of two inputs, with broadcasting.
    Binary(BinaryOp),
    /// `cond != 0 ? a : b` with broadcasting; inputs (cond, a, b).
    Where,
    /// Reduction over `axes` (sorted); the output keeps reduced axes as size 1 when `keepdim`.
    Reduce {
        /// Which reduction.
        op: ReduceOp,
        /// Reduced axes, sorted.
        axes: Shape,
        /// Whether reduced axes stay as size 1.
        keepdim: bool,
    },
    /// Batched, broadcasting matrix product of the last two axes; operands may be stored
    /// transposed.
    MatMul {
        /// The first operand is stored transposed.
        trans_a: bool,
        /// The second operand is stored transposed.
        trans_b: bool,
    },
    /// Data movement: reshape, permute, expand, cat, narrow, pad.
    Movement(MovementOp),
    /// Indexing by index lists: index_select, gather and their adjoints.
    Index(IndexOp),
    /// Softmax, log-softmax, layer norm and their fused backward ops.
    Norm(NormOp),
    /// Convolution and its two adjoints.
    Conv(ConvOp),
    /// Max and average pooling and their adjoints.
    Pool(PoolOp),
    /// Random samples from, and the advance of, a generator state.
    Random(RandomOp),
    /// One output of a checkpointed segment (`checkpoint`), recomputed by its gradient rule.
    Checkpoint(crate::checkpoint::Segment),
}

impl Op {
    /// The op's name, as errors, logs and the coverage tests call it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Cast(_) => "cast",
            Op::StopGradient => "stop_gradient",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Reduce { op, .. } => op.name(),
            Op::MatMul { .. } => "matmul",
            Op::Movement(m) => m.name(),
            Op::Index(i) => i.name(),
            Op::Norm(n) => n.name(),
            Op::Conv(c) => c.name(),
            Op::Pool(p) => p.name(),
            Op::Random(r) => r.name(),
            Op::Checkpoint(_) => "checkpoint",
        }
    }

    /// False for ops whose output carries no gradient (leaves, comparisons, `sign`, max-pool's
    /// indices): their outputs never require grad.
    pub fn is_differentiable(&self) -> bool {
        let facts = match self {
            Op::Leaf | Op::StopGradient => fact::NONE,
            Op::Cast(_) | Op::Where | Op::MatMul { .. } | Op::Checkpoint(_) => fact::DIFFERENTIABLE,
            Op::Unary(u) => u.facts(),
            Op::Binary(b) => b.facts(),
            Op::Reduce { op, .. } => op.facts(),
            Op::Movement(m) => m.facts(),
            Op::Index(i) => i.facts(),
            Op::Norm(n) => n.facts(),
            Op::Conv(c) => c.facts(),
            Op::Pool(p) => p.facts(),
            Op::Random(r) => r.facts(),
        };
        facts & fact::DIFFERENTIABLE != 0
    }

    /// True for ops whose output is their operand's storage under another shape (`reshape`):
    /// eager mode shares the buffer and the memory planner gives it the operand's place.
    pub fn is_view(&self) -> bool {
        matches!(self, Op::Movement(MovementOp::Reshape(_)) | Op::StopGradient)
    }

    /// How many operands the op takes.
    pub fn arity(&self) -> Arity {
        match self {
            Op::Leaf => Arity::Exactly(0),
            Op::Cast(_) | Op::StopGradient | Op::Unary(_) | Op::Reduce { .. } => Arity::Exactly(1),
            Op::Binary(_) | Op::MatMul { .. } => Arity::Exactly(2),
            Op::Where => Arity::Exactly(3),
            Op::Movement(m) => m.arity(),
            Op::Index(_) => Arity::Exactly(2),
            Op::Norm(n) => n.arity(),
            Op::Conv(_) => Arity::Exactly(2),
            Op::Pool(p) => p.arity(),
            Op::Random(_) => Arity::Exactly(1),
            Op::Checkpoint(_) => Arity::AtLeast(0),
        }
    }

    /// The shape-and-dtype rule: the output of this op on operands `ins`, or an error naming
    /// the op and the offending shapes.
    pub fn infer(&self, ins: &[Operand<'_>]) -> Result<ValueInfo> {
        let out = self.infer_unchecked(ins)?;
        // an output of its first operand's shape and type fits, as that operand does
        let grows = ins.first().is_none_or(|x| x.shape != out.shape.as_slice() || x.dtype != out.dtype);
        if grows && crate::buffer::addressable_len(&out.shape, out.dtype).is_none() {
            return Err(Error::TooLarge { op: self.name(), shape: out.shape.to_vec(), dtype: out.dtype });
        }
        Ok(out)
    }

    /// [`Op::infer`] before the output's size is checked.
    fn infer_unchecked(&self, ins: &[Operand<'_>]) -> Result<ValueInfo> {
        if !self.arity().admits(ins.len()) {
            crate::bail!(self.name(), "takes {:?} operands, got {}", self.arity(), ins.len());
        }
        let Some(first) = ins.first() else {
            crate::bail!(self.name(), "a leaf is not computed from operands")
        };
        let shape = match self {
            // the one op that changes the element type
            Op::Cast(dtype) => return Ok(ValueInfo { shape: Shape::from_slice(first.shape), dtype: *dtype }),
            Op::StopGradient => {
                return Ok(ValueInfo { shape: Shape::from_slice(first.shape), dtype: first.dtype })
            }
            Op::Checkpoint(_) => {
                crate::bail!("checkpoint", "a checkpointed output is made by `checkpoint`, not recorded")
            }
            // a generator state in, samples or a state out
            Op::Random(r) => {
                let (dtype, shape) = r.infer(ins[0])?;
                return Ok(ValueInfo { shape, dtype });
            }
            // data and an i64 index
            Op::Index(i) => {
                let (dtype, shape) = i.infer(ins[0], ins[1])?;
                return Ok(ValueInfo { shape, dtype });
            }
            _ => {
                if let Some(other) = ins.iter().find(|v| v.dtype != first.dtype) {
                    return Err(Error::DTypeMismatch { op: self.name(), lhs: first.dtype, rhs: other.dtype });
                }
                // integers are moved, never computed on
                if !first.dtype.is_float() && !matches!(self, Op::Movement(_)) {
                    crate::bail!(
                        self.name(),
                        "needs a float tensor, got {} of shape {:?} (convert it with `to_dtype`)",
                        first.dtype,
                        first.shape
                    );
                }
                self.infer_shape(ins)?
            }
        };
        Ok(ValueInfo { shape, dtype: first.dtype })
    }

    /// The family's shape rule, on operands of one element type.
    fn infer_shape(&self, ins: &[Operand<'_>]) -> Result<Shape> {
        let first = ins[0].shape;
        Ok(match self {
            Op::Leaf | Op::Cast(_) | Op::StopGradient | Op::Unary(_) => Shape::from_slice(first),
            Op::Binary(_) | Op::Where => elementwise::infer_broadcast(self.name(), ins)?,
            Op::Reduce { axes, keepdim, .. } => reduce::infer(axes, *keepdim, first)?,
            Op::MatMul { trans_a, trans_b } => linalg::infer(*trans_a, *trans_b, first, ins[1].shape)?,
            Op::Movement(m) => m.infer(ins)?,
            Op::Index(_) | Op::Random(_) | Op::Checkpoint(_) => {
                unreachable!("internal invariant: index, random and checkpoint ops have their own rule")
            }
            Op::Norm(n) => n.infer(ins)?,
            Op::Conv(c) => c.infer(first, ins[1].shape)?,
            Op::Pool(p) => p.infer(ins)?,
        })
    }

    /// Evaluates the op on checked operands into `out`, the output of `shape`, which may hold
    /// stale values (every kernel overwrites or clears it).
    pub(crate) fn forward<T: Elem>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        match self {
            Op::Leaf => {}
            Op::Cast(_) | Op::StopGradient | Op::Movement(_) => self.forward_moves(ins, shape, out),
            Op::Unary(u) => elementwise::unary_forward(*u, ins, out),
            Op::Binary(b) => elementwise::binary_forward(*b, ins, shape, out),
            Op::Where => elementwise::where_forward(ins, shape, out),
            Op::Reduce { op, axes, .. } => reduce::forward(*op, axes, ins, out),
            Op::MatMul { trans_a, trans_b } => linalg::forward(*trans_a, *trans_b, ins, shape, out),
            Op::Index(i) => i.forward(ins, shape, out),
            Op::Norm(n) => n.forward(ins, shape, out),
            Op::Conv(c) => c.forward(ins, out),
            Op::Pool(p) => p.forward(ins, out),
            Op::Random(r) => r.forward(ins, out),
            Op::Checkpoint(_) => {
                unreachable!("internal invariant: a compiled step traces the segment itself")
            }
        }
    }

    /// The kernels that run on every element type (integers included): casts and data
    /// movement.
    pub(crate) fn forward_moves<T: Storage>(&self, ins: &[Arg<'_>], shape: &[usize], out: &mut [T]) {
        match self {
            Op::Cast(_) => with_storage!(ins[0].buf.dtype(), S => {
                for (o, &x) in out.iter_mut().zip(ins[0].data::<S>()) {
                    *o = T::cast_from_f64(x.cast_to_f64());
                }
            }),
            Op::StopGradient => out.copy_from_slice(ins[0].data::<T>()),
            Op::Movement(m) => m.forward(ins, shape, out),
            Op::Index(i) => i.forward_moves(ins, shape, out),
            Op::Random(r) => r.forward_state(ins, out),
            other => unreachable!("internal invariant: the shape rule refuses {other} on integers"),
        }
    }

    /// Whether the op's operand values must be checked before its kernel runs (indices).
    pub(crate) fn checks_values(&self) -> bool {
        matches!(self, Op::Index(_))
    }

    /// Checks operand values the shape rule cannot see (every index within its axis).
    pub(crate) fn check_values(&self, ins: &[Arg<'_>], out_shape: &[usize]) -> Result<()> {
        match self {
            Op::Index(i) => i.check_values(ins, out_shape),
            _ => Ok(()),
        }
    }

    /// Evaluates the op into a new buffer of `out`'s shape and dtype (views share their
    /// operand's storage).
    /// An allocation the system refuses is [`Error::TooLarge`], naming this op.
    pub(crate) fn evaluate(&self, ins: &[Arg<'_>], out: &ValueInfo) -> Result<Buffer> {
        if self.is_view() {
            return Ok(ins[0].buf.clone());
        }
        if out.dtype == DType::I64 {
            let mut values = crate::buffer::filled(self.name(), &out.shape, 0i64)?;
            self.forward_moves(ins, &out.shape, &mut values);
            return Ok(Buffer::from(values));
        }
        crate::buffer::with_dtype!(out.dtype, T => {
            let too_large = || Error::TooLarge { op: self.name(), shape: out.shape.to_vec(), dtype: out.dtype };
            let mut values: Vec<T> = crate::pool::take(numel(&out.shape)).ok_or_else(too_large)?;
            self.forward(ins, &out.shape, &mut values);
            Ok(T::wrap(values))
        })
    }

    /// Every op once, each family's variants with its table's example parameters.
    pub fn all() -> Vec<Op> {
        let mut all = vec![
            Op::Leaf,
            Op::Cast(DType::F64),
            Op::StopGradient,
            Op::Where,
            Op::MatMul { trans_a: false, trans_b: false },
        ];
        all.extend(UnaryOp::all().into_iter().map(Op::Unary));
        all.extend(BinaryOp::all().into_iter().map(Op::Binary));
        all.extend(ReduceOp::all().into_iter().map(|op| Op::Reduce {
            op,
            axes: Shape::new(),
            keepdim: false,
        }));
        all.extend(MovementOp::all().into_iter().map(Op::Movement));
        all.extend(IndexOp::all().into_iter().map(Op::Index));
        all.extend(NormOp::all().into_iter().map(Op::Norm));
        all.extend(ConvOp::all().into_iter().map(Op::Conv));
        all.extend(PoolOp::all().into_iter().map(Op::Pool));
        all.extend(RandomOp::all().into_iter().map(Op::Random));
        all.push(Op::Checkpoint(crate::checkpoint::Segment::example()));
        all
    }
}

/// Gradients of `node`'s inputs given the gradient `g` of its output, built from tensor ops
/// (so they can be differentiated again).
pub(crate) fn vjp(node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let inputs = node.inputs();
    match node.op() {
        Op::Leaf => Ok(InputGrads::new()),
        Op::StopGradient => Ok(smallvec::smallvec![None]),
        // d/dx cast(x) = cast back
        Op::Cast(_) => Ok(smallvec::smallvec![Some(g.to_dtype(inputs[0].dtype()))]),
        Op::Unary(u) => Ok(smallvec::smallvec![Some(elementwise::unary_vjp(*u, &inputs[0], node, g)?)]),
        Op::Binary(b) => elementwise::binary_vjp(*b, &inputs[0], &inputs[1], node, g),
        Op::Where => elementwise::where_vjp(inputs, g),
        Op::Reduce { op, axes, .. } => reduce::vjp(*op, axes, node, g),
        Op::MatMul { trans_a, trans_b } => linalg::vjp(*trans_a, *trans_b, node, g),
        Op::Movement(m) => m.vjp(node, g),
        Op::Index(i) => i.vjp(node, g),
        Op::Norm(n) => n.vjp(node, g),
        Op::Conv(c) => c.vjp(node, g),
        Op::Pool(p) => p.vjp(node, g),
        Op::Random(_) => Ok(smallvec::smallvec![None]),
        Op::Checkpoint(segment) => segment.vjp(node, g),
    }
}

/// The tangent of `node`'s output given its inputs' tangents `t` (in input order, `None`:
/// zero), built from tensor ops (so it can be differentiated, or pushed forward, again).
/// `None`: the output's tangent is zero.
pub(crate) fn jvp(node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    if !node.op().is_differentiable() || t.iter().all(Option::is_none) {
        return Ok(None);
    }
    let inputs = node.inputs();
    match node.op() {
        // no inputs, or no tangent flows
        Op::Leaf | Op::StopGradient | Op::Random(_) => Ok(None),
        // linear in the first operand: the same op on its tangent
        Op::Cast(_) | Op::Index(_) | Op::Pool(_) => linear_jvp(node, t),
        Op::Unary(u) => match &t[0] {
            Some(t) => elementwise::unary_jvp(*u, &inputs[0], node, t).map(Some),
            None => Ok(None),
        },
        Op::Binary(b) => {
            elementwise::binary_jvp(*b, &inputs[0], &inputs[1], node, t[0].as_ref(), t[1].as_ref())
        }
        Op::Where => elementwise::where_jvp(inputs, node, t),
        Op::Reduce { op, axes, keepdim } => match &t[0] {
            Some(t) => reduce::jvp(*op, axes, *keepdim, node, t).map(Some),
            None => Ok(None),
        },
        // bilinear: d(A·B) = dA·B + A·dB, and the same for a convolution and its adjoints
        Op::MatMul { .. } | Op::Conv(_) => bilinear_jvp(node, t),
        Op::Movement(m) => m.jvp(node, t),
        Op::Norm(n) => n.jvp(node, t),
        Op::Checkpoint(segment) => segment.jvp(node, t),
    }
}

/// The op applied to its first operand's tangent, the other operands (indices) as they are.
fn linear_jvp(node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    let Some(t0) = &t[0] else { return Ok(None) };
    let mut operands: SmallVec<[&Tensor; 3]> = smallvec::smallvec![t0];
    operands.extend(node.inputs()[1..].iter());
    Tensor::record(node.op().clone(), &operands).map(Some)
}

/// op(da, b) + op(a, db) for an op bilinear in its two operands.
fn bilinear_jvp(node: &Tensor, t: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    let (a, b) = (&node.inputs()[0], &node.inputs()[1]);
    let op = || node.op().clone();
    let from_a = t[0].as_ref().map(|ta| Tensor::record(op(), &[ta, b])).transpose()?;
    let from_b = t[1].as_ref().map(|tb| Tensor::record(op(), &[a, tb])).transpose()?;
    Ok(match (from_a, from_b) {
        (Some(x), Some(y)) => Some(x.add(&y)?),
        (x, y) => x.or(y),
    })
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Unary(u) => write!(f, "{u}"),
            Op::Cast(d) => write!(f, "cast({d})"),
            Op::Reduce { op, axes, .. } => write!(f, "{op}{axes:?}"),
            Op::MatMul { trans_a, trans_b } => {
                write!(f, "matmul{}{}", if *trans_a { "_ta" } else { "" }, if *trans_b { "_tb" } else { "" })
            }
            Op::Movement(MovementOp::Permute(p)) => write!(f, "permute{p:?}"),
            Op::Movement(MovementOp::Narrow { axis, start, len }) => {
                write!(f, "narrow({axis}, {start}, {len})")
            }
            other => f.write_str(other.name()),
        }
    }
}

/// One evaluated input of an op: its buffer and shape.
#[derive(Clone, Copy)]
pub(crate) struct Arg<'a> {
    pub buf: &'a Buffer,
    pub shape: &'a [usize],
}

impl<'a> Arg<'a> {
    /// The typed slice (dtype checked when the op was recorded).
    pub fn data<T: Storage>(&self) -> &'a [T] {
        crate::buffer::typed(self.buf)
    }
}

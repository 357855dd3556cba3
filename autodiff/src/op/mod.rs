//! The op catalogue: one plain-data enum, with each family's shape rules, kernel dispatch and
//! vector-Jacobian products in its own file. This file only dispatches, with exhaustive
//! matches, so a new variant that lacks a forward or backward rule does not compile.
//!
//! Adding an op: a variant here, its rule in the family file, its kernel in `graphgrad-ops`,
//! and a row in the gradcheck table (`tests/gradcheck_ops.rs`).

mod conv;
mod elementwise;
mod index;
mod linalg;
mod movement;
mod norm;
mod reduce;

pub use conv::{Conv2dOptions, ConvTranspose2dOptions};

use crate::buffer::{Buffer, Elem};
use crate::{Result, Tensor};
use graphgrad_ops::binary::BinaryOp;
use graphgrad_ops::conv::Conv2dGeometry;
use graphgrad_ops::pool::Pool2dGeometry;
use graphgrad_ops::reduce::ReduceOp;
use graphgrad_ops::unary::UnaryOp;
use graphgrad_ops::{DType, Shape};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// Gradients for each input of a node, in input order (`None`: no gradient flows).
pub(crate) type InputGrads = SmallVec<[Option<Tensor>; 3]>;

/// What produced a tensor. Arguments are inline plain data; index lists are shared slices.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Data or a parameter: no inputs.
    Leaf,
    /// Conversion to another element type.
    Cast(DType),
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
    /// Same data, new shape.
    Reshape,
    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    Permute(Shape),
    /// Broadcast to the output shape.
    Expand,
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
    /// Rows `indices` along `axis`.
    IndexSelect {
        /// The axis.
        axis: usize,
        /// The selected indices.
        indices: Arc<[usize]>,
    },
    /// Adjoint of `IndexSelect`: zeros of the output shape with input slices added at `indices`.
    IndexAdd {
        /// The axis.
        axis: usize,
        /// Target indices, one per input slice.
        indices: Arc<[usize]>,
    },
    /// `torch.gather` along `axis`; the index has the output's shape.
    Gather {
        /// The axis.
        axis: usize,
        /// Flat index values.
        index: Arc<[usize]>,
    },
    /// Adjoint of `Gather`: zeros of the output shape with the input scattered and added.
    ScatterAdd {
        /// The axis.
        axis: usize,
        /// Flat index values, of the input's shape.
        index: Arc<[usize]>,
    },
    /// Softmax along an axis.
    Softmax {
        /// The axis.
        axis: usize,
    },
    /// Log-softmax along an axis.
    LogSoftmax {
        /// The axis.
        axis: usize,
    },
    /// Normalisation over the last `cols` elements (no affine part).
    LayerNorm {
        /// Elements per normalised group.
        cols: usize,
        /// Added to the variance.
        eps: f64,
    },
    /// Softmax's backward in one pass, `y ⊙ (g − Σ g⊙y)` along `axis`; inputs (y, g).
    SoftmaxBackward {
        /// The axis.
        axis: usize,
    },
    /// Log-softmax's backward in one pass, `g − e^y·Σ g` along `axis`; inputs (y, g).
    LogSoftmaxBackward {
        /// The axis.
        axis: usize,
    },
    /// Layer norm's backward in one pass, `rstd·(g − mean g − x̂·mean(g⊙x̂))` over the last
    /// `cols` elements; inputs (x, g).
    LayerNormBackward {
        /// Elements per normalised group.
        cols: usize,
        /// Added to the variance.
        eps: f64,
    },
    /// 2-d convolution; inputs (x, weight).
    Conv2d(Conv2dGeometry),
    /// The input gradient of a convolution, also the transposed convolution; inputs (dy, weight).
    Conv2dBackwardInput(Conv2dGeometry),
    /// The weight gradient of a convolution; inputs (x, dy).
    Conv2dBackwardWeight(Conv2dGeometry),
    /// Max pooling; `argmax` holds the winning input position within each (n, c) plane.
    MaxPool2d {
        /// Window geometry.
        geometry: Pool2dGeometry,
        /// Argmax per output element.
        argmax: Arc<[usize]>,
    },
    /// Average pooling (padding counted).
    AvgPool2d(Pool2dGeometry),
    /// The adjoint of average pooling.
    AvgPool2dBackward(Pool2dGeometry),
}

impl Op {
    /// False for ops whose output carries no gradient (comparisons): their outputs never
    /// require grad.
    pub fn is_differentiable(&self) -> bool {
        !matches!(
            self,
            Op::Leaf
                | Op::Binary(
                    BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
                )
                | Op::Unary(UnaryOp::Sign)
        )
    }

    /// The op's family name, used by coverage tests and the compiler's logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Cast(_) => "cast",
            Op::Unary(_) => "unary",
            Op::Binary(_) => "binary",
            Op::Where => "where",
            Op::Reduce { .. } => "reduce",
            Op::MatMul { .. } => "matmul",
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Expand => "expand",
            Op::Cat { .. } => "cat",
            Op::Narrow { .. } => "narrow",
            Op::Pad { .. } => "pad",
            Op::IndexSelect { .. } => "index_select",
            Op::IndexAdd { .. } => "index_add",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::Softmax { .. } => "softmax",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::SoftmaxBackward { .. } => "softmax_backward",
            Op::LogSoftmaxBackward { .. } => "log_softmax_backward",
            Op::LayerNormBackward { .. } => "layer_norm_backward",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dBackwardInput(_) => "conv2d_backward_input",
            Op::Conv2dBackwardWeight(_) => "conv2d_backward_weight",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::AvgPool2dBackward(_) => "avg_pool2d_backward",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Unary(u) => write!(f, "{u}"),
            Op::Binary(b) => write!(f, "{b}"),
            Op::Cast(d) => write!(f, "cast({d})"),
            Op::Reduce { op, axes, .. } => write!(f, "{op}{axes:?}"),
            Op::MatMul { trans_a, trans_b } => {
                write!(f, "matmul{}{}", if *trans_a { "_ta" } else { "" }, if *trans_b { "_tb" } else { "" })
            }
            Op::Permute(p) => write!(f, "permute{p:?}"),
            Op::Narrow { axis, start, len } => write!(f, "narrow({axis}, {start}, {len})"),
            other => f.write_str(other.kind()),
        }
    }
}

/// Evaluates `op` on input buffers (dtypes and shapes already checked) into a new buffer.
pub(crate) fn forward(op: &Op, inputs: &[Arg<'_>], shape: &Shape) -> Buffer {
    match op {
        Op::Leaf => unreachable!("internal invariant: leaves are not evaluated"),
        Op::Cast(dtype) => Buffer::from_f64(*dtype, &inputs[0].buf.to_f64_vec()),
        Op::Unary(_) | Op::Binary(_) | Op::Where => elementwise::forward(op, inputs, shape),
        Op::Reduce { .. } => reduce::forward(op, inputs, shape),
        Op::MatMul { .. } => linalg::forward(op, inputs, shape),
        Op::Reshape | Op::Permute(_) | Op::Expand | Op::Cat { .. } | Op::Narrow { .. } | Op::Pad { .. } => {
            movement::forward(op, inputs, shape)
        }
        Op::IndexSelect { .. } | Op::IndexAdd { .. } | Op::Gather { .. } | Op::ScatterAdd { .. } => {
            index::forward(op, inputs, shape)
        }
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::SoftmaxBackward { .. }
        | Op::LogSoftmaxBackward { .. }
        | Op::LayerNormBackward { .. } => norm::forward(op, inputs, shape),
        Op::Conv2d(_)
        | Op::Conv2dBackwardInput(_)
        | Op::Conv2dBackwardWeight(_)
        | Op::MaxPool2d { .. }
        | Op::AvgPool2d(_)
        | Op::AvgPool2dBackward(_) => conv::forward(op, inputs, shape),
    }
}

/// Gradients of `node`'s inputs given the gradient `g` of its output, built from tensor ops
/// (so they can be differentiated again).
pub(crate) fn vjp(node: &Tensor, g: &Tensor) -> Result<InputGrads> {
    let inputs = node.inputs();
    match node.op() {
        Op::Leaf => Ok(InputGrads::new()),
        // d/dx cast(x) = cast back
        Op::Cast(_) => Ok(smallvec::smallvec![Some(g.to_dtype(inputs[0].dtype()))]),
        Op::Unary(_) | Op::Binary(_) | Op::Where => elementwise::vjp(node, g),
        Op::Reduce { .. } => reduce::vjp(node, g),
        Op::MatMul { .. } => linalg::vjp(node, g),
        Op::Reshape | Op::Permute(_) | Op::Expand | Op::Cat { .. } | Op::Narrow { .. } | Op::Pad { .. } => {
            movement::vjp(node, g)
        }
        Op::IndexSelect { .. } | Op::IndexAdd { .. } | Op::Gather { .. } | Op::ScatterAdd { .. } => {
            index::vjp(node, g)
        }
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::SoftmaxBackward { .. }
        | Op::LogSoftmaxBackward { .. }
        | Op::LayerNormBackward { .. } => norm::vjp(node, g),
        Op::Conv2d(_)
        | Op::Conv2dBackwardInput(_)
        | Op::Conv2dBackwardWeight(_)
        | Op::MaxPool2d { .. }
        | Op::AvgPool2d(_)
        | Op::AvgPool2dBackward(_) => conv::vjp(node, g),
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
    pub fn data<T: Elem>(&self) -> &'a [T] {
        crate::buffer::typed(self.buf)
    }
}

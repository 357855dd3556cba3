//! Pooling: max pooling (its indices an output of their own, as PyTorch's
//! `max_pool2d_with_indices`) and average pooling.
//!
//! Max pooling is two ops: `MaxPool2dIndices(x)` finds each window's winning cell, and
//! `MaxPool2d(x, indices)` reads the values there. Its backward `MaxPool2dBackward(g, indices)`
//! scatter-adds the gradient at the indices, and `MaxPool2d` and `MaxPool2dBackward` are each
//! other's adjoint, so max pooling differentiates to any order and compiles like any other op.
//! Average pooling pairs with its adjoint the same way.

use super::{Arg, Arity, InputGrads, Op, Operand};
use crate::buffer::Elem;
use crate::{Error, IntoPair, Result, Tensor};
use graphgrad_ops::facts::fact::{DIFFERENTIABLE, NONE};
use graphgrad_ops::pool::{self, Pool2dGeometry};
use graphgrad_ops::{op_facts, DType, Shape};
use smallvec::smallvec;

/// Pooling ops over `[N, C, H, W]` windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PoolOp {
    /// The flat index within its `(n, c)` plane of each window's maximum (−1 for a window
    /// wholly in the padding); no gradient.
    MaxPool2dIndices(Pool2dGeometry),
    /// Max pooling's values read at given indices; inputs (x, indices).
    MaxPool2d(Pool2dGeometry),
    /// Max pooling's backward: the gradient scatter-added at the indices; inputs (g, indices).
    MaxPool2dBackward(Pool2dGeometry),
    /// Average pooling (padding counted).
    AvgPool2d(Pool2dGeometry),
    /// The adjoint of average pooling.
    AvgPool2dBackward(Pool2dGeometry),
}

op_facts! { PoolOp;
    MaxPool2dIndices(EXAMPLE) => "max_pool2d_indices", NONE;
    MaxPool2d(EXAMPLE) => "max_pool2d", DIFFERENTIABLE;
    MaxPool2dBackward(EXAMPLE) => "max_pool2d_backward", DIFFERENTIABLE;
    AvgPool2d(EXAMPLE) => "avg_pool2d", DIFFERENTIABLE;
    AvgPool2dBackward(EXAMPLE) => "avg_pool2d_backward", DIFFERENTIABLE;
}

/// Stride, padding and modes of a pooling window, as PyTorch's `max_pool2d` / `avg_pool2d`
/// take them: floor mode and padding counted in the average unless set otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Step between windows, (height, width).
    pub stride: (usize, usize),
    /// Padding on each side, (height, width), at most half the kernel.
    pub padding: (usize, usize),
    /// Round the output size up: a last, partial window where the stride leaves cells over,
    /// if it starts inside the input or the left padding (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
    /// Whether average pooling divides by the padding cells of a window too (PyTorch's
    /// `count_include_pad`); max pooling ignores it.
    pub count_include_pad: bool,
}

impl Pool2dOptions {
    /// `stride` and `padding` (one number or a pair each), floor mode, padding counted in
    /// averages (PyTorch's defaults).
    pub fn new(stride: impl IntoPair, padding: impl IntoPair) -> Pool2dOptions {
        let (stride, padding) = (stride.into_pair(), padding.into_pair());
        Pool2dOptions { stride, padding, ceil_mode: false, count_include_pad: true }
    }

    /// Sets ceil mode.
    pub fn with_ceil_mode(mut self, ceil_mode: bool) -> Pool2dOptions {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets whether averages count padding cells.
    pub fn with_count_include_pad(mut self, count_include_pad: bool) -> Pool2dOptions {
        self.count_include_pad = count_include_pad;
        self
    }
}

/// The geometry in the facts table: 2×2 windows with stride 2 over a 1×1×4×4 input.
const EXAMPLE: Pool2dGeometry = Pool2dGeometry {
    batch: 1,
    channels: 1,
    in_h: 4,
    in_w: 4,
    kernel: (2, 2),
    stride: (2, 2),
    padding: (0, 0),
    ceil_mode: false,
    count_include_pad: true,
};

/// The largest plane whose cell indices an f32 holds exactly.
const F32_EXACT_INDICES: usize = 1 << 24;

fn input_shape(geo: &Pool2dGeometry) -> Shape {
    smallvec![geo.batch, geo.channels, geo.in_h, geo.in_w]
}

fn output_shape(geo: &Pool2dGeometry) -> Shape {
    smallvec![geo.batch, geo.channels, geo.out_h(), geo.out_w()]
}

impl PoolOp {
    pub(super) fn arity(&self) -> Arity {
        match self {
            PoolOp::MaxPool2dIndices(_) | PoolOp::AvgPool2d(_) | PoolOp::AvgPool2dBackward(_) => {
                Arity::Exactly(1)
            }
            PoolOp::MaxPool2d(_) | PoolOp::MaxPool2dBackward(_) => Arity::Exactly(2),
        }
    }

    /// Operands of the shapes the geometry names (indices: the output's shape).
    pub(super) fn infer(&self, ins: &[Operand<'_>]) -> Result<Shape> {
        let name = self.name();
        let (expected, out): (Shape, Shape) = match self {
            PoolOp::MaxPool2dIndices(geo) | PoolOp::MaxPool2d(geo) | PoolOp::AvgPool2d(geo) => {
                (input_shape(geo), output_shape(geo))
            }
            PoolOp::MaxPool2dBackward(geo) | PoolOp::AvgPool2dBackward(geo) => {
                (output_shape(geo), input_shape(geo))
            }
        };
        let x = ins[0].shape;
        if x != expected.as_slice() {
            return Err(Error::ShapeMismatch { op: name, lhs: x.to_vec(), rhs: expected.to_vec() });
        }
        match self {
            PoolOp::MaxPool2dIndices(geo) => {
                if ins[0].dtype == DType::F32 && geo.in_h * geo.in_w > F32_EXACT_INDICES {
                    crate::bail!(
                        name,
                        "a {}×{} plane has more cells than f32 indices hold exactly (2^24); pool in f64",
                        geo.in_h,
                        geo.in_w
                    );
                }
            }
            PoolOp::MaxPool2d(geo) | PoolOp::MaxPool2dBackward(geo) => {
                let indices = output_shape(geo);
                if ins[1].shape != indices.as_slice() {
                    return Err(Error::ShapeMismatch {
                        op: name,
                        lhs: indices.to_vec(),
                        rhs: ins[1].shape.to_vec(),
                    });
                }
            }
            PoolOp::AvgPool2d(_) | PoolOp::AvgPool2dBackward(_) => {}
        }
        Ok(out)
    }

    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], out: &mut [T]) {
        let x = ins[0].data::<T>();
        match self {
            PoolOp::MaxPool2dIndices(geo) => pool::max_pool2d_indices(geo, x, out),
            PoolOp::MaxPool2d(geo) => pool::max_pool2d_gather(geo, x, ins[1].data::<T>(), out),
            PoolOp::MaxPool2dBackward(geo) => pool::max_pool2d_backward(geo, x, ins[1].data::<T>(), out),
            PoolOp::AvgPool2d(geo) => pool::avg_pool2d(geo, x, out),
            PoolOp::AvgPool2dBackward(geo) => pool::avg_pool2d_backward(geo, x, out),
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let inputs = node.inputs();
        let pool = |op: PoolOp, ins: &[&Tensor]| Tensor::record(Op::Pool(op), ins);
        Ok(match *self {
            // the indices are piecewise constant
            PoolOp::MaxPool2dIndices(_) => smallvec![None],
            // scatter the gradient back to each window's winner
            PoolOp::MaxPool2d(geo) => {
                smallvec![Some(pool(PoolOp::MaxPool2dBackward(geo), &[g, &inputs[1]])?), None]
            }
            // the adjoint of the scatter is the gather at the same indices
            PoolOp::MaxPool2dBackward(geo) => {
                smallvec![Some(pool(PoolOp::MaxPool2d(geo), &[g, &inputs[1]])?), None]
            }
            // average pooling and its adjoint are each other's VJP
            PoolOp::AvgPool2d(geo) => smallvec![Some(pool(PoolOp::AvgPool2dBackward(geo), &[g])?)],
            PoolOp::AvgPool2dBackward(geo) => smallvec![Some(pool(PoolOp::AvgPool2d(geo), &[g])?)],
        })
    }
}

impl Tensor {
    fn pool_geometry(
        &self,
        op: &'static str,
        kernel: (usize, usize),
        options: &Pool2dOptions,
    ) -> Result<Pool2dGeometry> {
        let Pool2dOptions { stride, padding, ceil_mode, count_include_pad } = *options;
        if self.rank() != 4 {
            crate::bail!(op, "expects [N, C, H, W], got {:?}", self.shape());
        }
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            crate::bail!(op, "kernel {kernel:?} and stride {stride:?} must be positive");
        }
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            crate::bail!(op, "padding {padding:?} must be at most half the kernel {kernel:?}");
        }
        let s = self.shape();
        let geo = Pool2dGeometry {
            batch: s[0],
            channels: s[1],
            in_h: s[2],
            in_w: s[3],
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        };
        if !geo.is_representable() {
            crate::bail!(
                op,
                "kernel {kernel:?} and padding {padding:?} give sizes beyond what memory can address"
            );
        }
        if geo.out_h() == 0 || geo.out_w() == 0 {
            crate::bail!(op, "kernel {kernel:?} is larger than the padded input {:?}", &s[2..]);
        }
        Ok(geo)
    }

    /// Max pooling over `kernel` windows of `[N, C, H, W]` (padding acts as −∞); sizes are one
    /// number or a (height, width) pair, as PyTorch's.
    pub fn max_pool2d(
        &self,
        kernel: impl IntoPair,
        stride: impl IntoPair,
        padding: impl IntoPair,
    ) -> Result<Tensor> {
        Ok(self.max_pool2d_with(kernel, &Pool2dOptions::new(stride, padding))?.0)
    }

    /// Max pooling that also returns, for each output, the flat index within its `(n, c)` input
    /// plane of the cell it took (like `torch.nn.functional.max_pool2d_with_indices`). The
    /// indices have this tensor's element type (exact integers; in f32 a plane may hold at
    /// most 2^24 cells) and carry no gradient.
    pub fn max_pool2d_with_indices(
        &self,
        kernel: impl IntoPair,
        stride: impl IntoPair,
        padding: impl IntoPair,
    ) -> Result<(Tensor, Tensor)> {
        self.max_pool2d_with(kernel, &Pool2dOptions::new(stride, padding))
    }

    /// [`max_pool2d_with_indices`](Self::max_pool2d_with_indices) with every option (ceil mode).
    pub fn max_pool2d_with(
        &self,
        kernel: impl IntoPair,
        options: &Pool2dOptions,
    ) -> Result<(Tensor, Tensor)> {
        let geo = self.pool_geometry("max_pool2d", kernel.into_pair(), options)?;
        let indices = Tensor::record(Op::Pool(PoolOp::MaxPool2dIndices(geo)), &[self])?;
        let values = Tensor::record(Op::Pool(PoolOp::MaxPool2d(geo)), &[self, &indices])?;
        Ok((values, indices))
    }

    /// Average pooling over `kernel` windows of `[N, C, H, W]` (padding counts as zeros).
    pub fn avg_pool2d(
        &self,
        kernel: impl IntoPair,
        stride: impl IntoPair,
        padding: impl IntoPair,
    ) -> Result<Tensor> {
        self.avg_pool2d_with(kernel, &Pool2dOptions::new(stride, padding))
    }

    /// [`avg_pool2d`](Self::avg_pool2d) with every option (ceil mode, padding left out of the
    /// divisor).
    pub fn avg_pool2d_with(&self, kernel: impl IntoPair, options: &Pool2dOptions) -> Result<Tensor> {
        let geo = self.pool_geometry("avg_pool2d", kernel.into_pair(), options)?;
        Tensor::record(Op::Pool(PoolOp::AvgPool2d(geo)), &[self])
    }
}

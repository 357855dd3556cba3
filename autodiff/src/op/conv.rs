//! Convolution: conv1d/conv2d and transposed conv2d.
//!
//! Three primitives cover convolution: `Conv2d(x, w)`, its input adjoint
//! `Conv2dBackwardInput(dy, w)` (which is also the transposed convolution) and its weight
//! adjoint `Conv2dBackwardWeight(x, dy)`. The three are bilinear and each one's VJP is made of
//! the other two, so convolutions differentiate to any order.

use super::{Arg, InputGrads, Op};
use crate::buffer::Elem;
use crate::{Error, Result, Tensor};
use graphgrad_ops::conv::{self, Conv2dGeometry, ConvOptions};
use graphgrad_ops::facts::fact::DIFFERENTIABLE;
use graphgrad_ops::gemm::Epilogue;
use graphgrad_ops::{op_facts, Shape};
use smallvec::smallvec;

/// Convolution and its two adjoints; each one's VJP is made of the other two.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConvOp {
    /// 2-d convolution; inputs (x, weight).
    Conv2d(Conv2dGeometry),
    /// The input gradient of a convolution, also the transposed convolution; inputs (dy, weight).
    Conv2dBackwardInput(Conv2dGeometry),
    /// The weight gradient of a convolution; inputs (x, dy).
    Conv2dBackwardWeight(Conv2dGeometry),
}

op_facts! { ConvOp;
    Conv2d(EXAMPLE) => "conv2d", DIFFERENTIABLE;
    Conv2dBackwardInput(EXAMPLE) => "conv2d_backward_input", DIFFERENTIABLE;
    Conv2dBackwardWeight(EXAMPLE) => "conv2d_backward_weight", DIFFERENTIABLE;
}

/// The geometry in the facts table: a 3×3 kernel over a 1×1×4×4 input.
const EXAMPLE: Conv2dGeometry = Conv2dGeometry {
    batch: 1,
    in_channels: 1,
    out_channels: 1,
    in_h: 4,
    in_w: 4,
    kernel_h: 3,
    kernel_w: 3,
    options: ConvOptions::DEFAULT,
};

impl ConvOp {
    /// Both operands must have the shapes the geometry names.
    pub(super) fn infer(&self, a: &[usize], b: &[usize]) -> Result<Shape> {
        let (expect_a, expect_b, out) = match self {
            ConvOp::Conv2d(geo) => (x_shape(geo), w_shape(geo), y_shape(geo)),
            ConvOp::Conv2dBackwardInput(geo) => (y_shape(geo), w_shape(geo), x_shape(geo)),
            ConvOp::Conv2dBackwardWeight(geo) => (x_shape(geo), y_shape(geo), w_shape(geo)),
        };
        if a != expect_a.as_slice() || b != expect_b.as_slice() {
            return Err(Error::ShapeMismatch { op: self.name(), lhs: a.into(), rhs: b.into() });
        }
        Ok(out)
    }

    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], out: &mut [T]) {
        let (a, b) = (ins[0].data::<T>(), ins[1].data::<T>());
        match self {
            ConvOp::Conv2d(geo) => conv::conv2d(geo, a, b, &Epilogue::default(), out),
            ConvOp::Conv2dBackwardInput(geo) => conv::conv2d_backward_input(geo, a, b, out),
            ConvOp::Conv2dBackwardWeight(geo) => conv::conv2d_backward_weight(geo, a, b, out),
        }
    }

    pub(super) fn vjp(&self, node: &Tensor, g: &Tensor) -> Result<InputGrads> {
        let inputs = node.inputs();
        let wants = |i: usize| inputs[i].requires_grad();
        let (a, b) = (&inputs[0], &inputs[1]);
        Ok(match *self {
            // y = conv(x, w): dx = conv_bi(g, w), dw = conv_bw(x, g)
            ConvOp::Conv2d(geo) => {
                smallvec![
                    wants(0).then(|| conv_bi(geo, g, b)).transpose()?,
                    wants(1).then(|| conv_bw(geo, a, g)).transpose()?
                ]
            }
            // y = conv_bi(dy, w) = conv(·, w)ᵀ dy: d dy = conv(g, w), dw = conv_bw(g, dy)
            ConvOp::Conv2dBackwardInput(geo) => {
                smallvec![
                    wants(0).then(|| conv_fwd(geo, g, b)).transpose()?,
                    wants(1).then(|| conv_bw(geo, g, a)).transpose()?
                ]
            }
            // y = conv_bw(x, dy): dx = conv_bi(dy, g), d dy = conv(x, g)
            ConvOp::Conv2dBackwardWeight(geo) => {
                smallvec![
                    wants(0).then(|| conv_bi(geo, b, g)).transpose()?,
                    wants(1).then(|| conv_fwd(geo, a, g)).transpose()?
                ]
            }
        })
    }
}

fn x_shape(geo: &Conv2dGeometry) -> Shape {
    smallvec![geo.batch, geo.in_channels, geo.in_h, geo.in_w]
}

fn w_shape(geo: &Conv2dGeometry) -> Shape {
    smallvec![geo.out_channels, geo.in_channels / geo.options.groups, geo.kernel_h, geo.kernel_w]
}

fn y_shape(geo: &Conv2dGeometry) -> Shape {
    smallvec![geo.batch, geo.out_channels, geo.out_h(), geo.out_w()]
}

fn conv_fwd(geo: Conv2dGeometry, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Tensor::record(Op::Conv(ConvOp::Conv2d(geo)), &[x, w])
}

fn conv_bi(geo: Conv2dGeometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    Tensor::record(Op::Conv(ConvOp::Conv2dBackwardInput(geo)), &[dy, w])
}

fn conv_bw(geo: Conv2dGeometry, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    Tensor::record(Op::Conv(ConvOp::Conv2dBackwardWeight(geo)), &[x, dy])
}

/// Checks a convolution's operands and returns its geometry. `in_hw` is the spatial input size
/// and `w` the weight in OIHW layout.
fn geometry(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    in_hw: (usize, usize),
    o: &ConvOptions,
) -> Result<Conv2dGeometry> {
    x.same_dtype(w, op)?;
    let mismatch = || Error::ShapeMismatch { op, lhs: x.shape().into(), rhs: w.shape().into() };
    if x.rank() != 4 || w.rank() != 4 {
        return Err(mismatch());
    }
    let positive = [o.stride.0, o.stride.1, o.dilation.0, o.dilation.1, o.groups].iter().all(|&v| v > 0);
    if !positive {
        crate::bail!(op, "stride, dilation and groups must be positive, got {o:?}");
    }
    let (out_c, in_per_group, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let Some(in_c) = in_per_group.checked_mul(o.groups) else {
        crate::bail!(op, "{in_per_group} channels per group times {} groups overflows", o.groups);
    };
    if out_c % o.groups != 0 {
        crate::bail!(op, "{out_c} output channels do not divide into {} groups", o.groups);
    }
    let geo = Conv2dGeometry {
        batch: x.shape()[0],
        in_channels: in_c,
        out_channels: out_c,
        in_h: in_hw.0,
        in_w: in_hw.1,
        kernel_h: kh,
        kernel_w: kw,
        // The kernels never read it; zero keeps one program per convolution.
        options: ConvOptions { output_padding: (0, 0), ..*o },
    };
    if !geo.is_representable() {
        crate::bail!(
            op,
            "input {}×{} with kernel {kh}×{kw} and {o:?} gives sizes beyond what memory can address",
            in_hw.0,
            in_hw.1
        );
    }
    let fits = |size: usize, pad: usize, k: usize, d: usize| {
        graphgrad_ops::checked_window_len(size, k, 1, pad, d).is_some_and(|n| n > 0)
    };
    if kh == 0
        || kw == 0
        || !fits(in_hw.0, o.padding.0, kh, o.dilation.0)
        || !fits(in_hw.1, o.padding.1, kw, o.dilation.1)
    {
        crate::bail!(
            op,
            "kernel {kh}×{kw} (dilation {:?}) does not fit input {}×{} with padding {:?}",
            o.dilation,
            in_hw.0,
            in_hw.1,
            o.padding
        );
    }
    Ok(geo)
}

fn add_channel_bias(
    y: Tensor,
    bias: Option<&Tensor>,
    op: &'static str,
    spatial_dims: usize,
) -> Result<Tensor> {
    let Some(b) = bias else { return Ok(y) };
    let channels = y.shape()[1];
    if b.shape() != [channels] {
        return Err(Error::ShapeMismatch { op, lhs: y.shape().into(), rhs: b.shape().into() });
    }
    let mut shape: Shape = smallvec![1, channels];
    shape.extend(std::iter::repeat_n(1, spatial_dims));
    y.add(&b.reshape(&shape)?)
}

impl Tensor {
    /// 2-d convolution of `[N, C, H, W]` by `weight` `[O, C/groups, kh, kw]`, plus `bias` `[O]`
    /// (PyTorch's `conv2d`; `output_padding` must be 0).
    ///
    /// ```
    /// use graphgrad_autodiff::{ConvOptions, Tensor};
    /// let x = Tensor::from_vec((1..=16).map(f64::from).collect(), &[1, 1, 4, 4])?;
    /// let w = Tensor::from_vec(vec![1.0f64; 4], &[1, 1, 2, 2])?;
    /// let y = x.conv2d(&w, None, ConvOptions::default().stride(2))?; // sums of 2×2 blocks
    /// assert_eq!(y.to_vec::<f64>()?, [14.0, 22.0, 46.0, 54.0]);
    /// # Ok::<(), graphgrad_autodiff::Error>(())
    /// ```
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, options: ConvOptions) -> Result<Tensor> {
        self.conv2d_as("conv2d", weight, bias, options)
    }

    /// [`Tensor::conv2d`] whose errors name `op`, the op the caller was asked for.
    fn conv2d_as(
        &self,
        op: &'static str,
        weight: &Tensor,
        bias: Option<&Tensor>,
        options: ConvOptions,
    ) -> Result<Tensor> {
        if options.output_padding != (0, 0) {
            crate::bail!(
                op,
                "output_padding {:?} applies to transposed convolutions only",
                options.output_padding
            );
        }
        if self.rank() != 4 {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().into(), rhs: weight.shape().into() });
        }
        let geo = geometry(op, self, weight, (self.shape()[2], self.shape()[3]), &options)?;
        if self.shape()[1] != geo.in_channels {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().into(), rhs: weight.shape().into() });
        }
        add_channel_bias(conv_fwd(geo, self, weight)?, bias, op, 2)
    }

    /// 1-d convolution of `[N, C, L]` by `weight` `[O, C/groups, k]`, plus `bias` `[O]`
    /// (PyTorch's `conv1d`): the options hold one stride, padding and dilation each, set from
    /// single numbers (`ConvOptions::default().stride(2)`).
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, options: ConvOptions) -> Result<Tensor> {
        let mismatch =
            || Error::ShapeMismatch { op: "conv1d", lhs: self.shape().into(), rhs: weight.shape().into() };
        if self.rank() != 3 || weight.rank() != 3 {
            return Err(mismatch());
        }
        if !options.is_square() {
            crate::bail!(
                "conv1d",
                "takes one stride, padding and dilation each (set from one number), got {options:?}"
            );
        }
        let (n, c, l) = (self.shape()[0], self.shape()[1], self.shape()[2]);
        let (o, ci, k) = (weight.shape()[0], weight.shape()[1], weight.shape()[2]);
        // Height 1 with a height-1 kernel: the height's stride and dilation never apply.
        let as_2d = ConvOptions { padding: (0, options.padding.1), ..options };
        let y = self.reshape(&[n, c, 1, l])?.conv2d_as(
            "conv1d",
            &weight.reshape(&[o, ci, 1, k])?,
            None,
            as_2d,
        )?;
        let out_len = y.shape()[3];
        add_channel_bias(y.reshape(&[n, o, out_len])?, bias, "conv1d", 1)
    }

    /// Transposed 2-d convolution (the gradient of `conv2d` with respect to its input) of
    /// `[N, C_in, H, W]` by `weight` `[C_in, C_out/groups, kh, kw]`, plus `bias` `[C_out]`
    /// (PyTorch's `conv_transpose2d`). Output size:
    /// `(H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1`, output padding
    /// smaller than the stride.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        options: ConvOptions,
    ) -> Result<Tensor> {
        let o = options;
        let mismatch = || Error::ShapeMismatch {
            op: "conv_transpose2d",
            lhs: self.shape().into(),
            rhs: weight.shape().into(),
        };
        if self.rank() != 4 || weight.rank() != 4 || self.shape()[1] != weight.shape()[0] {
            return Err(mismatch());
        }
        let (op_h, op_w) = o.output_padding;
        if op_h >= o.stride.0.max(1) || op_w >= o.stride.1.max(1) {
            crate::bail!(
                "conv_transpose2d",
                "output_padding {:?} must be smaller than stride {:?}",
                o.output_padding,
                o.stride
            );
        }
        let (kh, kw) = (weight.shape()[2], weight.shape()[3]);
        let (h, w) = (self.shape()[2], self.shape()[3]);
        let out_len = |size: usize, axis: usize, k: usize| {
            let pick = |p: (usize, usize)| if axis == 0 { p.0 } else { p.1 };
            let (s, p, d, extra) =
                (pick(o.stride), pick(o.padding), pick(o.dilation), pick(o.output_padding));
            conv::conv_transpose_out_len(size.max(1), k.max(1), s, p, d, extra)
        };
        let (Some(out_h), Some(out_w)) = (out_len(h, 0, kh), out_len(w, 1, kw)) else {
            crate::bail!(
                "conv_transpose2d",
                "padding {:?} leaves no output for input {h}×{w}, or {o:?} gives sizes beyond what \
                 memory can address",
                o.padding
            );
        };
        // The convolution this one transposes maps [N, C_out, out_h, out_w] to our input.
        let geo = geometry("conv_transpose2d", &self.clone(), weight, (out_h, out_w), &o)?;
        if geo.out_h() != h || geo.out_w() != w || (h == 0 || w == 0) {
            return Err(mismatch());
        }
        add_channel_bias(conv_bi(geo, self, weight)?, bias, "conv_transpose2d", 2)
    }
}

//! Convolution: 2-d, 1-d and transposed 2-d, each with its input- and weight-gradient kernels.
//!
//! Layouts follow PyTorch: input `(batch, in_channels, h, w)` (NCHW), weight
//! `(out_channels, in_channels / groups, kernel_h, kernel_w)` (OIHW), output
//! `(batch, out_channels, out_h, out_w)`. The transposed convolution's weight is
//! `(in_channels, out_channels / groups, kernel_h, kernel_w)`, and it is computed as the adjoint
//! of the convolution's input map: its forward is a conv input-gradient, its input gradient a
//! conv forward. Conv1d is the `h = 1` case.
//!
//! Every kernel lowers to the three of the `lowering` module (im2col + GEMM, GEMM + col2im). Gradient
//! kernels overwrite their output. Results are bit-identical for the same inputs whatever the
//! thread count.

mod lowering;
#[cfg(test)]
mod tests;

use crate::Element;
use lowering::Lowering;

/// Output length of one spatial axis of a convolution:
/// `(input + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, or 0 when the padded input is
/// shorter than the dilated kernel. The lengths must fit in `usize`
/// ([`checked_window_len`](crate::checked_window_len) says whether they do).
pub fn conv_out_len(input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> usize {
    let padded = input + 2 * padding;
    let span = dilation * kernel.saturating_sub(1) + 1;
    if padded < span {
        0
    } else {
        (padded - span) / stride + 1
    }
}

/// A 2-d convolution: NCHW input, OIHW weight (I = `in_channels / groups`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// Images in the batch (N).
    pub batch: usize,
    /// Input channels (C); divisible by `groups`.
    pub in_channels: usize,
    /// Output channels (O); divisible by `groups`.
    pub out_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// (vertical, horizontal) stride, each at least 1.
    pub stride: (usize, usize),
    /// (vertical, horizontal) zero padding on both sides.
    pub padding: (usize, usize),
    /// (vertical, horizontal) spacing between kernel taps, each at least 1.
    pub dilation: (usize, usize),
    /// Channel groups: output channel block `g` sees only input channel block `g`.
    pub groups: usize,
}

impl Conv2dGeometry {
    /// Output height (see [`conv_out_len`]).
    pub fn out_h(&self) -> usize {
        conv_out_len(self.in_h, self.kernel_h, self.stride.0, self.padding.0, self.dilation.0)
    }
    /// Output width (see [`conv_out_len`]).
    pub fn out_w(&self) -> usize {
        conv_out_len(self.in_w, self.kernel_w, self.stride.1, self.padding.1, self.dilation.1)
    }
    /// Elements of the input `(batch, in_channels, in_h, in_w)`.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }
    /// Elements of the weight `(out_channels, in_channels / groups, kernel_h, kernel_w)`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.groups.max(1)) * self.kernel_h * self.kernel_w
    }
    /// Elements of the output `(batch, out_channels, out_h, out_w)`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Whether every length the kernels derive from this geometry (padded sizes, the buffers,
    /// the im2col workspace) fits in `usize`, strides and dilations being positive and groups
    /// dividing the channels: kernels take only such geometries.
    pub fn is_representable(&self) -> bool {
        let positive = [self.stride.0, self.stride.1, self.dilation.0, self.dilation.1, self.groups]
            .iter()
            .all(|&v| v > 0);
        if !positive || !self.in_channels.is_multiple_of(self.groups) {
            return false;
        }
        let (s, p, d) = (self.stride, self.padding, self.dilation);
        let (Some(out_h), Some(out_w)) = (
            crate::checked_window_len(self.in_h, self.kernel_h, s.0, p.0, d.0),
            crate::checked_window_len(self.in_w, self.kernel_w, s.1, p.1, d.1),
        ) else {
            return false;
        };
        let per_group = self.in_channels / self.groups;
        [
            &[self.batch, self.in_channels, self.in_h, self.in_w][..],
            &[self.out_channels, per_group, self.kernel_h, self.kernel_w],
            &[self.batch, self.out_channels, out_h, out_w],
            &[per_group, self.kernel_h, self.kernel_w, out_h, out_w],
        ]
        .iter()
        .all(|shape| crate::checked_numel(shape).is_some())
    }

    fn lowering(&self) -> Lowering {
        Lowering {
            batch: self.batch,
            c_in: self.in_channels,
            c_out: self.out_channels,
            in_h: self.in_h,
            in_w: self.in_w,
            out_h: self.out_h(),
            out_w: self.out_w(),
            kh: self.kernel_h,
            kw: self.kernel_w,
            stride: self.stride,
            pad: self.padding,
            dil: self.dilation,
            groups: self.groups,
        }
    }
}

/// `y = conv2d(x, w) + bias`; `bias` has one value per output channel. Overwrites `y`.
pub fn conv2d<T: Element>(g: &Conv2dGeometry, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    lowering::forward(&g.lowering(), x, w, bias, y);
}

/// The input gradient `dx` of [`conv2d`] given the output gradient `dy`. Overwrites `dx`.
pub fn conv2d_backward_input<T: Element>(g: &Conv2dGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    lowering::backward_input(&g.lowering(), dy, w, None, dx);
}

/// The weight gradient `dw` of [`conv2d`], summed over the batch. Overwrites `dw`.
/// (The bias gradient is the sum of `dy` over batch and spatial axes: a plain reduction.)
pub fn conv2d_backward_weight<T: Element>(g: &Conv2dGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    lowering::backward_weight(&g.lowering(), x, dy, dw);
}

/// A 1-d convolution: input `(batch, in_channels, in_len)`, weight
/// `(out_channels, in_channels / groups, kernel)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv1dGeometry {
    /// Sequences in the batch.
    pub batch: usize,
    /// Input channels; divisible by `groups`.
    pub in_channels: usize,
    /// Output channels; divisible by `groups`.
    pub out_channels: usize,
    /// Input length.
    pub in_len: usize,
    /// Kernel length.
    pub kernel: usize,
    /// Stride, at least 1.
    pub stride: usize,
    /// Zero padding on both ends.
    pub padding: usize,
    /// Spacing between kernel taps, at least 1.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Conv1dGeometry {
    /// Output length (see [`conv_out_len`]).
    pub fn out_len(&self) -> usize {
        conv_out_len(self.in_len, self.kernel, self.stride, self.padding, self.dilation)
    }
    /// The same convolution as a 2-d one of height 1.
    pub fn to_2d(&self) -> Conv2dGeometry {
        Conv2dGeometry {
            batch: self.batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            in_h: 1,
            in_w: self.in_len,
            kernel_h: 1,
            kernel_w: self.kernel,
            stride: (1, self.stride),
            padding: (0, self.padding),
            dilation: (1, self.dilation),
            groups: self.groups,
        }
    }
}

/// `y = conv1d(x, w) + bias`. Overwrites `y`.
pub fn conv1d<T: Element>(g: &Conv1dGeometry, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    conv2d(&g.to_2d(), x, w, bias, y);
}

/// The input gradient of [`conv1d`]. Overwrites `dx`.
pub fn conv1d_backward_input<T: Element>(g: &Conv1dGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    conv2d_backward_input(&g.to_2d(), dy, w, dx);
}

/// The weight gradient of [`conv1d`], summed over the batch. Overwrites `dw`.
pub fn conv1d_backward_weight<T: Element>(g: &Conv1dGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    conv2d_backward_weight(&g.to_2d(), x, dy, dw);
}

/// A transposed 2-d convolution: input `(batch, in_channels, in_h, in_w)`, weight
/// `(in_channels, out_channels / groups, kernel_h, kernel_w)` as in PyTorch.
/// Input pixel `(ih, iw)` scatters `x · w` onto output pixel
/// `(ih·stride − padding + ki·dilation, ...)`; taps outside the output are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels; divisible by `groups`.
    pub in_channels: usize,
    /// Output channels; divisible by `groups`.
    pub out_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// (vertical, horizontal) stride, each at least 1.
    pub stride: (usize, usize),
    /// (vertical, horizontal) padding removed from both sides of the output.
    pub padding: (usize, usize),
    /// (vertical, horizontal) spacing between kernel taps, each at least 1.
    pub dilation: (usize, usize),
    /// Channel groups.
    pub groups: usize,
    /// Extra rows / columns added to one side of the output (PyTorch requires it to be
    /// smaller than the stride or the dilation).
    pub output_padding: (usize, usize),
}

/// `(input − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1`, or 0 when
/// that is not positive.
fn transpose_out_len(input: usize, k: usize, s: usize, p: usize, d: usize, op: usize) -> usize {
    let len =
        (input as i128 - 1) * s as i128 - 2 * p as i128 + (d * k.saturating_sub(1)) as i128 + op as i128 + 1;
    len.max(0) as usize
}

impl ConvTranspose2dGeometry {
    /// Output height (PyTorch's formula).
    pub fn out_h(&self) -> usize {
        let (s, p, d, op) = (self.stride.0, self.padding.0, self.dilation.0, self.output_padding.0);
        transpose_out_len(self.in_h, self.kernel_h, s, p, d, op)
    }
    /// Output width (PyTorch's formula).
    pub fn out_w(&self) -> usize {
        let (s, p, d, op) = (self.stride.1, self.padding.1, self.dilation.1, self.output_padding.1);
        transpose_out_len(self.in_w, self.kernel_w, s, p, d, op)
    }
    /// Elements of the weight `(in_channels, out_channels / groups, kernel_h, kernel_w)`.
    pub fn weight_len(&self) -> usize {
        self.in_channels * (self.out_channels / self.groups.max(1)) * self.kernel_h * self.kernel_w
    }
    /// Elements of the output `(batch, out_channels, out_h, out_w)`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// The convolution whose input map this is the adjoint of: its input is our output, its
    /// output (restricted to our input size) is our input, and its OIHW weight is our weight.
    fn lowering(&self) -> Lowering {
        Lowering {
            batch: self.batch,
            c_in: self.out_channels,
            c_out: self.in_channels,
            in_h: self.out_h(),
            in_w: self.out_w(),
            out_h: self.in_h,
            out_w: self.in_w,
            kh: self.kernel_h,
            kw: self.kernel_w,
            stride: self.stride,
            pad: self.padding,
            dil: self.dilation,
            groups: self.groups,
        }
    }
}

/// `y = conv_transpose2d(x, w) + bias`; `bias` has one value per output channel. Overwrites `y`.
pub fn conv_transpose2d<T: Element>(
    g: &ConvTranspose2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    lowering::backward_input(&g.lowering(), x, w, bias, y);
}

/// The input gradient of [`conv_transpose2d`]: a plain convolution of `dy`. Overwrites `dx`.
pub fn conv_transpose2d_backward_input<T: Element>(
    g: &ConvTranspose2dGeometry,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    lowering::forward(&g.lowering(), dy, w, None, dx);
}

/// The weight gradient of [`conv_transpose2d`], summed over the batch. Overwrites `dw`.
pub fn conv_transpose2d_backward_weight<T: Element>(
    g: &ConvTranspose2dGeometry,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    // <x, conv(dy; w)> is linear in w with the roles of image and gradient swapped.
    lowering::backward_weight(&g.lowering(), dy, x, dw);
}

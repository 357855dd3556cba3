//! Convolution: 2-d, 1-d and transposed 2-d, each with its input- and weight-gradient kernels.
//!
//! Layouts follow PyTorch: input `(batch, in_channels, h, w)` (NCHW), weight
//! `(out_channels, in_channels / groups, kernel_h, kernel_w)` (OIHW), output
//! `(batch, out_channels, out_h, out_w)`. One geometry, [`Conv2dGeometry`], describes every
//! convolution: conv1d is its `h = 1` case, and a transposed convolution (weight
//! `(in_channels, out_channels / groups, kernel_h, kernel_w)`) is the input gradient of the
//! convolution it transposes, its input gradient that convolution's forward.
//!
//! Every kernel lowers to the three of the `lowering` module (im2col + GEMM, GEMM + col2im). Gradient
//! kernels overwrite their output. Results are bit-identical for the same inputs whatever the
//! thread count.

mod lowering;
#[cfg(test)]
mod tests;

use crate::gemm::Epilogue;
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

/// Converts PyTorch's "an int or a pair" arguments: `2` is `(2, 2)`, `(2, 1)` stays.
pub trait IntoPair {
    /// The (height, width) pair.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

/// How a convolution's kernel walks its input: the settings of PyTorch's `conv1d`, `conv2d`
/// and `conv_transpose2d` beside the input and the weight, declared once for every
/// convolution of the framework (kernels, tensor ops, layers). Pairs are (height, width); a
/// 1-d convolution takes the width and wants the height equal to it, as set from one number.
///
/// ```
/// use graphgrad_ops::conv::ConvOptions;
/// let o = ConvOptions::default().stride(2).padding((1, 0));
/// assert_eq!((o.stride, o.padding, o.dilation, o.groups), ((2, 2), (1, 0), (1, 1), 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvOptions {
    /// Step between windows, each at least 1 (PyTorch's default 1).
    pub stride: (usize, usize),
    /// Zeros added on both sides (default 0); a transposed convolution removes it from its
    /// output instead.
    pub padding: (usize, usize),
    /// Spacing between kernel taps, each at least 1 (default 1).
    pub dilation: (usize, usize),
    /// Channel groups: output channel block `g` sees only input channel block `g`; both channel
    /// counts divide by it (default 1).
    pub groups: usize,
    /// Transposed convolutions only: extra rows / columns on one side of the output, smaller
    /// than the stride (default 0). A convolution's output size follows from its input, so the
    /// kernels never read it.
    pub output_padding: (usize, usize),
}

impl ConvOptions {
    /// PyTorch's defaults: stride 1, no padding, dilation 1, one group, no output padding.
    pub const DEFAULT: ConvOptions =
        ConvOptions { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1, output_padding: (0, 0) };

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> ConvOptions {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: impl IntoPair) -> ConvOptions {
        self.padding = padding.into_pair();
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> ConvOptions {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets the number of channel groups.
    pub fn groups(mut self, groups: usize) -> ConvOptions {
        self.groups = groups;
        self
    }

    /// Sets a transposed convolution's output padding.
    pub fn output_padding(mut self, output_padding: impl IntoPair) -> ConvOptions {
        self.output_padding = output_padding.into_pair();
        self
    }

    /// Whether each pair holds one number twice, as a 1-d convolution needs.
    pub fn is_square(&self) -> bool {
        let square = |p: (usize, usize)| p.0 == p.1;
        square(self.stride) && square(self.padding) && square(self.dilation) && square(self.output_padding)
    }
}

impl Default for ConvOptions {
    fn default() -> ConvOptions {
        ConvOptions::DEFAULT
    }
}

/// Output length of one spatial axis of a transposed convolution (PyTorch's formula):
/// `(input − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1`, or `None` when
/// that is not positive or does not fit in `usize`.
pub fn conv_transpose_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
) -> Option<usize> {
    input
        .checked_sub(1)?
        .checked_mul(stride)?
        .checked_add(dilation.checked_mul(kernel.checked_sub(1)?)?)?
        .checked_add(output_padding)?
        .checked_add(1)?
        .checked_sub(padding.checked_mul(2)?)
        .filter(|&len| len > 0)
}

/// A 2-d convolution: NCHW input, OIHW weight (I = `in_channels / groups`). A 1-d convolution
/// is the case `in_h = kernel_h = 1`; a transposed convolution is the input gradient of the
/// convolution it transposes, whose input is the transposed one's output.
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
    /// Stride, padding, dilation and groups (`output_padding` is not read).
    pub options: ConvOptions,
}

impl Conv2dGeometry {
    /// Output height (see [`conv_out_len`]).
    pub fn out_h(&self) -> usize {
        let o = &self.options;
        conv_out_len(self.in_h, self.kernel_h, o.stride.0, o.padding.0, o.dilation.0)
    }
    /// Output width (see [`conv_out_len`]).
    pub fn out_w(&self) -> usize {
        let o = &self.options;
        conv_out_len(self.in_w, self.kernel_w, o.stride.1, o.padding.1, o.dilation.1)
    }
    /// Elements of the input `(batch, in_channels, in_h, in_w)`.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }
    /// Elements of the weight `(out_channels, in_channels / groups, kernel_h, kernel_w)`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.options.groups.max(1)) * self.kernel_h * self.kernel_w
    }
    /// Elements of the output `(batch, out_channels, out_h, out_w)`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Whether every length the kernels derive from this geometry (padded sizes, the buffers,
    /// the im2col workspace) fits in `usize`, strides and dilations being positive and groups
    /// dividing the channels: kernels take only such geometries.
    pub fn is_representable(&self) -> bool {
        let ConvOptions { stride: s, padding: p, dilation: d, groups, .. } = self.options;
        let positive = [s.0, s.1, d.0, d.1, groups].iter().all(|&v| v > 0);
        if !positive || !self.in_channels.is_multiple_of(groups) || !self.out_channels.is_multiple_of(groups)
        {
            return false;
        }
        let (Some(out_h), Some(out_w)) = (
            crate::checked_window_len(self.in_h, self.kernel_h, s.0, p.0, d.0),
            crate::checked_window_len(self.in_w, self.kernel_w, s.1, p.1, d.1),
        ) else {
            return false;
        };
        let per_group = self.in_channels / groups;
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
            stride: self.options.stride,
            pad: self.options.padding,
            dil: self.options.dilation,
            groups: self.options.groups,
        }
    }
}

/// `y = activation(conv2d(x, w) + bias)` with the epilogue's bias (one value per output
/// channel) and activation applied to each image's output while it is in cache: the values
/// of the separate ops, bit for bit. Overwrites `y`.
pub fn conv2d<T: Element>(g: &Conv2dGeometry, x: &[T], w: &[T], epilogue: &Epilogue<T>, y: &mut [T]) {
    lowering::forward(&g.lowering(), x, w, epilogue, y);
}

/// The input gradient `dx` of [`conv2d`] given the output gradient `dy`. Overwrites `dx`.
pub fn conv2d_backward_input<T: Element>(g: &Conv2dGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    lowering::backward_input(&g.lowering(), dy, w, dx);
}

/// The weight gradient `dw` of [`conv2d`], summed over the batch. Overwrites `dw`.
/// (The bias gradient is the sum of `dy` over batch and spatial axes: a plain reduction.)
pub fn conv2d_backward_weight<T: Element>(g: &Conv2dGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    lowering::backward_weight(&g.lowering(), x, dy, dw);
}

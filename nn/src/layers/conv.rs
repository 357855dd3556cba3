//! The configuration every convolution layer shares: channels, kernel size, the
//! [`ConvOptions`] of the tensor op, bias and element type, declared once. `Conv1dConfig`,
//! `Conv2dConfig` and `ConvTranspose2dConfig` are this type for each layer, so they take the
//! same setters and each builds its own layer with `init`.

use graphgrad_autodiff::{bail, ConvOptions, DType, IntoPair, Result};
use std::fmt;
use std::marker::PhantomData;

/// Configuration of a convolution layer `L` ([`Conv1d`](super::Conv1d),
/// [`Conv2d`](super::Conv2d), [`ConvTranspose2d`](super::ConvTranspose2d)), with PyTorch's
/// defaults. Sizes take one number (`3`, meaning `(3, 3)`) or a (height, width) pair, as
/// PyTorch's do; a 1-d layer takes one number each.
///
/// ```
/// use graphgrad_nn::Conv2dConfig;
/// let config = Conv2dConfig::new(3, 8, 3).with_stride(2).with_padding((1, 0));
/// assert_eq!((config.kernel_size, config.options.stride, config.options.padding), ((3, 3), (2, 2), (1, 0)));
/// ```
pub struct ConvConfig<L> {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel size, (height, width).
    pub kernel_size: (usize, usize),
    /// Stride, padding, dilation, groups (and a transposed layer's output padding).
    pub options: ConvOptions,
    /// Whether to add a learnable bias (default true).
    pub bias: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
    layer: PhantomData<fn() -> L>,
}

impl<L> ConvConfig<L> {
    /// A convolution with PyTorch's defaults: stride 1, no padding, dilation 1, one group, bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl IntoPair) -> ConvConfig<L> {
        ConvConfig {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            options: ConvOptions::default(),
            bias: true,
            dtype: DType::F32,
            layer: PhantomData,
        }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: impl IntoPair) -> ConvConfig<L> {
        self.options = self.options.stride(stride);
        self
    }

    /// Sets the zero padding (for a transposed layer: the padding removed from its output).
    pub fn with_padding(mut self, padding: impl IntoPair) -> ConvConfig<L> {
        self.options = self.options.padding(padding);
        self
    }

    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: impl IntoPair) -> ConvConfig<L> {
        self.options = self.options.dilation(dilation);
        self
    }

    /// Sets the number of channel groups.
    pub fn with_groups(mut self, groups: usize) -> ConvConfig<L> {
        self.options = self.options.groups(groups);
        self
    }

    /// Sets a transposed layer's output padding (smaller than the stride).
    pub fn with_output_padding(mut self, output_padding: impl IntoPair) -> ConvConfig<L> {
        self.options = self.options.output_padding(output_padding);
        self
    }

    /// Sets whether the layer has a bias.
    pub fn with_bias(mut self, bias: bool) -> ConvConfig<L> {
        self.bias = bias;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> ConvConfig<L> {
        self.dtype = dtype;
        self
    }

    /// Checks what every layer needs before it allocates: positive channels, groups dividing
    /// both, positive kernel, stride and dilation; `transposed` layers alone take an output
    /// padding, and `one_dim` layers one number per setting.
    pub(crate) fn check(&self, layer: &'static str, transposed: bool, one_dim: bool) -> Result<()> {
        let (c_in, c_out, o) = (self.in_channels, self.out_channels, &self.options);
        if c_in == 0 || c_out == 0 || o.groups == 0 {
            bail!(
                layer,
                "channels and groups must be positive, got in {c_in}, out {c_out}, groups {}",
                o.groups
            );
        }
        if !c_in.is_multiple_of(o.groups) || !c_out.is_multiple_of(o.groups) {
            bail!(layer, "in_channels {c_in} and out_channels {c_out} must divide by groups {}", o.groups);
        }
        let (k, s, d) = (self.kernel_size, o.stride, o.dilation);
        if [k.0, k.1, s.0, s.1, d.0, d.1].contains(&0) {
            bail!(layer, "kernel size, stride and dilation must be positive, got {k:?}, {s:?}, {d:?}");
        }
        if one_dim && (k.0 != k.1 || !o.is_square()) {
            bail!(
                layer,
                "takes one kernel size, stride, padding and dilation each, got kernel {k:?} and {o:?}"
            );
        }
        if !transposed && o.output_padding != (0, 0) {
            bail!(layer, "output_padding {:?} applies to transposed convolutions only", o.output_padding);
        }
        // PyTorch also allows output_padding < dilation; the tensor op requires < stride.
        if transposed && (o.output_padding.0 >= s.0 || o.output_padding.1 >= s.1) {
            bail!(layer, "output_padding {:?} must be smaller than stride {s:?}", o.output_padding);
        }
        Ok(())
    }
}

// Written out: derives would ask the layer type for the traits too.
impl<L> Clone for ConvConfig<L> {
    fn clone(&self) -> ConvConfig<L> {
        *self
    }
}

impl<L> Copy for ConvConfig<L> {}

impl<L> PartialEq for ConvConfig<L> {
    fn eq(&self, other: &ConvConfig<L>) -> bool {
        let key =
            |c: &ConvConfig<L>| (c.in_channels, c.out_channels, c.kernel_size, c.options, c.bias, c.dtype);
        key(self) == key(other)
    }
}

impl<L> fmt::Debug for ConvConfig<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvConfig")
            .field("layer", &std::any::type_name::<L>().rsplit("::").next().unwrap_or_default())
            .field("in_channels", &self.in_channels)
            .field("out_channels", &self.out_channels)
            .field("kernel_size", &self.kernel_size)
            .field("options", &self.options)
            .field("bias", &self.bias)
            .field("dtype", &self.dtype)
            .finish()
    }
}

/// Configuration of a [`Conv1d`](super::Conv1d) layer.
pub type Conv1dConfig = ConvConfig<super::Conv1d>;
/// Configuration of a [`Conv2d`](super::Conv2d) layer.
pub type Conv2dConfig = ConvConfig<super::Conv2d>;
/// Configuration of a [`ConvTranspose2d`](super::ConvTranspose2d) layer.
pub type ConvTranspose2dConfig = ConvConfig<super::ConvTranspose2d>;

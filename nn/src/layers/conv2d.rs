//! `Conv2d`: 2-d convolution (PyTorch's `nn.Conv2d`, zero padding), a thin layer over
//! [`Tensor::conv2d`].

use crate::{init, Module, Visitor};
use graphgrad_autodiff::{bail, Conv2dOptions, DType, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Configuration of a [`Conv2d`] layer. Pairs are (height, width).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel_size: (usize, usize),
    /// Step between windows (default 1).
    pub stride: (usize, usize),
    /// Zeros added on each side (default 0).
    pub padding: (usize, usize),
    /// Spacing between kernel taps (default 1).
    pub dilation: (usize, usize),
    /// Channel groups (default 1); both channel counts must divide by it.
    pub groups: usize,
    /// Whether to add a learnable bias (default true).
    pub bias: bool,
    /// Element type of the parameters (default f32).
    pub dtype: DType,
}

impl Conv2dConfig {
    /// A convolution with PyTorch's defaults: stride 1, no padding, dilation 1, one group, bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: (usize, usize)) -> Conv2dConfig {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            dtype: DType::F32,
        }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Conv2dConfig {
        self.stride = stride;
        self
    }

    /// Sets the zero padding.
    pub fn with_padding(mut self, padding: (usize, usize)) -> Conv2dConfig {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Conv2dConfig {
        self.dilation = dilation;
        self
    }

    /// Sets the number of channel groups.
    pub fn with_groups(mut self, groups: usize) -> Conv2dConfig {
        self.groups = groups;
        self
    }

    /// Sets whether the layer has a bias.
    pub fn with_bias(mut self, bias: bool) -> Conv2dConfig {
        self.bias = bias;
        self
    }

    /// Sets the parameters' element type.
    pub fn with_dtype(mut self, dtype: DType) -> Conv2dConfig {
        self.dtype = dtype;
        self
    }

    /// Creates the layer with PyTorch's default initialisation: weight and bias from
    /// U(−1/√fan_in, 1/√fan_in), fan_in = in_channels/groups·kh·kw.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Conv2d> {
        let (kh, kw) = self.kernel_size;
        check_conv_config(
            "Conv2d",
            self.in_channels,
            self.out_channels,
            &[kh, kw, self.stride.0, self.stride.1, self.dilation.0, self.dilation.1],
            self.groups,
        )?;
        let shape = [self.out_channels, self.in_channels / self.groups, kh, kw];
        let fan_in = shape[1] * kh * kw;
        let weight = init::default_uniform(&shape, fan_in, self.dtype, rng)?;
        let bias = if self.bias {
            Some(init::default_uniform(&[self.out_channels], fan_in, self.dtype, rng)?)
        } else {
            None
        };
        let options = Conv2dOptions {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        Ok(Conv2d { weight: Var::new("weight", &weight), bias: bias.map(|b| Var::new("bias", &b)), options })
    }
}

/// Checks channel counts, groups and the positive sizes shared by all convolution configs.
pub(crate) fn check_conv_config(
    layer: &'static str,
    in_channels: usize,
    out_channels: usize,
    positive: &[usize],
    groups: usize,
) -> Result<()> {
    if in_channels == 0 || out_channels == 0 || groups == 0 {
        bail!(
            layer,
            "channels and groups must be positive, got in {in_channels}, out {out_channels}, groups {groups}"
        );
    }
    // (written without `%` so clippy's is_multiple_of hint, newer than our MSRV, stays quiet)
    let divides = |n: usize| n / groups * groups == n;
    if !divides(in_channels) || !divides(out_channels) {
        bail!(
            layer,
            "in_channels {in_channels} and out_channels {out_channels} must divide by groups {groups}"
        );
    }
    if positive.contains(&0) {
        bail!(layer, "kernel size, stride and dilation must be positive, got {positive:?}");
    }
    Ok(())
}

/// Cross-correlates a batch of images with learned filters.
///
/// # Shapes
/// - input: `[batch, in_channels, height, width]`
/// - output: `[batch, out_channels, out_h, out_w]` with
///   `out_h = (height + 2·padding.0 − dilation.0·(kh − 1) − 1) / stride.0 + 1` (same for width)
/// - `weight`: `[out_channels, in_channels/groups, kh, kw]`, `bias`: `[out_channels]`
///
/// ```
/// use graphgrad_nn::{Conv2dConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let conv = Conv2dConfig::new(3, 8, (3, 3)).with_padding((1, 1)).init(&mut rng)?;
/// let y = conv.forward(&Tensor::zeros(&[2, 3, 16, 16], DType::F32)?)?; // y: [2, 8, 16, 16]
/// assert_eq!(y.shape(), &[2, 8, 16, 16]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels/groups, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl Module for Conv2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.conv2d(&self.weight, self.bias.as_deref(), self.options)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.parameter("weight", &self.weight);
        if let Some(bias) = &self.bias {
            v.parameter("bias", bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{check_module_gradients, conv2d_reference};
    use graphgrad_ops::testing::{assert_close, random_vec};
    use rand::SeedableRng;

    fn check(config: Conv2dConfig, input: [usize; 4], seed: u64) {
        let conv = config.with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let x = Tensor::from_vec(random_vec::<f64>(input.iter().product(), seed + 1), &input).unwrap();
        let y = conv.forward(&x).unwrap();
        let (expected, shape) = conv2d_reference(&x, &conv.weight, conv.bias.as_deref(), conv.options);
        assert_eq!(y.shape(), shape.as_slice());
        assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-10);
        check_module_gradients(&conv, &x);
    }

    #[test]
    fn forward_and_gradients_match_reference() {
        check(Conv2dConfig::new(2, 3, (3, 3)), [2, 2, 5, 5], 1);
        check(
            Conv2dConfig::new(2, 2, (2, 3)).with_stride((2, 1)).with_padding((1, 2)).with_bias(false),
            [1, 2, 5, 4],
            2,
        );
        check(Conv2dConfig::new(4, 2, (2, 2)).with_groups(2).with_dilation((2, 1)), [2, 4, 5, 3], 3);
        check(Conv2dConfig::new(1, 1, (1, 1)), [1, 1, 1, 1], 4);
    }

    #[test]
    fn hand_computed_values() {
        // 3×3 input 1..9, 2×2 kernel [[1, 0], [0, -1]], bias 0.5:
        // y[i][j] = x[i][j] − x[i+1][j+1] + 0.5 = −4 + 0.5 everywhere
        let conv = Conv2d {
            weight: Var::new(
                "weight",
                &Tensor::from_vec(vec![1.0f64, 0.0, 0.0, -1.0], &[1, 1, 2, 2]).unwrap(),
            ),
            bias: Some(Var::new("bias", &Tensor::from_vec(vec![0.5f64], &[1]).unwrap())),
            options: Conv2dOptions::default(),
        };
        let x = Tensor::from_vec((1..=9).map(f64::from).collect::<Vec<_>>(), &[1, 1, 3, 3]).unwrap();
        assert_eq!(conv.forward(&x).unwrap().to_f64_vec(), vec![-3.5; 4]);
    }

    #[test]
    fn init_and_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let conv = Conv2dConfig::new(4, 6, (3, 3)).with_groups(2).init(&mut rng).unwrap();
        assert_eq!(conv.weight.shape(), &[6, 2, 3, 3]);
        // fan_in = 2·3·3 = 18
        let bound = 1.0 / 18f64.sqrt();
        assert!(conv.weight.to_f64_vec().iter().all(|v| v.abs() <= bound));
        let names: Vec<String> = conv.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight", "bias"]);
        assert!(Conv2dConfig::new(3, 6, (3, 3)).with_groups(2).init(&mut rng).is_err());
        assert!(Conv2dConfig::new(3, 6, (0, 3)).init(&mut rng).is_err());
        assert!(Conv2dConfig::new(3, 6, (3, 3)).with_stride((0, 1)).init(&mut rng).is_err());
        // wrong channel count and too-small input are errors, not panics
        assert!(conv.forward(&Tensor::zeros(&[1, 3, 8, 8], DType::F32).unwrap()).is_err());
        assert!(conv.forward(&Tensor::zeros(&[1, 4, 2, 2], DType::F32).unwrap()).is_err());
    }
}

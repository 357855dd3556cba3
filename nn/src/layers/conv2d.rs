//! `Conv2d`: 2-d convolution (PyTorch's `nn.Conv2d`, zero padding), a thin layer over
//! [`Tensor::conv2d`].

use super::Conv2dConfig;
use crate::{init, Module, Visitor};
use graphgrad_autodiff::{ConvOptions, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

impl Conv2dConfig {
    /// Creates the layer with PyTorch's default initialisation: weight and bias from
    /// U(−1/√fan_in, 1/√fan_in), fan_in = in_channels/groups·kh·kw.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Conv2d> {
        self.check("Conv2d", false, false)?;
        let (kh, kw) = self.kernel_size;
        let shape = [self.out_channels, self.in_channels / self.options.groups, kh, kw];
        let fan_in = shape[1] * kh * kw;
        let weight = init::default_uniform(&shape, fan_in, self.dtype, rng)?;
        let bias = if self.bias {
            Some(init::default_uniform(&[self.out_channels], fan_in, self.dtype, rng)?)
        } else {
            None
        };
        let bias = bias.map(|b| Var::new("bias", &b));
        Ok(Conv2d { weight: Var::new("weight", &weight), bias, options: self.options })
    }
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
/// let conv = Conv2dConfig::new(3, 8, 3).with_padding(1).init(&mut rng)?;
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
    pub options: ConvOptions,
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
    use graphgrad_autodiff::DType;
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
            options: ConvOptions::default(),
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
        let err = Conv2dConfig::new(3, 6, 3).with_output_padding(1).init(&mut rng).unwrap_err();
        assert!(err.to_string().contains("Conv2d") && err.to_string().contains("transposed"), "{err}");
    }
}

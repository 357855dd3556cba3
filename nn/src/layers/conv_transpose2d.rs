//! `ConvTranspose2d`: the transposed 2-d convolution (PyTorch's `nn.ConvTranspose2d`), the
//! gradient of a convolution with respect to its input, used to upsample.

use super::ConvTranspose2dConfig;
use crate::{init, Module, Visitor};
use graphgrad_autodiff::{ConvOptions, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

impl ConvTranspose2dConfig {
    /// Creates the layer with PyTorch's default initialisation: weight and bias from
    /// U(−1/√fan_in, 1/√fan_in), where PyTorch computes fan_in from the weight's second axis:
    /// out_channels/groups·kh·kw.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<ConvTranspose2d> {
        self.check("ConvTranspose2d", true, false)?;
        let (kh, kw) = self.kernel_size;
        let shape = [self.in_channels, self.out_channels / self.options.groups, kh, kw];
        let fan_in = shape[1] * kh * kw;
        let weight = init::default_uniform(&shape, fan_in, self.dtype, rng)?;
        let bias = if self.bias {
            Some(init::default_uniform(&[self.out_channels], fan_in, self.dtype, rng)?)
        } else {
            None
        };
        let bias = bias.map(|b| Var::new("bias", &b));
        Ok(ConvTranspose2d { weight: Var::new("weight", &weight), bias, options: self.options })
    }
}

/// Upsamples with learned filters: each input pixel adds a weighted copy of the kernel to
/// the output.
///
/// # Shapes
/// - input: `[batch, in_channels, height, width]`
/// - output: `[batch, out_channels, out_h, out_w]` with
///   `out_h = (height − 1)·stride.0 − 2·padding.0 + dilation.0·(kh − 1) + output_padding.0 + 1`
/// - `weight`: `[in_channels, out_channels/groups, kh, kw]`, `bias`: `[out_channels]`
///
/// ```
/// use graphgrad_nn::{ConvTranspose2dConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let up = ConvTranspose2dConfig::new(8, 4, 2).with_stride(2).init(&mut rng)?;
/// let y = up.forward(&Tensor::zeros(&[1, 8, 7, 7], DType::F32)?)?; // y: [1, 4, 14, 14]
/// assert_eq!(y.shape(), &[1, 4, 14, 14]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels/groups, kh, kw]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding, dilation, groups and output padding.
    pub options: ConvOptions,
}

impl Module for ConvTranspose2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.conv_transpose2d(&self.weight, self.bias.as_deref(), self.options)
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
    use crate::layers::testing::check_module_gradients;
    use graphgrad_autodiff::DType;
    use graphgrad_ops::testing::{assert_close, random_vec};
    use rand::SeedableRng;

    /// Scatter form: y[n][g·opg + f][i·s − p + a·d][j·s − p + b·d] += x[n][c][i][j]·w[c][f][a][b]
    /// for input channel c in group g.
    fn reference(x: &Tensor, layer: &ConvTranspose2d) -> (Vec<f64>, [usize; 4]) {
        let (xv, w) = (x.to_f64_vec(), layer.weight.to_f64_vec());
        let o = layer.options;
        let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (opg, kh, kw) = (layer.weight.shape()[1], layer.weight.shape()[2], layer.weight.shape()[3]);
        let oc = opg * o.groups;
        let cpg = c / o.groups;
        let out_h = (h - 1) * o.stride.0 + o.dilation.0 * (kh - 1) + o.output_padding.0 + 1 - 2 * o.padding.0;
        let out_w =
            (wd - 1) * o.stride.1 + o.dilation.1 * (kw - 1) + o.output_padding.1 + 1 - 2 * o.padding.1;
        let b = layer.bias.as_ref().map(|b| b.to_f64_vec()).unwrap_or_else(|| vec![0.0; oc]);
        let mut y = vec![0.0; n * oc * out_h * out_w];
        for bn in 0..n {
            for f in 0..oc {
                for p in 0..out_h * out_w {
                    y[(bn * oc + f) * out_h * out_w + p] = b[f];
                }
            }
            for ci in 0..c {
                let g = ci / cpg;
                for i in 0..h {
                    for j in 0..wd {
                        for f in 0..opg {
                            for a in 0..kh {
                                for bb in 0..kw {
                                    let r =
                                        (i * o.stride.0 + a * o.dilation.0) as isize - o.padding.0 as isize;
                                    let s =
                                        (j * o.stride.1 + bb * o.dilation.1) as isize - o.padding.1 as isize;
                                    if r < 0 || s < 0 || r as usize >= out_h || s as usize >= out_w {
                                        continue;
                                    }
                                    let yi =
                                        ((bn * oc + g * opg + f) * out_h + r as usize) * out_w + s as usize;
                                    y[yi] += xv[((bn * c + ci) * h + i) * wd + j]
                                        * w[((ci * opg + f) * kh + a) * kw + bb];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, [n, oc, out_h, out_w])
    }

    #[test]
    fn forward_and_gradients_match_reference() {
        let configs = [
            (ConvTranspose2dConfig::new(2, 3, (3, 3)), [2, 2, 3, 3]),
            (
                ConvTranspose2dConfig::new(2, 2, (3, 2))
                    .with_stride((2, 2))
                    .with_padding((1, 0))
                    .with_output_padding((1, 1)),
                [1, 2, 3, 2],
            ),
            (
                ConvTranspose2dConfig::new(4, 2, (2, 2))
                    .with_groups(2)
                    .with_dilation((2, 1))
                    .with_bias(false),
                [1, 4, 2, 3],
            ),
        ];
        for (k, (config, shape)) in configs.into_iter().enumerate() {
            let layer = config.with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(k as u64)).unwrap();
            let x =
                Tensor::from_vec(random_vec::<f64>(shape.iter().product(), 20 + k as u64), &shape).unwrap();
            let y = layer.forward(&x).unwrap();
            let (expected, out_shape) = reference(&x, &layer);
            assert_eq!(y.shape(), &out_shape, "config {k}");
            assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-10);
            check_module_gradients(&layer, &x);
        }
    }

    #[test]
    fn hand_computed_stride_two() {
        // 1 channel, x = [[1, 2]], kernel 2×2 of ones, stride 2: each pixel paints a 2×2 block
        // y = [[1, 1, 2, 2], [1, 1, 2, 2]]
        let layer = ConvTranspose2d {
            weight: Var::new("weight", &Tensor::ones(&[1, 1, 2, 2], DType::F64).unwrap()),
            bias: None,
            options: ConvOptions::default().stride(2),
        };
        let y = layer.forward(&Tensor::from_vec(vec![1.0f64, 2.0], &[1, 1, 1, 2]).unwrap()).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 4]);
        assert_eq!(y.to_f64_vec(), vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn init_layout_and_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layer = ConvTranspose2dConfig::new(6, 4, (3, 3)).with_groups(2).init(&mut rng).unwrap();
        assert_eq!(layer.weight.shape(), &[6, 2, 3, 3]);
        assert_eq!(layer.bias.as_ref().unwrap().shape(), &[4]);
        let bound = 1.0 / 18f64.sqrt(); // fan_in = 2·3·3
        assert!(layer.weight.to_f64_vec().iter().all(|v| v.abs() <= bound));
        let bad = ConvTranspose2dConfig::new(2, 2, (3, 3)).with_stride((2, 2)).with_output_padding((2, 0));
        assert!(bad.init(&mut rng).is_err());
        assert!(layer.forward(&Tensor::zeros(&[1, 4, 3, 3], DType::F32).unwrap()).is_err());
    }
}

//! `Conv1d`: 1-d convolution over sequences (PyTorch's `nn.Conv1d`, zero padding), a thin
//! layer over [`Tensor::conv1d`].

use super::Conv1dConfig;
use crate::{init, Module, Visitor};
use graphgrad_autodiff::{ConvOptions, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

impl Conv1dConfig {
    /// Creates the layer with PyTorch's default initialisation: weight and bias from
    /// U(−1/√fan_in, 1/√fan_in), fan_in = in_channels/groups·kernel_size.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Conv1d> {
        self.check("Conv1d", false, true)?;
        let shape = [self.out_channels, self.in_channels / self.options.groups, self.kernel_size.1];
        let fan_in = shape[1] * shape[2];
        let weight = init::default_uniform(&shape, fan_in, self.dtype, rng)?;
        let bias = if self.bias {
            Some(init::default_uniform(&[self.out_channels], fan_in, self.dtype, rng)?)
        } else {
            None
        };
        let bias = bias.map(|b| Var::new("bias", &b));
        Ok(Conv1d { weight: Var::new("weight", &weight), bias, options: self.options })
    }
}

/// Cross-correlates a batch of sequences with learned filters.
///
/// # Shapes
/// - input: `[batch, in_channels, length]`
/// - output: `[batch, out_channels, out_len]`,
///   `out_len = (length + 2·padding − dilation·(kernel_size − 1) − 1) / stride + 1`
/// - `weight`: `[out_channels, in_channels/groups, kernel_size]`, `bias`: `[out_channels]`
///
/// ```
/// use graphgrad_nn::{Conv1dConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let conv = Conv1dConfig::new(2, 4, 3).with_stride(2).init(&mut rng)?;
/// let y = conv.forward(&Tensor::zeros(&[5, 2, 11], DType::F32)?)?; // (11 − 3)/2 + 1 = 5
/// assert_eq!(y.shape(), &[5, 4, 5]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Conv1d {
    /// `[out_channels, in_channels/groups, kernel_size]`.
    pub weight: Var,
    /// `[out_channels]`, when the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding, dilation and groups, one number each (pairs of equal values).
    pub options: ConvOptions,
}

impl Module for Conv1d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.conv1d(&self.weight, self.bias.as_deref(), self.options)
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

    /// y[n][o][t] = b[o] + Σ_{c in group, k} w[o][c][k]·x[n][g·cpg + c][t·s − p + k·d]
    fn reference(x: &Tensor, conv: &Conv1d) -> Vec<f64> {
        let (xv, w) = (x.to_f64_vec(), conv.weight.to_f64_vec());
        let (n, c, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (o, cpg, k) = (conv.weight.shape()[0], conv.weight.shape()[1], conv.weight.shape()[2]);
        let (s, p, d) = (conv.options.stride.1, conv.options.padding.1, conv.options.dilation.1);
        let out_len = (l + 2 * p - d * (k - 1) - 1) / s + 1;
        let opg = o / conv.options.groups;
        let b = conv.bias.as_ref().map(|b| b.to_f64_vec()).unwrap_or_else(|| vec![0.0; o]);
        let mut y = vec![0.0; n * o * out_len];
        for bn in 0..n {
            for oc in 0..o {
                let g = oc / opg;
                for t in 0..out_len {
                    let mut acc = b[oc];
                    for ci in 0..cpg {
                        for kk in 0..k {
                            let pos = (t * s + kk * d) as isize - p as isize;
                            if pos >= 0 && (pos as usize) < l {
                                acc += w[(oc * cpg + ci) * k + kk]
                                    * xv[(bn * c + g * cpg + ci) * l + pos as usize];
                            }
                        }
                    }
                    y[(bn * o + oc) * out_len + t] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn forward_and_gradients_match_reference() {
        let configs = [
            (Conv1dConfig::new(2, 3, 3), [2, 2, 7]),
            (Conv1dConfig::new(2, 2, 2).with_stride(2).with_padding(1).with_bias(false), [1, 2, 6]),
            (Conv1dConfig::new(4, 2, 3).with_groups(2).with_dilation(2), [2, 4, 8]),
        ];
        for (i, (config, shape)) in configs.into_iter().enumerate() {
            let seed = i as u64;
            let conv = config.with_dtype(DType::F64).init(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            let x = Tensor::from_vec(random_vec::<f64>(shape.iter().product(), seed + 10), &shape).unwrap();
            let y = conv.forward(&x).unwrap();
            assert_close(&y.to_f64_vec(), &reference(&x, &conv), 1e-12, 1e-10);
            check_module_gradients(&conv, &x);
        }
    }

    #[test]
    fn hand_computed_and_errors() {
        // x = [1, 2, 3, 4], w = [1, -1], b = 0: y[t] = x[t] − x[t+1] = −1 (three outputs)
        let conv = Conv1d {
            weight: Var::new("weight", &Tensor::from_vec(vec![1.0f64, -1.0], &[1, 1, 2]).unwrap()),
            bias: None,
            options: ConvOptions::default(),
        };
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[1, 1, 4]).unwrap();
        assert_eq!(conv.forward(&x).unwrap().to_f64_vec(), vec![-1.0; 3]);
        assert!(conv.forward(&Tensor::zeros(&[1, 1, 4, 1], DType::F64).unwrap()).is_err());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(Conv1dConfig::new(3, 2, 3).with_groups(2).init(&mut rng).is_err());
        // one number per setting: a pair of different values has no 1-d meaning
        let err = Conv1dConfig::new(2, 2, 3).with_stride((1, 2)).init(&mut rng).unwrap_err();
        assert!(err.to_string().contains("Conv1d") && err.to_string().contains("one kernel size"), "{err}");
        assert!(Conv1dConfig::new(2, 2, (1, 3)).init(&mut rng).is_err());
    }
}

//! Pooling layers: `MaxPool2d` and `AvgPool2d`, PyTorch's, with its defaults (`ceil_mode =
//! false`; average pooling counts padding as zeros, `count_include_pad = true`) and both
//! settable. No parameters.
//!
//! Sizes are one number or a (height, width) pair; the stride defaults to the kernel size, as
//! in PyTorch.

use crate::{Module, Visitor};
use graphgrad_autodiff::{IntoPair, Pool2dOptions, Result, Tensor};

/// The largest value of each window.
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - output: `[batch, channels, out_h, out_w]`,
///   `out_h = (height + 2·padding.0 − kernel.0) / stride.0 + 1` (same for width)
///
/// ```
/// use graphgrad_nn::{MaxPool2d, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// let y = MaxPool2d::new(2).forward(&Tensor::zeros(&[1, 3, 8, 6], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 3, 4, 3]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel_size: (usize, usize),
    /// Stride (default: the kernel size), implicit −∞ padding on each side (at most half the
    /// kernel) and ceil mode (`count_include_pad` does not apply).
    pub options: Pool2dOptions,
}

impl MaxPool2d {
    /// Windows of `kernel_size`, stride equal to the kernel, no padding, floor mode.
    pub fn new(kernel_size: impl IntoPair) -> MaxPool2d {
        let kernel_size = kernel_size.into_pair();
        MaxPool2d { kernel_size, options: Pool2dOptions::new(kernel_size, 0) }
    }

    /// Sets ceil mode.
    pub fn with_ceil_mode(mut self, ceil_mode: bool) -> MaxPool2d {
        self.options.ceil_mode = ceil_mode;
        self
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: impl IntoPair) -> MaxPool2d {
        self.options.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: impl IntoPair) -> MaxPool2d {
        self.options.padding = padding.into_pair();
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(input.max_pool2d_with(self.kernel_size, &self.options)?.0)
    }

    /// No parameters, buffers or mode.
    fn visit(&self, _v: &mut dyn Visitor) {}
}

/// The mean of each window (padding counted as zeros in the divisor, unless
/// `count_include_pad` is false).
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - output: `[batch, channels, out_h, out_w]`, as [`MaxPool2d`]
///
/// ```
/// use graphgrad_nn::{AvgPool2d, Module};
/// use graphgrad_autodiff::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?;
/// assert_eq!(AvgPool2d::new(2).forward(&x)?.to_vec::<f32>()?, vec![2.5]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel_size: (usize, usize),
    /// Stride (default: the kernel size), implicit zero padding on each side (at most half the
    /// kernel), ceil mode and whether the divisor counts padding cells.
    pub options: Pool2dOptions,
}

impl AvgPool2d {
    /// Windows of `kernel_size`, stride equal to the kernel, no padding, floor mode, padding
    /// counted.
    pub fn new(kernel_size: impl IntoPair) -> AvgPool2d {
        let kernel_size = kernel_size.into_pair();
        AvgPool2d { kernel_size, options: Pool2dOptions::new(kernel_size, 0) }
    }

    /// Sets ceil mode.
    pub fn with_ceil_mode(mut self, ceil_mode: bool) -> AvgPool2d {
        self.options.ceil_mode = ceil_mode;
        self
    }

    /// Sets whether the divisor counts padding cells.
    pub fn with_count_include_pad(mut self, count_include_pad: bool) -> AvgPool2d {
        self.options.count_include_pad = count_include_pad;
        self
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: impl IntoPair) -> AvgPool2d {
        self.options.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: impl IntoPair) -> AvgPool2d {
        self.options.padding = padding.into_pair();
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.avg_pool2d_with(self.kernel_size, &self.options)
    }

    /// No parameters, buffers or mode.
    fn visit(&self, _v: &mut dyn Visitor) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_module_gradients;
    use graphgrad_autodiff::DType;
    use graphgrad_ops::testing::assert_close;

    /// Max (or mean, padding counted) of each window by plain loops.
    fn reference(x: &Tensor, k: (usize, usize), s: (usize, usize), p: (usize, usize), max: bool) -> Vec<f64> {
        let v = x.to_f64_vec();
        let (planes, h, w) = (x.shape()[0] * x.shape()[1], x.shape()[2], x.shape()[3]);
        let out_h = (h + 2 * p.0 - k.0) / s.0 + 1;
        let out_w = (w + 2 * p.1 - k.1) / s.1 + 1;
        let mut y = Vec::new();
        for plane in 0..planes {
            for i in 0..out_h {
                for j in 0..out_w {
                    let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                    for a in 0..k.0 {
                        for b in 0..k.1 {
                            let (r, c) = (
                                (i * s.0 + a) as isize - p.0 as isize,
                                (j * s.1 + b) as isize - p.1 as isize,
                            );
                            if r < 0 || c < 0 || r as usize >= h || c as usize >= w {
                                continue;
                            }
                            let value = v[(plane * h + r as usize) * w + c as usize];
                            acc = if max { acc.max(value) } else { acc + value };
                        }
                    }
                    y.push(if max { acc } else { acc / (k.0 * k.1) as f64 });
                }
            }
        }
        y
    }

    /// Distinct values (so max pooling has no ties and finite differences are valid).
    fn input(shape: [usize; 4]) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|i| ((i * 37) % n) as f64 * 0.1 - 1.0).collect();
        Tensor::from_vec(values, &shape).unwrap()
    }

    #[test]
    fn max_pool_matches_reference() {
        for (k, s, p, shape) in
            [((2, 2), (2, 2), (0, 0), [2, 2, 4, 6]), ((3, 2), (1, 2), (1, 1), [1, 3, 5, 5])]
        {
            let pool = MaxPool2d::new(k).with_stride(s).with_padding(p);
            let x = input(shape);
            assert_close(&pool.forward(&x).unwrap().to_f64_vec(), &reference(&x, k, s, p, true), 0.0, 0.0);
            check_module_gradients(&pool, &x);
        }
    }

    #[test]
    fn avg_pool_matches_reference() {
        for (k, s, p, shape) in
            [((2, 2), (2, 2), (0, 0), [2, 2, 4, 6]), ((3, 3), (2, 1), (1, 1), [1, 2, 5, 4])]
        {
            let pool = AvgPool2d::new(k).with_stride(s).with_padding(p);
            let x = input(shape);
            assert_close(
                &pool.forward(&x).unwrap().to_f64_vec(),
                &reference(&x, k, s, p, false),
                1e-12,
                1e-12,
            );
            check_module_gradients(&pool, &x);
        }
    }

    #[test]
    fn hand_computed_and_errors() {
        // 4×4 input 0..15 in 2×2 windows: maxima 5, 7, 13, 15; means 2.5, 4.5, 10.5, 12.5
        let x = Tensor::from_vec((0..16).map(f64::from).collect::<Vec<_>>(), &[1, 1, 4, 4]).unwrap();
        assert_eq!(MaxPool2d::new((2, 2)).forward(&x).unwrap().to_f64_vec(), vec![5.0, 7.0, 13.0, 15.0]);
        assert_eq!(AvgPool2d::new((2, 2)).forward(&x).unwrap().to_f64_vec(), vec![2.5, 4.5, 10.5, 12.5]);
        assert!(MaxPool2d::new((2, 2)).forward(&Tensor::zeros(&[4, 4], DType::F32).unwrap()).is_err());
        assert!(AvgPool2d::new((0, 2)).forward(&x).is_err());
        assert!(MaxPool2d::new((5, 5)).forward(&x).is_err());
    }

    /// torch 2.15 on x = sin(0..30) as [1, 1, 5, 6] in f64: `F.avg_pool2d(x, 3, 2, 1,
    /// ceil_mode=True, count_include_pad=…)`, its gradient for the weights 0..12, and
    /// `F.max_pool2d(x, 2, 2, 0, ceil_mode=True, return_indices=True)`.
    #[test]
    fn ceil_mode_and_count_include_pad_match_pytorch() {
        let x = Tensor::from_vec((0..30).map(|i| (i as f64).sin()).collect::<Vec<_>>(), &[1, 1, 5, 6])
            .unwrap()
            .requires_grad_();
        let excluding = AvgPool2d::new((3, 3)).with_stride((2, 2)).with_padding((1, 1)).with_ceil_mode(true);
        let y = excluding.with_count_include_pad(false).forward(&x).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 4]);
        let torch_y = [
            0.3047605213319399,
            0.6583919583795621,
            -0.45108326568491935,
            -0.979457240606921,
            -0.05665746962710908,
            0.668778184687688,
            -0.19436909727948226,
            -0.9358693675351436,
            -0.40976003730328014,
            0.5810101212854948,
            0.09087195959498101,
            -0.754927144194069,
        ];
        assert_close(&y.to_f64_vec(), &torch_y, 1e-14, 1e-12);
        let weights = Tensor::from_vec((0..12).map(f64::from).collect::<Vec<_>>(), &[1, 1, 3, 4]).unwrap();
        let g =
            graphgrad_autodiff::grad(&[y.mul(&weights).unwrap().sum_all()], std::slice::from_ref(&x), false)
                .unwrap();
        let torch_g = [
            0.0,
            0.16666666666666666,
            0.16666666666666666,
            0.5,
            0.3333333333333333,
            1.8333333333333333,
            0.6666666666666666,
            1.3888888888888888,
            0.7222222222222222,
            1.7222222222222223,
            1.0,
            4.833333333333334,
            0.6666666666666666,
            1.2222222222222223,
            0.5555555555555556,
            1.2222222222222223,
            0.6666666666666666,
            3.0,
            2.6666666666666665,
            4.722222222222222,
            2.0555555555555554,
            4.388888888888889,
            2.3333333333333335,
            10.166666666666668,
            2.0,
            3.5,
            1.5,
            3.166666666666667,
            1.6666666666666667,
            7.166666666666667,
        ];
        assert_close(&g[0].to_f64_vec(), &torch_g, 1e-14, 1e-12);
        let including = excluding.forward(&x).unwrap();
        let torch_including = [
            0.1354491205919733,
            0.4389279722530414,
            -0.3007221771232796,
            -0.32648574686897364,
            -0.03777164641807272,
            0.668778184687688,
            -0.19436909727948226,
            -0.4679346837675718,
            -0.18211557213479118,
            0.3873400808569965,
            0.06058130639665401,
            -0.25164238139802303,
        ];
        assert_close(&including.to_f64_vec(), &torch_including, 1e-14, 1e-12);
        let options = Pool2dOptions::new((2, 2), (0, 0)).with_ceil_mode(true);
        let (m, i) = x.max_pool2d_with((2, 2), &options).unwrap();
        assert_eq!(m.shape(), &[1, 1, 3, 3]);
        assert_eq!(i.to_f64_vec(), vec![1.0, 8.0, 10.0, 13.0, 14.0, 22.0, 25.0, 27.0, 28.0]);
        assert_eq!(
            MaxPool2d::new((2, 2)).with_ceil_mode(true).forward(&x).unwrap().to_f64_vec(),
            m.to_f64_vec()
        );
        check_module_gradients(&excluding.with_count_include_pad(false), &x.detach());
    }
}

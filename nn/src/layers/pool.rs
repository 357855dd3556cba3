//! Pooling layers: `MaxPool2d` and `AvgPool2d` (PyTorch's, with `ceil_mode=False`; average
//! pooling counts padding as zeros, `count_include_pad=True`). No parameters.
//!
//! Pairs are (height, width); the stride defaults to the kernel size, as in PyTorch.

use crate::{Module, Visitor};
use graphgrad_autodiff::{Result, Tensor};

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
/// let y = MaxPool2d::new((2, 2)).forward(&Tensor::zeros(&[1, 3, 8, 6], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 3, 4, 3]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel_size: (usize, usize),
    /// Step between windows.
    pub stride: (usize, usize),
    /// Implicit −∞ padding on each side (at most half the kernel).
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Windows of `kernel_size`, stride equal to the kernel, no padding.
    pub fn new(kernel_size: (usize, usize)) -> MaxPool2d {
        MaxPool2d { kernel_size, stride: kernel_size, padding: (0, 0) }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> MaxPool2d {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: (usize, usize)) -> MaxPool2d {
        self.padding = padding;
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.max_pool2d(self.kernel_size, self.stride, self.padding)
    }

    /// No parameters, buffers or mode.
    fn visit(&self, _v: &mut dyn Visitor) {}
}

/// The mean of each window (padding counted as zeros in the divisor).
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - output: `[batch, channels, out_h, out_w]`, as [`MaxPool2d`]
///
/// ```
/// use graphgrad_nn::{AvgPool2d, Module};
/// use graphgrad_autodiff::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?;
/// assert_eq!(AvgPool2d::new((2, 2)).forward(&x)?.to_vec::<f32>()?, vec![2.5]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel_size: (usize, usize),
    /// Step between windows.
    pub stride: (usize, usize),
    /// Implicit zero padding on each side (at most half the kernel).
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// Windows of `kernel_size`, stride equal to the kernel, no padding.
    pub fn new(kernel_size: (usize, usize)) -> AvgPool2d {
        AvgPool2d { kernel_size, stride: kernel_size, padding: (0, 0) }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> AvgPool2d {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: (usize, usize)) -> AvgPool2d {
        self.padding = padding;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        input.avg_pool2d(self.kernel_size, self.stride, self.padding)
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
}

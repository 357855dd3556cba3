//! `Flatten`: merges a range of axes into one (PyTorch's `nn.Flatten`, which by default keeps
//! the batch axis: `start_dim = 1`, `end_dim = -1`).

use crate::{Module, Visitor};
use graphgrad_autodiff::{Error, Result, Tensor};

/// Collapses axes `start_dim..=end_dim` (negative counts from the end) into one.
///
/// # Shapes
/// - input: `[batch, d1, d2, ...]`
/// - output (defaults): `[batch, d1·d2·...]`
///
/// ```
/// use graphgrad_nn::{Flatten, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// let y = Flatten::default().forward(&Tensor::zeros(&[2, 3, 4, 5], DType::F32)?)?;
/// assert_eq!(y.shape(), &[2, 60]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// First axis merged.
    pub start_dim: isize,
    /// Last axis merged (inclusive).
    pub end_dim: isize,
}

impl Flatten {
    /// Merges axes `start_dim..=end_dim`.
    pub fn new(start_dim: isize, end_dim: isize) -> Flatten {
        Flatten { start_dim, end_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1, end_dim: -1 }
    }
}

impl Module for Flatten {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let shape = input.shape();
        // A rank-0 tensor flattens like one of rank 1, as in PyTorch.
        let rank = shape.len().max(1) as isize;
        let resolve = |d: isize| if d < 0 { d + rank } else { d };
        let (start, end) = (resolve(self.start_dim), resolve(self.end_dim));
        if !(0..rank).contains(&start) || !(0..rank).contains(&end) || start > end {
            return Err(Error::AxisOutOfRange { op: "Flatten", axis: self.start_dim, shape: shape.into() });
        }
        if shape.is_empty() {
            return input.reshape(&[1]);
        }
        let (start, end) = (start as usize, end as usize);
        let mut out: Vec<usize> = shape[..start].to_vec();
        out.push(shape[start..=end].iter().product());
        out.extend_from_slice(&shape[end + 1..]);
        input.reshape(&out)
    }

    /// No parameters, buffers or mode.
    fn visit(&self, _v: &mut dyn Visitor) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphgrad_autodiff::DType;

    #[test]
    fn shapes_follow_pytorch() {
        let x = Tensor::from_vec((0..120).map(|i| i as f32).collect::<Vec<_>>(), &[2, 3, 4, 5]).unwrap();
        let flat = Flatten::default().forward(&x).unwrap();
        assert_eq!(flat.shape(), &[2, 60]);
        // row-major order is kept: element [1, 2, 3, 4] = 1·60 + 2·20 + 3·5 + 4 = 119
        assert_eq!(flat.to_vec::<f32>().unwrap()[119], 119.0);
        assert_eq!(Flatten::new(0, -1).forward(&x).unwrap().shape(), &[120]);
        assert_eq!(Flatten::new(1, 2).forward(&x).unwrap().shape(), &[2, 12, 5]);
        assert_eq!(Flatten::new(-2, -1).forward(&x).unwrap().shape(), &[2, 3, 20]);
        assert_eq!(Flatten::new(0, 0).forward(&Tensor::scalar(1.0f32)).unwrap().shape(), &[1]);
        assert!(Flatten::new(3, 1).forward(&x).is_err());
        assert!(Flatten::new(1, 4).forward(&x).is_err());
        assert!(Flatten::default().forward(&Tensor::zeros(&[3], DType::F32).unwrap()).is_err());
    }

    #[test]
    fn gradient_is_reshaped_back() {
        let x = Tensor::from_vec(vec![1.0f64; 24], &[2, 3, 4]).unwrap().requires_grad_();
        let y = Flatten::default().forward(&x).unwrap();
        y.mul_scalar(2.0).sum_all().backward().unwrap();
        let g = x.grad().unwrap();
        assert_eq!(g.shape(), &[2, 3, 4]);
        assert!(g.to_f64_vec().iter().all(|&v| v == 2.0));
    }
}

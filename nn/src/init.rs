//! Parameter initialisers (PyTorch's `torch.nn.init`), all drawn from a seedable
//! [`ChaCha8Rng`]: the same seed gives the same tensors, so the same model.
//!
//! Fans follow PyTorch's `_calculate_fan_in_and_fan_out`: for a weight of shape
//! `[out, in, k1, k2, ...]`, `fan_in = in·k1·k2·…` and `fan_out = out·k1·k2·…` (tensors of rank
//! below 2 have no fans, and the fan-based initialisers reject them).
//!
//! | initialiser | distribution |
//! |---|---|
//! | [`uniform`] | U(low, high) |
//! | [`normal`] | N(mean, std²) |
//! | [`xavier_uniform`] | U(−a, a), a = gain·√(6 / (fan_in + fan_out)) |
//! | [`xavier_normal`] | N(0, σ²), σ = gain·√(2 / (fan_in + fan_out)) |
//! | [`kaiming_uniform`] | U(−b, b), b = gain·√(3 / fan) |
//! | [`kaiming_normal`] | N(0, σ²), σ = gain / √fan |
//! | [`orthogonal`] | Q of the QR decomposition of a normal matrix, times gain |
//!
//! PyTorch's default for `Linear` and convolutions, `kaiming_uniform_(w, a=√5)`, is
//! U(−1/√fan_in, 1/√fan_in): see [`default_uniform`].
//!
//! ```
//! use graphgrad_nn::init::{self, FanMode, Nonlinearity};
//! use graphgrad_autodiff::DType;
//! use rand::SeedableRng;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let w = init::kaiming_normal(&[64, 32], FanMode::FanIn, Nonlinearity::Relu, DType::F32, &mut rng)?;
//! assert_eq!(w.shape(), &[64, 32]);
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```

use graphgrad_autodiff::{bail, DType, Result, Tensor};
use graphgrad_ops::numel;
use rand_chacha::ChaCha8Rng;

/// Which fan a Kaiming initialiser preserves: `FanIn` keeps the variance of activations in
/// the forward pass, `FanOut` that of gradients in the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FanMode {
    /// `fan_in` (PyTorch's default).
    #[default]
    FanIn,
    /// `fan_out`.
    FanOut,
}

/// The nonlinearity after a layer, for [`calculate_gain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity: gain 1.
    Linear,
    /// Any convolution (no activation): gain 1.
    Conv,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with the given negative slope: gain √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

/// The recommended gain for a nonlinearity (PyTorch's `calculate_gain`).
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Conv | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight of `shape` (rank at least 2).
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        bail!("init", "fan in and fan out need a shape of rank >= 2, got {shape:?}");
    }
    let fan =
        |channels: usize| graphgrad_ops::checked_numel(&shape[2..]).and_then(|r| r.checked_mul(channels));
    match (fan(shape[1]), fan(shape[0])) {
        (Some(fan_in), Some(fan_out)) => Ok((fan_in, fan_out)),
        _ => bail!("init", "the fans of shape {shape:?} overflow"),
    }
}

fn nonzero_fan(fan: usize, shape: &[usize]) -> Result<f64> {
    if fan == 0 {
        bail!("init", "shape {shape:?} has a zero fan");
    }
    Ok(fan as f64)
}

/// Samples from U(`low`, `high`).
pub fn uniform(shape: &[usize], low: f64, high: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    Tensor::rand(shape, low, high, dtype, rng).map_err(|e| e.called_as("init::uniform"))
}

/// Samples from N(`mean`, `std`²).
pub fn normal(shape: &[usize], mean: f64, std: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    Tensor::randn(shape, mean, std, dtype, rng).map_err(|e| e.called_as("init::normal"))
}

/// Glorot uniform: U(−a, a) with a = gain·√(6 / (fan_in + fan_out)).
pub fn xavier_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape)?;
    let a = gain * (6.0 / nonzero_fan(fan_in + fan_out, shape)?).sqrt();
    uniform(shape, -a, a, dtype, rng)
}

/// Glorot normal: N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out)).
pub fn xavier_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape)?;
    let std = gain * (2.0 / nonzero_fan(fan_in + fan_out, shape)?).sqrt();
    normal(shape, 0.0, std, dtype, rng)
}

fn kaiming_std(shape: &[usize], mode: FanMode, nonlinearity: Nonlinearity) -> Result<f64> {
    let (fan_in, fan_out) = fans(shape)?;
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    Ok(calculate_gain(nonlinearity) / nonzero_fan(fan, shape)?.sqrt())
}

/// He uniform: U(−b, b) with b = √3·gain / √fan (PyTorch's `kaiming_uniform_`; its default
/// `a=0, nonlinearity='leaky_relu'` is `Nonlinearity::LeakyRelu(0.0)`).
pub fn kaiming_uniform(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let bound = 3f64.sqrt() * kaiming_std(shape, mode, nonlinearity)?;
    uniform(shape, -bound, bound, dtype, rng)
}

/// He normal: N(0, σ²) with σ = gain / √fan.
pub fn kaiming_normal(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let std = kaiming_std(shape, mode, nonlinearity)?;
    normal(shape, 0.0, std, dtype, rng)
}

/// PyTorch's default for `Linear` and convolution weights and biases,
/// `kaiming_uniform_(w, a=√5)`: U(−1/√fan_in, 1/√fan_in) where `fan_in` is that of the
/// weight (pass it explicitly: a bias of shape `[out]` uses its weight's fan).
pub fn default_uniform(shape: &[usize], fan_in: usize, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    // gain = √(2 / (1 + 5)) = 1/√3, bound = √3·gain/√fan_in = 1/√fan_in
    let bound = if fan_in == 0 { 0.0 } else { 1.0 / (fan_in as f64).sqrt() };
    uniform(shape, -bound, bound, dtype, rng)
}

/// A (semi-)orthogonal matrix, times `gain` (PyTorch's `orthogonal_`). The tensor is viewed as
/// `[shape[0], numel / shape[0]]`; its rows (when there are fewer rows than columns) or columns
/// are orthonormal. Made as in PyTorch: Q of the QR decomposition of a standard normal matrix,
/// with signs fixed so R has a positive diagonal (so Q is Haar-distributed).
pub fn orthogonal(shape: &[usize], gain: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if shape.len() < 2 {
        bail!("init::orthogonal", "needs a shape of rank >= 2, got {shape:?}");
    }
    let rows = shape[0];
    let cols = numel(&shape[1..]);
    if rows == 0 || cols == 0 {
        return Tensor::zeros(shape, dtype);
    }
    let flat = Tensor::randn(&[rows, cols], 0.0, 1.0, DType::F64, rng)?.to_f64_vec();
    // Work on the tall orientation: a [m, n] matrix with m >= n, stored column by column.
    let (m, n) = (rows.max(cols), rows.min(cols));
    let mut columns: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..m).map(|i| if rows >= cols { flat[i * cols + j] } else { flat[j * cols + i] }).collect())
        .collect();
    orthonormalise(&mut columns)?;
    let mut out = vec![0.0; rows * cols];
    for (j, column) in columns.iter().enumerate() {
        for (i, &v) in column.iter().enumerate() {
            // tall: out[i][j] = q[i][j]; wide: out = qᵀ, out[j][i] = q[i][j]
            let at = if rows >= cols { i * cols + j } else { j * cols + i };
            out[at] = gain * v;
        }
    }
    Ok(Tensor::from_vec(out, shape)?.to_dtype(dtype).detach())
}

/// Modified Gram–Schmidt with one re-orthogonalisation pass: the Q factor of a QR
/// decomposition whose R has a positive diagonal.
fn orthonormalise(columns: &mut [Vec<f64>]) -> Result<()> {
    for j in 0..columns.len() {
        let (done, rest) = columns.split_at_mut(j);
        let v = &mut rest[0];
        for _pass in 0..2 {
            for q in done.iter() {
                let dot: f64 = q.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(x, qi)| *x -= dot * qi);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 1e-12 || norm.is_nan() {
            bail!("init::orthogonal", "the random matrix is rank-deficient; use another seed");
        }
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn mean_var(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
    }

    /// Asserts the sample variance of `t` is within 3% of `expected` and the mean near 0.
    fn assert_variance(t: &Tensor, expected: f64) {
        let (mean, var) = mean_var(&t.to_f64_vec());
        assert!(mean.abs() < 0.02 * expected.sqrt() * 5.0, "mean {mean} for expected variance {expected}");
        assert!((var / expected - 1.0).abs() < 0.03, "variance {var}, expected {expected}");
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[8, 3]).unwrap(), (3, 8));
        // conv weight [out 16, in 4, 3, 5]: receptive field 15
        assert_eq!(fans(&[16, 4, 3, 5]).unwrap(), (60, 240));
        assert!(fans(&[5]).is_err());
        assert!((calculate_gain(Nonlinearity::LeakyRelu(5f64.sqrt())) - (1.0 / 3f64).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn same_seed_same_values() {
        let a =
            kaiming_uniform(&[7, 5], FanMode::FanIn, Nonlinearity::Relu, DType::F32, &mut rng(3)).unwrap();
        let b =
            kaiming_uniform(&[7, 5], FanMode::FanIn, Nonlinearity::Relu, DType::F32, &mut rng(3)).unwrap();
        let c =
            kaiming_uniform(&[7, 5], FanMode::FanIn, Nonlinearity::Relu, DType::F32, &mut rng(4)).unwrap();
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_ne!(a.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
        let q1 = orthogonal(&[6, 4], 1.0, DType::F64, &mut rng(9)).unwrap();
        let q2 = orthogonal(&[6, 4], 1.0, DType::F64, &mut rng(9)).unwrap();
        assert_eq!(q1.to_f64_vec(), q2.to_f64_vec());
    }

    #[test]
    fn uniform_and_normal_moments() {
        // U(-2, 4): mean 1, variance (b - a)²/12 = 3
        let u = uniform(&[200_000], -2.0, 4.0, DType::F64, &mut rng(1)).unwrap().to_f64_vec();
        let (m, v) = mean_var(&u);
        assert!((m - 1.0).abs() < 0.02 && (v - 3.0).abs() < 0.05, "mean {m} var {v}");
        assert!(u.iter().all(|&x| (-2.0..4.0).contains(&x)));
        let n = normal(&[200_000], 0.5, 2.0, DType::F64, &mut rng(2)).unwrap().to_f64_vec();
        let (m, v) = mean_var(&n);
        assert!((m - 0.5).abs() < 0.03 && (v - 4.0).abs() < 0.08, "mean {m} var {v}");
        assert!(uniform(&[2], 1.0, 0.0, DType::F32, &mut rng(0)).is_err());
        assert!(normal(&[2], 0.0, -1.0, DType::F32, &mut rng(0)).is_err());
    }

    #[test]
    fn xavier_variance_matches_formula() {
        // [300, 500]: Var = gain²·2/(fan_in + fan_out) = 2/800 for both uniform (a²/3 with
        // a² = 6/800) and normal.
        let shape = [300, 500];
        let expected = 2.0 / 800.0;
        assert_variance(&xavier_uniform(&shape, 1.0, DType::F64, &mut rng(5)).unwrap(), expected);
        assert_variance(&xavier_normal(&shape, 1.0, DType::F64, &mut rng(6)).unwrap(), expected);
        // gain scales the standard deviation: tanh gain 5/3 ⇒ variance × 25/9
        let t = xavier_uniform(&shape, 5.0 / 3.0, DType::F64, &mut rng(7)).unwrap();
        assert_variance(&t, expected * 25.0 / 9.0);
        let bound = (6.0f64 / 800.0).sqrt();
        assert!(xavier_uniform(&shape, 1.0, DType::F64, &mut rng(8))
            .unwrap()
            .to_f64_vec()
            .iter()
            .all(|x| x.abs() <= bound));
    }

    #[test]
    fn kaiming_variance_matches_formula() {
        // conv weight [200, 50, 3, 3]: fan_in 450, fan_out 1800; relu gain² = 2.
        let shape = [200, 50, 3, 3];
        let r = Nonlinearity::Relu;
        assert_variance(
            &kaiming_uniform(&shape, FanMode::FanIn, r, DType::F64, &mut rng(1)).unwrap(),
            2.0 / 450.0,
        );
        assert_variance(
            &kaiming_normal(&shape, FanMode::FanIn, r, DType::F64, &mut rng(2)).unwrap(),
            2.0 / 450.0,
        );
        assert_variance(
            &kaiming_normal(&shape, FanMode::FanOut, r, DType::F64, &mut rng(3)).unwrap(),
            2.0 / 1800.0,
        );
        // PyTorch's Linear default: U(-1/√fan_in, 1/√fan_in), variance 1/(3·fan_in)
        let a5 = Nonlinearity::LeakyRelu(5f64.sqrt());
        let w = kaiming_uniform(&[400, 250], FanMode::FanIn, a5, DType::F64, &mut rng(4)).unwrap();
        assert_variance(&w, 1.0 / 750.0);
        assert!(w.to_f64_vec().iter().all(|x| x.abs() <= 1.0 / 250f64.sqrt()));
        let d = default_uniform(&[400, 250], 250, DType::F64, &mut rng(4)).unwrap();
        assert_eq!(d.to_f64_vec(), w.to_f64_vec());
    }

    /// Max |(AᵀA)_ij − gain²·δ_ij| for the columns of a [rows, cols] row-major matrix.
    fn gram_error(a: &[f64], rows: usize, cols: usize, gain: f64) -> f64 {
        let mut worst: f64 = 0.0;
        for i in 0..cols {
            for j in 0..cols {
                let dot: f64 = (0..rows).map(|r| a[r * cols + i] * a[r * cols + j]).sum();
                let want = if i == j { gain * gain } else { 0.0 };
                worst = worst.max((dot - want).abs());
            }
        }
        worst
    }

    #[test]
    fn orthogonal_is_orthogonal() {
        // tall [50, 20]: QᵀQ = I₂₀
        let q = orthogonal(&[50, 20], 1.0, DType::F64, &mut rng(11)).unwrap().to_f64_vec();
        assert!(gram_error(&q, 50, 20, 1.0) < 1e-12);
        // square with gain 2: QᵀQ = 4·I
        let q = orthogonal(&[16, 16], 2.0, DType::F64, &mut rng(12)).unwrap().to_f64_vec();
        assert!(gram_error(&q, 16, 16, 2.0) < 1e-12);
        // wide [4, 3, 2, 2] viewed as [4, 12]: rows orthonormal, i.e. columns of the transpose
        let w = orthogonal(&[4, 3, 2, 2], 1.0, DType::F64, &mut rng(13)).unwrap().to_f64_vec();
        let transposed: Vec<f64> =
            (0..12).flat_map(|c| (0..4).map(move |r| (r, c))).map(|(r, c)| w[r * 12 + c]).collect();
        assert!(gram_error(&transposed, 12, 4, 1.0) < 1e-12);
        // f32 output keeps orthogonality to single precision
        let q = orthogonal(&[30, 30], 1.0, DType::F32, &mut rng(14)).unwrap().to_f64_vec();
        assert!(gram_error(&q, 30, 30, 1.0) < 1e-5);
        assert!(orthogonal(&[3], 1.0, DType::F32, &mut rng(0)).is_err());
    }
}

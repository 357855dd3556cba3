//! `BatchNorm1d` / `BatchNorm2d`: batch normalisation with running statistics (PyTorch's).
//!
//! In training mode each channel is normalised with the batch mean and biased variance, and
//! the running statistics are updated with `momentum` (default 0.1):
//! `running = (1 − momentum)·running + momentum·batch`, where the running variance takes the
//! unbiased batch variance (n/(n − 1) times the biased one), as in PyTorch. With
//! `momentum = None` the running statistics are a cumulative average (factor
//! 1/num_batches_tracked). In eval mode the running statistics normalise. The buffers
//! `running_mean`, `running_var` and `num_batches_tracked` are in the state dict under
//! PyTorch's names.

use crate::{Module, Visitor};
use graphgrad_autodiff::{bail, no_grad, DType, Error, Flag, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Configuration of [`BatchNorm1d`] and [`BatchNorm2d`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Channels (C of the input).
    pub num_features: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Weight of the new batch in the running statistics (default `Some(0.1)`); `None` gives
    /// a cumulative average.
    pub momentum: Option<f64>,
    /// Whether there are a learnable per-channel weight and bias (default true).
    pub affine: bool,
    /// Whether running statistics are kept (default true); without them batch statistics are
    /// used in eval mode too.
    pub track_running_stats: bool,
    /// Element type of the parameters and buffers (default f32).
    pub dtype: DType,
}

impl BatchNormConfig {
    /// Batch norm over `num_features` channels with PyTorch's defaults.
    pub fn new(num_features: usize) -> BatchNormConfig {
        BatchNormConfig {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
            dtype: DType::F32,
        }
    }

    /// Sets eps.
    pub fn with_eps(mut self, eps: f64) -> BatchNormConfig {
        self.eps = eps;
        self
    }

    /// Sets the momentum (`None`: cumulative average).
    pub fn with_momentum(mut self, momentum: Option<f64>) -> BatchNormConfig {
        self.momentum = momentum;
        self
    }

    /// Sets whether there are a learnable weight and bias.
    pub fn with_affine(mut self, affine: bool) -> BatchNormConfig {
        self.affine = affine;
        self
    }

    /// Sets whether running statistics are kept.
    pub fn with_track_running_stats(mut self, track: bool) -> BatchNormConfig {
        self.track_running_stats = track;
        self
    }

    /// Sets the element type.
    pub fn with_dtype(mut self, dtype: DType) -> BatchNormConfig {
        self.dtype = dtype;
        self
    }

    /// A batch norm over `[N, C]` or `[N, C, L]` inputs (`rng` is unused; taken for
    /// uniformity).
    pub fn init_1d(&self, _rng: &mut ChaCha8Rng) -> Result<BatchNorm1d> {
        self.build()
    }

    /// A batch norm over `[N, C, H, W]` inputs (`rng` is unused; taken for uniformity).
    pub fn init_2d(&self, _rng: &mut ChaCha8Rng) -> Result<BatchNorm2d> {
        self.build()
    }

    fn build<const D: usize>(&self) -> Result<BatchNorm<D>> {
        let c = self.num_features;
        if c == 0 {
            bail!("BatchNorm", "num_features must be positive");
        }
        if self.eps < 0.0 || self.eps.is_nan() {
            bail!("BatchNorm", "eps must be non-negative, got {}", self.eps);
        }
        if let Some(m) = self.momentum.filter(|m| !(0.0..=1.0).contains(m)) {
            bail!("BatchNorm", "momentum must be in [0, 1], got {m}");
        }
        let dtype = self.dtype;
        let track = self.track_running_stats;
        Ok(BatchNorm {
            weight: self
                .affine
                .then(|| Tensor::ones(&[c], dtype).map(|t| Var::new("weight", &t)))
                .transpose()?,
            bias: self
                .affine
                .then(|| Tensor::zeros(&[c], dtype).map(|t| Var::new("bias", &t)))
                .transpose()?,
            running_mean: track
                .then(|| Tensor::zeros(&[c], dtype).map(|t| Var::buffer("running_mean", &t)))
                .transpose()?,
            running_var: track
                .then(|| Tensor::ones(&[c], dtype).map(|t| Var::buffer("running_var", &t)))
                .transpose()?,
            num_batches_tracked: track
                .then(|| Tensor::zeros(&[], dtype).map(|t| Var::buffer("num_batches_tracked", &t)))
                .transpose()?,
            num_features: c,
            eps: self.eps,
            momentum: self.momentum,
            training: Flag::new(true),
        })
    }
}

/// Batch normalisation over the channel axis (axis 1) with running statistics.
///
/// `D` is the number of spatial axes the layer is meant for: [`BatchNorm1d`] (`D = 1`) takes
/// `[batch, channels]` or `[batch, channels, length]`, [`BatchNorm2d`] (`D = 2`) takes
/// `[batch, channels, height, width]`.
///
/// # Shapes
/// - input: `[batch, channels, *]` as above
/// - output: the input's shape
/// - `weight`, `bias`, `running_mean`, `running_var`: `[channels]`; `num_batches_tracked`: `[]`
///
/// ```
/// use graphgrad_nn::{BatchNormConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let bn = BatchNormConfig::new(3).init_2d(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let y = bn.forward(&Tensor::ones(&[2, 3, 4, 4], DType::F32)?)?; // y: [2, 3, 4, 4]
/// assert_eq!(y.shape(), &[2, 3, 4, 4]);
/// bn.set_training(false); // now normalises with the running statistics
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchNorm<const D: usize> {
    /// Per-channel scale (γ), when affine.
    pub weight: Option<Var>,
    /// Per-channel shift (β), when affine.
    pub bias: Option<Var>,
    /// Running mean of each channel (a buffer), when tracked.
    pub running_mean: Option<Var>,
    /// Running unbiased variance of each channel (a buffer), when tracked.
    pub running_var: Option<Var>,
    /// Training batches seen so far (a buffer, a whole number stored as a float), when tracked.
    pub num_batches_tracked: Option<Var>,
    /// Channels.
    pub num_features: usize,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the new batch in the running statistics (`None`: cumulative average).
    pub momentum: Option<f64>,
    training: Flag,
}

/// Batch norm over `[batch, channels]` or `[batch, channels, length]`.
pub type BatchNorm1d = BatchNorm<1>;
/// Batch norm over `[batch, channels, height, width]`.
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.get()
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let rank_ok = if D == 1 { x.rank() == 2 || x.rank() == 3 } else { x.rank() == D + 2 };
        if !rank_ok || x.shape()[1] != self.num_features {
            let name = if D == 1 { "BatchNorm1d" } else { "BatchNorm2d" };
            let expected = if D == 1 { "[N, C] or [N, C, L]" } else { "[N, C, H, W]" };
            bail!(name, "expects {expected} with C = {}, got {:?}", self.num_features, x.shape());
        }
        Ok(())
    }

    /// Folds the batch statistics into the running ones (no gradient).
    fn update_running_stats(&self, mean: &Tensor, biased_var: &Tensor, per_channel: usize) -> Result<()> {
        let (Some(rm), Some(rv), Some(count)) =
            (&self.running_mean, &self.running_var, &self.num_batches_tracked)
        else {
            return Ok(());
        };
        // Tensor ops throughout (no value read on the host), so a compiled step updates the
        // statistics at every call.
        no_grad(|| {
            let batches = count.detach().add_scalar(1.0);
            count.set(&batches)?;
            let c = [self.num_features];
            // unbiased variance: n/(n − 1) times the biased one
            let unbiased =
                biased_var.reshape(&c)?.mul_scalar(per_channel as f64 / (per_channel as f64 - 1.0));
            let (new_mean, new_var) = match self.momentum {
                Some(m) => (
                    rm.detach().mul_scalar(1.0 - m).add(&mean.reshape(&c)?.mul_scalar(m))?,
                    rv.detach().mul_scalar(1.0 - m).add(&unbiased.mul_scalar(m))?,
                ),
                None => {
                    // cumulative average: factor 1/batches
                    let f = Tensor::scalar_of(1.0, batches.dtype()).div(&batches)?;
                    let keep = f.neg().add_scalar(1.0);
                    let fold = |running: &Var, batch: &Tensor| -> Result<Tensor> {
                        running.detach().mul(&keep)?.add(&batch.mul(&f)?)
                    };
                    (fold(rm, &mean.reshape(&c)?)?, fold(rv, &unbiased)?)
                }
            };
            rm.set(&new_mean)?;
            rv.set(&new_var)
        })
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.check_input(input)?;
        let x = input;
        // every axis but the channel axis 1
        let axes: Vec<isize> = (0..x.rank() as isize).filter(|&a| a != 1).collect();
        // per-channel statistics broadcast as [1, C, 1, ...]
        let mut stat_shape = vec![1; x.rank()];
        stat_shape[1] = self.num_features;
        let per_channel = x.numel() / self.num_features;
        let use_batch_stats = self.training.get() || self.running_mean.is_none();
        let normalized = if use_batch_stats {
            if self.training.get() && per_channel <= 1 {
                bail!(
                    "BatchNorm",
                    "expected more than 1 value per channel when training, got input {:?}",
                    x.shape()
                );
            }
            // mean, var: [1, C, 1, ...]
            let mean = x.mean(&axes, true)?;
            let centered = x.sub(&mean)?;
            let var = centered.square().mean(&axes, true)?;
            if self.training.get() {
                self.update_running_stats(&mean.detach(), &var.detach(), per_channel)?;
            }
            centered.mul(&var.add_scalar(self.eps).pow_scalar(-0.5))?
        } else {
            let missing =
                || Error::InvalidArgument { op: "BatchNorm", reason: "no running statistics".into() };
            let rm = self.running_mean.as_ref().ok_or_else(missing)?.detach().reshape(&stat_shape)?;
            let rv = self.running_var.as_ref().ok_or_else(missing)?.detach().reshape(&stat_shape)?;
            x.sub(&rm)?.mul(&rv.add_scalar(self.eps).pow_scalar(-0.5))?
        };
        let mut y = normalized;
        if let Some(w) = &self.weight {
            y = y.mul(&w.reshape(&stat_shape)?)?;
        }
        if let Some(b) = &self.bias {
            y = y.add(&b.reshape(&stat_shape)?)?;
        }
        Ok(y)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for (name, param) in [("weight", &self.weight), ("bias", &self.bias)] {
            if let Some(param) = param {
                v.parameter(name, param);
            }
        }
        let buffers = [
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
            ("num_batches_tracked", &self.num_batches_tracked),
        ];
        for (name, buffer) in buffers {
            if let Some(buffer) = buffer {
                v.buffer(name, buffer);
            }
        }
        v.mode(&self.training);
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::check_module_gradients;
    use graphgrad_ops::testing::{assert_close, random_vec};
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0)
    }

    fn f64_config(c: usize) -> BatchNormConfig {
        BatchNormConfig::new(c).with_dtype(DType::F64)
    }

    #[test]
    fn training_step_hand_computed() {
        // x: [4, 2], channel 0 = [1, 2, 3, 6], channel 1 = [0, 0, 4, 4]
        // channel 0: mean 3, biased var (4 + 1 + 0 + 9)/4 = 3.5, unbiased 14/3
        // channel 1: mean 2, biased var 4, unbiased 16/3
        // eps 0 for exact values: y0 = (x − 3)/√3.5, y1 = (x − 2)/2
        let bn = f64_config(2).with_eps(0.0).init_1d(&mut rng()).unwrap();
        let x = Tensor::from_vec(vec![1.0f64, 0.0, 2.0, 0.0, 3.0, 4.0, 6.0, 4.0], &[4, 2]).unwrap();
        let y = bn.forward(&x).unwrap();
        let s = 3.5f64.sqrt();
        let expected = [-2.0 / s, -1.0, -1.0 / s, -1.0, 0.0, 1.0, 3.0 / s, 1.0];
        assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-12);
        // running_mean = 0.9·0 + 0.1·mean = [0.3, 0.2]
        // running_var = 0.9·1 + 0.1·unbiased = [0.9 + 14/30, 0.9 + 16/30]
        let rm = bn.running_mean.as_ref().unwrap().to_f64_vec();
        let rv = bn.running_var.as_ref().unwrap().to_f64_vec();
        assert_close(&rm, &[0.3, 0.2], 1e-12, 1e-12);
        assert_close(&rv, &[0.9 + 14.0 / 30.0, 0.9 + 16.0 / 30.0], 1e-12, 1e-12);
        assert_eq!(bn.num_batches_tracked.as_ref().unwrap().item().unwrap(), 1.0);
        // eval: (x − running_mean)/√running_var, buffers unchanged
        bn.set_training(false);
        let y = bn.forward(&x).unwrap().to_f64_vec();
        for (k, v) in x.to_f64_vec().into_iter().enumerate() {
            let c = k % 2;
            assert!((y[k] - (v - rm[c]) / rv[c].sqrt()).abs() < 1e-12);
        }
        assert_eq!(bn.running_mean.as_ref().unwrap().to_f64_vec(), rm);
        assert_eq!(bn.num_batches_tracked.as_ref().unwrap().item().unwrap(), 1.0);
    }

    #[test]
    fn a_pytorch_state_dict_with_its_integer_counter_loads() {
        // PyTorch's BatchNorm1d(2).state_dict() keeps num_batches_tracked as int64
        let bn = f64_config(2).init_1d(&mut rng()).unwrap();
        let t = |v: Vec<f64>| Tensor::from_vec(v, &[2]).unwrap();
        let state: graphgrad_autodiff::StateDict = [
            ("weight", t(vec![2.0, 0.5])),
            ("bias", t(vec![1.0, -1.0])),
            ("running_mean", t(vec![0.5, -2.0])),
            ("running_var", t(vec![4.0, 0.25])),
            ("num_batches_tracked", Tensor::from_vec(vec![7i64], &[]).unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        bn.load_state_dict(&state).unwrap();
        assert_eq!(bn.num_batches_tracked.as_ref().unwrap().item().unwrap(), 7.0);
        bn.set_training(false);
        let y = bn.forward(&Tensor::from_vec(vec![2.5f64, -1.0], &[1, 2]).unwrap()).unwrap();
        // (x − mean)/√(var + 1e-5)·w + b
        let expected = [2.0 / (4.0f64 + 1e-5).sqrt() * 2.0 + 1.0, 1.0 / (0.25f64 + 1e-5).sqrt() * 0.5 - 1.0];
        assert_close(&y.to_f64_vec(), &expected, 1e-12, 1e-12);
        // other element types stay a mismatch
        let mut wrong = state.clone();
        wrong.insert("weight".into(), Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap());
        assert!(bn.load_state_dict(&wrong).unwrap_err().to_string().contains("weight"));
    }

    #[test]
    fn cumulative_average_without_momentum() {
        // momentum None: after batches with means 3 then 5, running_mean = (3 + 5)/2 = 4
        let bn = f64_config(1).with_momentum(None).init_1d(&mut rng()).unwrap();
        bn.forward(&Tensor::from_vec(vec![2.0f64, 4.0], &[2, 1]).unwrap()).unwrap();
        assert_eq!(bn.running_mean.as_ref().unwrap().to_f64_vec(), vec![3.0]);
        // first batch var (unbiased) = 2, factor 1 → running_var 2
        assert_eq!(bn.running_var.as_ref().unwrap().to_f64_vec(), vec![2.0]);
        bn.forward(&Tensor::from_vec(vec![5.0f64, 5.0], &[2, 1]).unwrap()).unwrap();
        assert_eq!(bn.running_mean.as_ref().unwrap().to_f64_vec(), vec![4.0]);
        // factor 1/2: (2 + 0)/2 = 1
        assert_eq!(bn.running_var.as_ref().unwrap().to_f64_vec(), vec![1.0]);
    }

    #[test]
    fn batchnorm2d_matches_reference() {
        // statistics per channel over (N, H, W); γ, β random
        let bn = f64_config(3).init_2d(&mut rng()).unwrap();
        let (g, b) = (random_vec::<f64>(3, 1), random_vec::<f64>(3, 2));
        bn.weight.as_ref().unwrap().set(&Tensor::from_vec(g.clone(), &[3]).unwrap()).unwrap();
        bn.bias.as_ref().unwrap().set(&Tensor::from_vec(b.clone(), &[3]).unwrap()).unwrap();
        let x = Tensor::from_vec(random_vec::<f64>(2 * 3 * 2 * 2, 3), &[2, 3, 2, 2]).unwrap();
        let xv = x.to_f64_vec();
        let channel = |c: usize| -> Vec<f64> {
            (0..2).flat_map(|n| (0..4).map(move |p| (n, p))).map(|(n, p)| xv[(n * 3 + c) * 4 + p]).collect()
        };
        let y = bn.forward(&x).unwrap().to_f64_vec();
        for c in 0..3 {
            let v = channel(c);
            let mean = v.iter().sum::<f64>() / 8.0;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0;
            for n in 0..2 {
                for p in 0..4 {
                    let k = (n * 3 + c) * 4 + p;
                    let want = (xv[k] - mean) / (var + 1e-5).sqrt() * g[c] + b[c];
                    assert!((y[k] - want).abs() < 1e-10, "channel {c}");
                }
            }
            let rm = bn.running_mean.as_ref().unwrap().to_f64_vec()[c];
            let rv = bn.running_var.as_ref().unwrap().to_f64_vec()[c];
            assert!((rm - 0.1 * mean).abs() < 1e-12);
            assert!((rv - (0.9 + 0.1 * var * 8.0 / 7.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn gradients_in_both_modes() {
        let bn = f64_config(2).init_1d(&mut rng()).unwrap();
        bn.weight.as_ref().unwrap().set(&Tensor::from_vec(vec![1.5f64, -0.5], &[2]).unwrap()).unwrap();
        let x = Tensor::from_vec(random_vec::<f64>(3 * 2 * 4, 7), &[3, 2, 4]).unwrap();
        check_module_gradients(&bn, &x);
        bn.set_training(false);
        check_module_gradients(&bn, &x);
        let bn2 = f64_config(2).with_track_running_stats(false).init_2d(&mut rng()).unwrap();
        check_module_gradients(
            &bn2,
            &Tensor::from_vec(random_vec::<f64>(2 * 2 * 2 * 3, 8), &[2, 2, 2, 3]).unwrap(),
        );
    }

    #[test]
    fn buffers_names_and_errors() {
        let bn = BatchNormConfig::new(4).init_2d(&mut rng()).unwrap();
        let params: Vec<String> = bn.named_parameters().into_iter().map(|(n, _)| n).collect();
        let buffers: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(params, ["weight", "bias"]);
        assert_eq!(buffers, ["running_mean", "running_var", "num_batches_tracked"]);
        let untracked = BatchNormConfig::new(4)
            .with_track_running_stats(false)
            .with_affine(false)
            .init_1d(&mut rng())
            .unwrap();
        assert!(untracked.named_parameters().is_empty() && untracked.named_buffers().is_empty());
        // eval without running stats uses the batch: output has zero mean per channel
        untracked.set_training(false);
        let y = untracked
            .forward(&Tensor::from_vec((0..8).map(f64::from).collect::<Vec<_>>(), &[2, 4]).unwrap())
            .unwrap();
        assert!(y
            .to_f64_vec()
            .iter()
            .take(4)
            .zip(y.to_f64_vec().iter().skip(4))
            .all(|(a, b)| (a + b).abs() < 1e-9));
        assert!(bn.forward(&Tensor::zeros(&[2, 3, 4, 4], DType::F32).unwrap()).is_err());
        assert!(bn.forward(&Tensor::zeros(&[2, 4, 4], DType::F32).unwrap()).is_err());
        // one value per channel in training is an error, as in PyTorch
        let bn1 = BatchNormConfig::new(3).init_1d(&mut rng()).unwrap();
        assert!(bn1.forward(&Tensor::zeros(&[1, 3], DType::F32).unwrap()).is_err());
        bn1.set_training(false);
        assert!(bn1.forward(&Tensor::zeros(&[1, 3], DType::F32).unwrap()).is_ok());
        assert!(BatchNormConfig::new(0).init_1d(&mut rng()).is_err());
        assert!(BatchNormConfig::new(2).with_momentum(Some(1.5)).init_1d(&mut rng()).is_err());
    }
}

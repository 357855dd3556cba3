//! Optimisers, learning-rate schedules, gradient clipping, stopping criteria and checkpoints
//! for graphgrad.
//!
//! - [`Optimizer`]: [`Sgd`] (momentum, dampening, Nesterov, weight decay), [`Adam`]
//!   (AMSGrad), [`AdamW`] (Adam with decoupled weight decay), [`RmsProp`] (centred, momentum)
//!   and [`Adagrad`], with parameter groups. All are one [`ParamOptimizer`] over an
//!   [`UpdateRule`]: each parameter is updated in one fused pass over its raw `f32`/`f64`
//!   slices, with PyTorch's formulas. Each optimiser's settings are declared once, with their
//!   defaults and ranges, by [`settings!`].
//! - Schedules ([`LrScheduler`] over a [`Schedule`]): [`StepLr`], [`MultiStepLr`],
//!   [`ExponentialLr`], [`CosineAnnealingLr`], [`LinearWarmup`]; and [`ReduceLrOnPlateau`].
//! - [`clip_grad_norm`] and [`clip_grad_value`].
//! - Stopping: [`StoppingCriteria`] (max epochs, loss target, [`EarlyStopping`] restoring the
//!   best weights), divergence as an error ([`check_loss`], [`check_gradients_finite`], [`step_if_finite`]).
//! - [`Checkpoint`]: model, optimiser, schedule, progress, RNG and metadata in one checksummed,
//!   versioned, atomically written file; safetensors export and import.
//!
//! ```
//! use graphgrad_autodiff::{Tensor, Var};
//! use graphgrad_optim::{clip_grad_norm, AdamW, AdamWConfig, CosineAnnealingLr, LrScheduler, Optimizer};
//! // Fit w·x to y = 3x.
//! let w = Var::new("w", &Tensor::from_vec(vec![0.0f64], &[1])?);
//! let params = vec![("w".to_string(), w.clone())];
//! let mut opt = AdamW::new(params.clone(), AdamWConfig::new(0.1).weight_decay(0.0))?;
//! let mut sched = LrScheduler::new(CosineAnnealingLr::new(200, 0.001), &mut opt)?;
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], &[3])?;
//! let y = x.mul_scalar(3.0);
//! for _ in 0..200 {
//!     opt.zero_grad();
//!     let loss = x.mul(&w)?.sub(&y)?.square().mean_all();
//!     loss.backward()?;
//!     clip_grad_norm(&params, 10.0)?;
//!     opt.step()?;
//!     sched.step(&mut opt)?;
//! }
//! assert!((w.to_vec::<f64>()?[0] - 3.0).abs() < 1e-2);
//! # Ok::<(), graphgrad_optim::Error>(())
//! ```

#![warn(missing_docs)]

mod adagrad;
mod adam;
mod checkpoint;
mod clip;
mod early_stopping;
mod error;
mod grad;
mod num;
mod optimizer;
mod param_optimizer;
mod rmsprop;
mod safetensors_io;
mod saved;
mod schedule;
mod settings;
mod sgd;
mod stopping;
#[cfg(test)]
mod testing;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamSettings, AdamW, AdamWConfig};
pub use checkpoint::{seal_payload, write_atomic, Checkpoint, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use early_stopping::{EarlyStopping, EarlyStoppingState};
pub use error::{Error, FormatError, Result};
pub use num::Num;
pub use optimizer::{GroupState, Optimizer, OptimizerState, ParamState};
pub use param_optimizer::{ParamGroup, ParamOptimizer, UpdateRule};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use safetensors_io::{
    from_safetensors_bytes, load_safetensors, load_safetensors_into, save_safetensors, to_safetensors_bytes,
};
pub use saved::{SavedData, SavedState, SavedTensor};
pub use schedule::{
    ConstantLr, CosineAnnealingLr, ExponentialLr, LinearWarmup, LrScheduler, MetricMode, MultiStepLr,
    ReduceLrOnPlateau, Schedule, ScheduleState, Scheduler, StepLr, ThresholdMode,
};
pub use settings::{Range, SettingValue, Settings};
pub use sgd::{Sgd, SgdConfig};
pub use stopping::{check_gradients_finite, check_loss, step_if_finite, StopReason, StoppingCriteria};

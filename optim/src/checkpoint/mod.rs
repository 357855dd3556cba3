//! Checkpoints: everything needed to resume training bit-identically, in one file.
//!
//! A [`Checkpoint`] holds the model's named tensors, the optimiser's state, the schedule's
//! progress, epoch and step counters, the ChaCha8 RNG that draws mini-batches, and free-form
//! string metadata. It is encoded with bincode (1.x) behind a header with a magic number, a
//! format version, the payload length and CRC-32 checksums (layout in `format.rs`), and saved
//! atomically ([`write_atomic`]). Loading rejects any damaged file with an error that says
//! what is wrong ([`FormatError`]); restoring into a model lists missing, unexpected and
//! mismatched tensor names and shapes.

mod atomic;
mod format;

pub use atomic::write_atomic;
pub use format::{seal_payload, FORMAT_VERSION, HEADER_LEN, MAGIC};

use crate::saved::{load_state_dict, save_state_dict, SavedState};
use crate::{Error, FormatError, Optimizer, OptimizerState, Result, ScheduleState, Scheduler};
use bincode::Options;
use graphgrad_autodiff::{load_state, StateDict, Var};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A snapshot of a training run.
///
/// ```
/// use graphgrad_autodiff::{Tensor, Var};
/// use graphgrad_optim::{Adam, AdamConfig, Checkpoint, Optimizer};
/// use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
/// let w = Var::new("w", &Tensor::from_vec(vec![1.0f32, 2.0], &[2])?);
/// let model = vec![("w".to_string(), w.clone())];
/// let opt = Adam::new(model.clone(), AdamConfig::new(1e-3))?;
/// let ckpt = Checkpoint::new(&model)
///     .with_optimizer(&opt)
///     .with_rng(&ChaCha8Rng::seed_from_u64(7))
///     .with_progress(3, 120)
///     .with_metadata("run", "doc-example");
/// let bytes = ckpt.to_bytes()?;
/// let back = Checkpoint::from_bytes(&bytes)?;
/// assert_eq!(back, ckpt);
/// w.set(&Tensor::zeros(&[2], graphgrad_autodiff::DType::F32)?)?;
/// back.restore_model(&model)?;
/// assert_eq!(w.to_vec::<f32>()?, vec![1.0, 2.0]);
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The model's tensors by name.
    pub model: SavedState,
    /// The optimiser's state, when saved.
    pub optimizer: Option<OptimizerState>,
    /// The schedule's progress, when saved.
    pub schedule: Option<ScheduleState>,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimiser steps taken.
    pub step: u64,
    /// The random generator that draws mini-batches (and dropout masks), when saved.
    pub rng: Option<ChaCha8Rng>,
    /// Free-form notes (run name, git commit, metric values...).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// A checkpoint of `model`'s current values (nothing else yet).
    pub fn new(model: &[(String, Var)]) -> Checkpoint {
        Checkpoint::from_state_dict(&graphgrad_autodiff::state_of(model))
    }

    /// A checkpoint of a state dict (a module's `state_dict()`, parameters and buffers).
    pub fn from_state_dict(state: &StateDict) -> Checkpoint {
        Checkpoint {
            model: save_state_dict(state),
            optimizer: None,
            schedule: None,
            epoch: 0,
            step: 0,
            rng: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Adds the optimiser's state.
    pub fn with_optimizer(mut self, optimizer: &dyn Optimizer) -> Checkpoint {
        self.optimizer = Some(optimizer.state());
        self
    }

    /// Adds a scheduler's progress.
    pub fn with_schedule(mut self, scheduler: &dyn Scheduler) -> Checkpoint {
        self.schedule = Some(scheduler.state());
        self
    }

    /// Sets the epoch and step counters.
    pub fn with_progress(mut self, epoch: u64, step: u64) -> Checkpoint {
        self.epoch = epoch;
        self.step = step;
        self
    }

    /// Adds the random generator's state.
    pub fn with_rng(mut self, rng: &ChaCha8Rng) -> Checkpoint {
        self.rng = Some(rng.clone());
        self
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Checkpoint {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The model's tensors as a state dict of fresh tensors.
    pub fn model_state(&self) -> Result<StateDict> {
        load_state_dict(&self.model)
    }

    /// Copies the saved tensors into `model` in place. Every parameter needs an entry of the
    /// same shape and dtype and every entry a parameter; otherwise nothing is written and the
    /// error lists the missing, unexpected and mismatched names with their shapes.
    pub fn restore_model(&self, model: &[(String, Var)]) -> Result<()> {
        Ok(load_state(model, &self.model_state()?)?)
    }

    /// Restores the optimiser (an error when none was saved).
    pub fn restore_optimizer(&self, optimizer: &mut dyn Optimizer) -> Result<()> {
        match &self.optimizer {
            Some(state) => optimizer.load_state(state),
            None => Err(missing_part("optimizer state")),
        }
    }

    /// Restores a scheduler (an error when none was saved).
    pub fn restore_schedule(&self, scheduler: &mut dyn Scheduler) -> Result<()> {
        match &self.schedule {
            Some(state) => scheduler.load_state(state),
            None => Err(missing_part("schedule state")),
        }
    }

    /// The saved random generator (an error when none was saved).
    pub fn rng(&self) -> Result<ChaCha8Rng> {
        self.rng.clone().ok_or_else(|| missing_part("RNG state"))
    }

    /// The file's bytes: header and bincode payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = bincode::DefaultOptions::new().serialize(self).map_err(|e| {
            Error::checkpoint(None, FormatError::Malformed { reason: format!("cannot encode: {e}") })
        })?;
        Ok(format::seal_payload(&payload, FORMAT_VERSION))
    }

    /// Decodes and validates a checkpoint; any damage is an [`Error::Checkpoint`] saying what.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        Checkpoint::decode(bytes).map_err(|problem| Error::checkpoint(None, problem))
    }

    /// Saves atomically to `path` (the previous file survives a crash mid-save).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads and validates the checkpoint at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::decode(&bytes).map_err(|problem| Error::checkpoint(Some(path), problem))
    }

    fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
        let payload = format::unseal(bytes)?;
        let checkpoint: Checkpoint = bincode::DefaultOptions::new()
            .with_limit(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| FormatError::Malformed { reason: format!("cannot decode: {e}") })?;
        checkpoint.validate()?;
        Ok(checkpoint)
    }

    /// Every saved tensor's element count matches its shape.
    fn validate(&self) -> Result<(), FormatError> {
        for (name, tensor) in &self.model {
            tensor.validate(name)?;
        }
        if let Some(optimizer) = &self.optimizer {
            for (name, param) in &optimizer.params {
                for (slot, tensor) in &param.slots {
                    tensor.validate(&format!("{name}/{slot}"))?;
                }
            }
        }
        Ok(())
    }
}

fn missing_part(what: &str) -> Error {
    Error::InvalidConfig { what: "Checkpoint", reason: format!("the checkpoint holds no {what}") }
}

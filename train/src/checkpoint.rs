//! Training checkpoints (everything a run needs to continue bit-identically) and the
//! strategies that decide which to keep.
//!
//! A [`TrainingCheckpoint`] is the model checkpoint of `graphgrad-optim` (parameters *and*
//! buffers, optimiser, schedule, epoch, step, the batch-drawing RNG) plus what only the
//! trainer knows: the metric history (so the curves continue), the early-stopping progress and
//! best weights, the modules' own random streams (dropout masks), the best monitored value,
//! and why the run stopped, if it did. The file is laid out like the optimiser's checkpoints,
//! with its own magic:
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"GGTRAINR"
//!      8     4  format version (u32 LE; this build writes 1)
//!     12     4  flags (0)
//!     16     8  payload length (u64 LE)
//!     24     4  CRC-32 of the payload
//!     28     4  CRC-32 of bytes 0..28
//!     32     …  bincode of TrainingCheckpoint
//! ```
//!
//! and saved atomically (`graphgrad_optim::write_atomic`): a crash mid-save leaves the
//! previous file whole.

use crate::error::{io, Error, Result};
use crate::metrics::History;
use bincode::Options;
use graphgrad_optim::{Checkpoint, EarlyStoppingState, StopReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The first 8 bytes of a training checkpoint.
pub const TRAINING_MAGIC: [u8; 8] = *b"GGTRAINR";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// Why a finished run stopped, as saved (so a resume does not train past it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SavedStop {
    /// The epoch budget was spent.
    MaxEpochs {
        /// Epochs trained.
        epochs: u64,
    },
    /// The training loss reached its target.
    LossTarget {
        /// The loss.
        loss: f64,
        /// The target.
        target: f64,
    },
    /// Early stopping.
    EarlyStopping {
        /// The best value.
        best: f64,
        /// Its epoch (1-based).
        best_epoch: u64,
    },
    /// A callback asked to stop.
    Callback,
}

impl SavedStop {
    pub(crate) fn from_reason(reason: &StopReason) -> SavedStop {
        match *reason {
            StopReason::MaxEpochs { epochs } => SavedStop::MaxEpochs { epochs },
            StopReason::LossTarget { loss, target } => SavedStop::LossTarget { loss, target },
            StopReason::EarlyStopping { best, best_epoch } => {
                SavedStop::EarlyStopping { best, best_epoch: best_epoch + 1 }
            }
        }
    }
}

/// What the trainer adds to a model checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Every epoch so far.
    pub history: History,
    /// Early stopping's progress, when configured.
    pub early_stopping: Option<EarlyStoppingState>,
    /// The modules' random streams by name (dropout masks, VAE noise).
    pub random_streams: BTreeMap<String, [i64; 2]>,
    /// The best monitored value and its epoch (1-based), for keep-best checkpoints.
    pub best: Option<(f64, u64)>,
    /// Why the run stopped, when it had.
    pub stopped: Option<SavedStop>,
    /// The settings the run was made with (batch size, accumulation, mode), for the
    /// message when a resume changes one.
    pub settings: BTreeMap<String, String>,
}

/// A model checkpoint with the trainer's state: a run resumes from it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingCheckpoint {
    /// Model (parameters and buffers), optimiser, schedule, epoch, step and batch RNG.
    pub checkpoint: Checkpoint,
    /// History, early stopping, random streams, best value, stop.
    pub trainer: TrainerState,
}

impl TrainingCheckpoint {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = bincode::DefaultOptions::new()
            .serialize(self)
            .map_err(|e| Error::Setting { what: "checkpoint", reason: format!("cannot encode: {e}") })?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(&TRAINING_MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        let header_crc = crc32fast::hash(&out[..28]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes and checks a file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<TrainingCheckpoint> {
        let bad = |reason: String| Error::Resume { path: path.to_path_buf(), reason };
        if bytes.len() >= 8 && bytes[..8] == graphgrad_optim::MAGIC {
            return Err(bad("this is a model checkpoint (graphgrad-optim), not a training checkpoint: \
                            load it with Checkpoint::load and restore the model from it"
                .into()));
        }
        if bytes.len() < 8 || bytes[..8] != TRAINING_MAGIC {
            return Err(bad("not a training checkpoint (wrong magic bytes)".into()));
        }
        if bytes.len() < HEADER {
            return Err(bad(format!("truncated: {} bytes, the header alone is {HEADER}", bytes.len())));
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if u32_at(28) != crc32fast::hash(&bytes[..28]) {
            return Err(bad("the header is corrupted (checksum mismatch)".into()));
        }
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!("format version {version}; this build reads version {VERSION}")));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[16..24]);
        let expected = (HEADER as u64).saturating_add(u64::from_le_bytes(len));
        if bytes.len() as u64 != expected {
            return Err(bad(format!("truncated or padded: {} bytes, expected {expected}", bytes.len())));
        }
        let payload = &bytes[HEADER..];
        if u32_at(24) != crc32fast::hash(payload) {
            return Err(bad("the contents are corrupted (checksum mismatch)".into()));
        }
        let checkpoint: TrainingCheckpoint = bincode::DefaultOptions::new()
            .with_limit(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| bad(format!("cannot decode: {e}")))?;
        // Every tensor's element count matches its shape.
        checkpoint.checkpoint.model_state().map_err(|e| bad(e.to_string()))?;
        Ok(checkpoint)
    }

    /// Saves atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(graphgrad_optim::write_atomic(path, &self.to_bytes()?)?)
    }

    /// Loads and checks the training checkpoint at `path`.
    pub fn load(path: &Path) -> Result<TrainingCheckpoint> {
        let bytes = std::fs::read(path).map_err(io("read", path))?;
        TrainingCheckpoint::from_bytes(&bytes, path)
    }
}

/// Which checkpoints a run writes, into one folder.
///
/// - the last `keep_last` epochs as `epoch-0007.ggtr` (older ones are deleted);
/// - with `keep_best`, `best.ggtr` whenever the monitored value improves.
///
/// Every file is a full [`TrainingCheckpoint`]: any of them resumes the run.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointPolicy {
    /// The folder (created when needed).
    pub dir: PathBuf,
    /// How many of the latest epochs to keep (0: none but the best).
    pub keep_last: usize,
    /// Also keep the checkpoint of the best epoch of the monitored value.
    pub keep_best: bool,
}

impl CheckpointPolicy {
    /// Keeps the last checkpoint only, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CheckpointPolicy {
        CheckpointPolicy { dir: dir.into(), keep_last: 1, keep_best: false }
    }

    /// Keeps the last `n` epochs' checkpoints.
    pub fn keep_last(mut self, n: usize) -> CheckpointPolicy {
        self.keep_last = n;
        self
    }

    /// Also keeps `best.ggtr`, the checkpoint of the best monitored epoch.
    pub fn keep_best(mut self, keep: bool) -> CheckpointPolicy {
        self.keep_best = keep;
        self
    }

    /// The file of epoch `epoch` (1-based).
    pub fn epoch_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:04}.ggtr"))
    }

    /// The best epoch's file.
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.ggtr")
    }

    /// The epoch files in the folder, oldest first.
    pub fn epoch_files(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io("read", &self.dir)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name
                .strip_prefix("epoch-")
                .and_then(|r| r.strip_suffix(".ggtr"))
                .and_then(|n| n.parse().ok());
            if let Some(epoch) = epoch {
                found.push((epoch, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The newest epoch file, to resume from.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        Ok(self.epoch_files()?.pop().map(|(_, path)| path))
    }

    /// Writes epoch `epoch`'s checkpoint (and the best one when `improved`), then deletes
    /// epoch files beyond the last `keep_last` (and any after `epoch`: they belong to a run
    /// that was resumed from an earlier checkpoint).
    pub(crate) fn save(&self, checkpoint: &TrainingCheckpoint, epoch: u64, improved: bool) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        if self.keep_last > 0 {
            checkpoint.save(&self.epoch_path(epoch))?;
        }
        if self.keep_best && improved {
            checkpoint.save(&self.best_path())?;
        }
        let files = self.epoch_files()?;
        let keep_from = files.iter().filter(|(e, _)| *e <= epoch).count().saturating_sub(self.keep_last);
        let mut older = 0;
        for (e, path) in files {
            let stale = if e <= epoch {
                older += 1;
                older <= keep_from
            } else {
                true
            };
            if stale {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        Ok(())
    }
}

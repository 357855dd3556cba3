//! The training loop as a library: what every user's loop needs, so that a program of a few
//! lines trains, shows its progress, logs, plots, checkpoints and resumes like the examples.
//!
//! - [`Trainer`]: model, loss ([`Objective`]), optimiser, optional schedule, training and
//!   validation data, [`Metric`]s, stopping criteria and early stopping; [`fit`],
//!   [`evaluate`] and [`predict`]; eager or compiled steps ([`Execution`]); gradient
//!   accumulation; frozen parameters; [`Callback`]s at batch and epoch ends.
//! - Progress: a bar with ETA on a terminal, plain lines (one per epoch, then a summary)
//!   anywhere else ([`ProgressMode`]).
//! - Logs: `metrics.jsonl` (and `steps.jsonl`), TensorBoard event files ([`EventWriter`]).
//! - Plots: learning curves and the confusion matrix, SVG and PNG ([`plot`]).
//! - Checkpoints: [`CheckpointPolicy`] keeps the last N and the best; a
//!   [`TrainingCheckpoint`] resumes a run bit-identically, its curves included.
//!
//! [`fit`]: Trainer::fit
//! [`evaluate`]: Trainer::evaluate
//! [`predict`]: Trainer::predict
//!
//! ```
//! use graphgrad_nn::data::{load_digits, SplitFractions};
//! use graphgrad_nn::{LinearConfig, Module, ReLU, Sequential};
//! use graphgrad_optim::{Adam, AdamConfig, EarlyStopping, MetricMode};
//! use graphgrad_train::{CrossEntropy, Metric, ProgressMode, Trainer};
//! use rand::SeedableRng;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut digits = load_digits()?;
//! digits.scale_features(1.0 / 16.0);
//! let split = digits.stratified_split(SplitFractions { validation: 0.15, test: 0.15 }, &mut rng)?;
//! let model = Sequential::new()
//!     .append(LinearConfig::new(64, 32).init(&mut rng)?)
//!     .append(ReLU)
//!     .append(LinearConfig::new(32, 10).init(&mut rng)?);
//! let optimizer = Adam::new(model.named_parameters(), AdamConfig::new(3e-3))?;
//! let mut trainer = Trainer::new(model, optimizer, CrossEntropy)
//!     .epochs(5)
//!     .batch_size(32)
//!     .metrics(&[Metric::Accuracy, Metric::MacroF1])
//!     .early_stopping(EarlyStopping::new(MetricMode::Min, 3))
//!     .progress(ProgressMode::Silent);
//! let history = trainer.fit(&split.train, Some(&split.validation))?;
//! assert_eq!(history.epochs.len(), 5);
//! let test = trainer.evaluate(&split.test)?; // data never seen in training
//! assert!(test.metrics["accuracy"] > 0.85, "{:?}", test.metrics);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod callback;
mod checkpoint;
mod error;
pub mod log;
mod metrics;
mod objective;
pub mod plot;
pub mod progress;
mod schedule;
mod trainer;

pub use callback::{BatchEnd, Callback, Control};
pub use checkpoint::{CheckpointPolicy, SavedStop, TrainerState, TrainingCheckpoint, TRAINING_MAGIC};
pub use error::{Error, Result};
pub use log::{EventWriter, JsonLines};
pub use metrics::{EpochRecord, Evaluation, History, Metric};
pub use objective::{objective_fn, CrossEntropy, FnObjective, MeanSquaredError, Objective, StepTargets};
pub use progress::ProgressMode;
pub use schedule::EpochSchedule;
pub use trainer::{Execution, Trainer};

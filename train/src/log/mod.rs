//! Logs of a run: a JSON-lines file of every value per epoch (and per step when asked), and
//! TensorBoard event files of the same scalars.
//!
//! Both are rewritten from the run's [`History`](crate::History) when `fit` starts, so a
//! resumed run's logs hold the whole run once: the epochs before the checkpoint, then the new
//! ones, and nothing from epochs trained after the checkpoint that was resumed from.

mod jsonl;
mod tensorboard;

pub use jsonl::JsonLines;
pub(crate) use tensorboard::wall_time;
pub use tensorboard::{masked_crc32c, EventWriter};

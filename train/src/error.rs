//! The training library's error: a bad setting named with its value, or an error from the
//! crates below (tensors, optimisers, checkpoints, process groups) or from a file.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while configuring or running training.
#[derive(Debug)]
pub enum Error {
    /// A setting that cannot work (`epochs 0`, `batch size 0`, an empty validation set, ...).
    Setting {
        /// The setting (`"epochs"`, `"validation data"`).
        what: &'static str,
        /// Why, with the offending value.
        reason: String,
    },
    /// A checkpoint that does not belong to this run (another model, a spent epoch budget).
    Resume {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A tensor or module operation failed.
    Tensor(graphgrad_autodiff::Error),
    /// An optimiser, schedule, stopping criterion or checkpoint failed.
    Optim(graphgrad_optim::Error),
    /// Reading or writing a file failed.
    Io {
        /// `"write"`, `"read"`, `"create"`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A plot could not be drawn or rendered.
    Plot {
        /// The figure.
        what: String,
        /// Why.
        reason: String,
    },
    /// A callback stopped training with an error of its own.
    Callback(String),
    /// Data-parallel training failed: a collective, another rank, or ranks with different
    /// models.
    Distributed(graphgrad_distributed::Error),
}

/// `Result` with the training library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setting { what, reason } => write!(f, "{what}: {reason}"),
            Error::Resume { path, reason } => write!(f, "cannot resume from {}: {reason}", path.display()),
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Optim(e) => write!(f, "{e}"),
            Error::Io { action, path, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Plot { what, reason } => write!(f, "plot {what}: {reason}"),
            Error::Callback(message) => write!(f, "callback: {message}"),
            Error::Distributed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tensor(e) => Some(e),
            Error::Optim(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Distributed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<graphgrad_autodiff::Error> for Error {
    fn from(e: graphgrad_autodiff::Error) -> Error {
        Error::Tensor(e)
    }
}

impl From<graphgrad_optim::Error> for Error {
    fn from(e: graphgrad_optim::Error) -> Error {
        match e {
            graphgrad_optim::Error::Tensor(e) => Error::Tensor(e),
            other => Error::Optim(other),
        }
    }
}

/// A [`Error::Setting`].
pub(crate) fn setting(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Setting { what, reason: reason.into() }
}

/// An [`Error::Io`] for `path`.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}

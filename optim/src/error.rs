//! The error type of `optim`: bad hyper-parameters, state that does not fit, divergence,
//! and I/O and format problems of checkpoint and safetensors files. Tensor errors from
//! `autodiff` are wrapped unchanged. Every message says what is wrong and, for files, where.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when optimising, scheduling, stopping or checkpointing.
#[derive(Debug)]
pub enum Error {
    // ---- tensors ----
    /// An error from a tensor op or from `load_state` (which lists missing, unexpected and
    /// mismatched tensor names and shapes).
    Tensor(graphgrad_autodiff::Error),
    // ---- configuration and state ----
    /// A hyper-parameter or argument is out of range.
    InvalidConfig {
        /// What was being configured (`"Adam"`, `"StepLr"`, `"clip_grad_norm"`, ...).
        what: &'static str,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// Saved state (of an optimiser or a schedule) does not fit what it is loaded into.
    StateMismatch {
        /// What was being loaded (`"Adam state"`, `"schedule state"`).
        what: &'static str,
        /// Names expected but absent.
        missing: Vec<String>,
        /// Names present but not expected.
        unexpected: Vec<String>,
        /// `name: expected ..., found ...` lines.
        mismatched: Vec<String>,
    },
    // ---- training control ----
    /// A loss, metric or gradient norm is NaN or infinite: training stopped before any
    /// weight was written with it.
    Diverged {
        /// What was non-finite (`"loss"`, `"gradient norm"`).
        what: &'static str,
        /// The value (NaN or ±inf).
        value: f64,
        /// The epoch it happened in.
        epoch: u64,
        /// The optimiser step it happened at.
        step: u64,
    },
    /// A gradient holds NaN or ±inf: the op refused it and changed nothing.
    NonFiniteGradient {
        /// The function that found it (`clip_grad_norm`, `check_gradients_finite`).
        op: &'static str,
        /// The first parameter whose gradient is not finite.
        param: String,
        /// The global norm (NaN or inf), when the op computed one.
        norm: Option<f64>,
    },
    /// A step with finite gradients made a weight NaN or infinite (an update too large for
    /// the weight's type): the weights hold that step's values.
    NonFiniteUpdate {
        /// The first parameter whose new value is not finite.
        param: String,
        /// The epoch it happened in.
        epoch: u64,
        /// The optimiser step it happened at.
        step: u64,
    },
    // ---- files ----
    /// An operating-system I/O error on a file.
    Io {
        /// What was being done (`"create temporary file"`, `"read"`, `"rename"`, ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file (or byte buffer) is not a valid checkpoint.
    Checkpoint {
        /// The file, when the bytes came from one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        problem: FormatError,
    },
    /// A safetensors file (or byte buffer) cannot be imported or written.
    Safetensors {
        /// The file, when the bytes came from or go to one.
        path: Option<PathBuf>,
        /// What is wrong, naming the tensor where there is one.
        reason: String,
    },
}

/// What is wrong with a checkpoint file, checked in this order: magic, header checksum,
/// version, length, payload checksum, payload decoding, payload contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not start with the checkpoint magic (not a graphgrad checkpoint).
    WrongMagic {
        /// The first bytes found (up to 8).
        found: Vec<u8>,
    },
    /// The file ends inside the fixed-size header or inside the payload.
    Truncated {
        /// Bytes the header promises (header + payload), or the header size.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The header's own checksum does not match: the version or length fields are damaged.
    CorruptHeader {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum computed over the header fields.
        computed: u32,
    },
    /// The file was written by a newer format version than this build reads.
    FutureVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The version field is one no build ever wrote (0).
    UnknownVersion {
        /// The version in the file.
        found: u32,
    },
    /// There are more bytes after the payload than the header declares.
    TrailingBytes {
        /// Bytes the header declares (header + payload).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The payload's CRC-32 does not match: its bytes are corrupted.
    ChecksumMismatch {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the payload as read.
        computed: u32,
    },
    /// The payload passed its checksum but does not decode into a consistent checkpoint.
    Malformed {
        /// What is inconsistent.
        reason: String,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::WrongMagic { found } => {
                write!(f, "wrong magic: not a graphgrad checkpoint (file starts with {found:02x?})")
            }
            FormatError::Truncated { expected, found } => {
                write!(f, "truncated: {found} bytes present, {expected} expected")
            }
            FormatError::CorruptHeader { stored, computed } => write!(
                f,
                "corrupted header: header checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
            FormatError::FutureVersion { found, supported } => write!(
                f,
                "unsupported future format version {found} (this build reads versions up to {supported})"
            ),
            FormatError::UnknownVersion { found } => write!(f, "unknown format version {found}"),
            FormatError::TrailingBytes { expected, found } => {
                write!(f, "{} trailing bytes: {found} bytes present, {expected} expected", found - expected)
            }
            FormatError::ChecksumMismatch { stored, computed } => write!(
                f,
                "corrupted payload: checksum mismatch (CRC-32 {stored:#010x} stored, {computed:#010x} computed)"
            ),
            FormatError::Malformed { reason } => write!(f, "malformed payload: {reason}"),
        }
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, label: &str, names: &[String], sep: &str) -> fmt::Result {
    if !names.is_empty() {
        write!(f, "; {label}: {}", names.join(sep))?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tensor(e) => write!(f, "{e}"),
            Error::InvalidConfig { what, reason } => write!(f, "{what}: {reason}"),
            Error::StateMismatch { what, missing, unexpected, mismatched } => {
                write!(f, "{what} does not match")?;
                write_names(f, "missing", missing, ", ")?;
                write_names(f, "unexpected", unexpected, ", ")?;
                write_names(f, "mismatched", mismatched, "; ")
            }
            Error::Diverged { what, value, epoch, step } => write!(
                f,
                "training diverged: {what} is {value} at epoch {epoch}, step {step}; \
                 the weights were not updated with it"
            ),
            Error::NonFiniteGradient { op, param, norm } => {
                write!(f, "{op}: the gradient of `{param}` is not finite")?;
                if let Some(norm) = norm {
                    write!(f, " (global norm {norm})")?;
                }
                write!(f, "; no gradient or weight was changed")
            }
            Error::NonFiniteUpdate { param, epoch, step } => write!(
                f,
                "step_if_finite: the update at epoch {epoch}, step {step} made `{param}` non-finite \
                 (gradients were finite; the step is too large for the weights' type)"
            ),
            Error::Io { action, path, source } => {
                write!(f, "{}: cannot {action}: {source}", path.display())
            }
            Error::Checkpoint { path: Some(path), problem } => {
                write!(f, "checkpoint {}: {problem}", path.display())
            }
            Error::Checkpoint { path: None, problem } => write!(f, "checkpoint: {problem}"),
            Error::Safetensors { path: Some(path), reason } => {
                write!(f, "safetensors {}: {reason}", path.display())
            }
            Error::Safetensors { path: None, reason } => write!(f, "safetensors: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tensor(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<graphgrad_autodiff::Error> for Error {
    fn from(e: graphgrad_autodiff::Error) -> Error {
        Error::Tensor(e)
    }
}

/// Returns early with an [`Error::InvalidConfig`] built from a format string.
macro_rules! invalid {
    ($what:expr, $($arg:tt)*) => {
        return Err($crate::Error::InvalidConfig { what: $what, reason: format!($($arg)*) })
    };
}
pub(crate) use invalid;

impl Error {
    /// A checkpoint format error, with the file when known.
    pub(crate) fn checkpoint(path: Option<&std::path::Path>, problem: FormatError) -> Error {
        Error::Checkpoint { path: path.map(PathBuf::from), problem }
    }
}

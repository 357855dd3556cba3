//! The crate's error type. Every variant that concerns a process names its rank, so a message
//! printed by any rank of a job says which process it is about.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in distributed training.
#[derive(Debug)]
pub enum Error {
    /// An argument is out of range or inconsistent (a sampler over no samples, a zero bucket
    /// size, a rank outside the group...).
    InvalidArgument {
        /// The function or type that refused the argument.
        what: &'static str,
        /// What is wrong, with the values involved.
        reason: String,
    },
    /// A collective operation failed or could not start.
    Communication {
        /// The rank that saw the failure.
        rank: usize,
        /// The operation (`all_reduce`, `broadcast`, ...).
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The ranks do not hold the same model: every rank returns this same error.
    ModelMismatch {
        /// One line per difference, each naming the rank, the tensor and both shapes.
        differences: Vec<String>,
    },
    /// Another rank failed at a step that every rank takes part in (rank 0 could not write
    /// or read a checkpoint): every rank returns this error.
    RankFailed {
        /// The rank that failed.
        rank: usize,
        /// Its error message.
        reason: String,
    },
    /// MPI could not be set up (already initialised, too little thread support).
    Mpi {
        /// What went wrong.
        reason: String,
    },
    /// A tensor operation failed.
    Autodiff(graphgrad_autodiff::Error),
    /// An optimiser or checkpoint operation failed.
    Optim(graphgrad_optim::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { what, reason } => write!(f, "{what}: {reason}"),
            Error::Communication { rank, op, reason } => write!(f, "rank {rank}: {op} failed: {reason}"),
            Error::ModelMismatch { differences } => write!(
                f,
                "the ranks do not hold the same model (each must build the same parameters and buffers): {}",
                differences.join("; ")
            ),
            Error::RankFailed { rank, reason } => write!(f, "rank {rank} failed: {reason}"),
            Error::Mpi { reason } => write!(f, "MPI: {reason}"),
            Error::Autodiff(e) => e.fmt(f),
            Error::Optim(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Autodiff(e) => Some(e),
            Error::Optim(e) => Some(e),
            _ => None,
        }
    }
}

impl From<graphgrad_autodiff::Error> for Error {
    fn from(e: graphgrad_autodiff::Error) -> Error {
        Error::Autodiff(e)
    }
}

impl From<graphgrad_optim::Error> for Error {
    fn from(e: graphgrad_optim::Error) -> Error {
        Error::Optim(e)
    }
}

impl From<Error> for graphgrad_autodiff::Error {
    /// Errors raised inside a backward pass (the data-parallel gradient hook) travel as the
    /// tensor API's error: an autodiff error stays itself, any other is an invalid argument of
    /// `DistributedDataParallel` carrying the message.
    fn from(e: Error) -> graphgrad_autodiff::Error {
        match e {
            Error::Autodiff(e) => e,
            other => graphgrad_autodiff::Error::InvalidArgument {
                op: "DistributedDataParallel",
                reason: other.to_string(),
            },
        }
    }
}

//! The one error type of the tensor API. Every variant names the op and the offending shapes,
//! so a message alone says what went wrong where.

use graphgrad_ops::DType;
use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when building or differentiating a graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    // ---- shapes and types ----
    /// Two operands' shapes cannot be combined.
    ShapeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The left (first) operand's shape.
        lhs: Vec<usize>,
        /// The right (second) operand's shape.
        rhs: Vec<usize>,
    },
    /// Two operands have different element types.
    DTypeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The first operand's type.
        lhs: DType,
        /// The second operand's type.
        rhs: DType,
    },
    /// An axis does not exist for a tensor of this rank.
    AxisOutOfRange {
        /// The op that was called.
        op: &'static str,
        /// The axis asked for (negative counts from the end).
        axis: isize,
        /// The shape of the tensor.
        shape: Vec<usize>,
    },
    /// An index is outside the dimension it indexes.
    IndexOutOfRange {
        /// The op that was called.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// The size of the indexed dimension.
        len: usize,
    },
    /// Any other invalid argument, with an explanation.
    InvalidArgument {
        /// The op that was called.
        op: &'static str,
        /// What is wrong, with the values involved.
        reason: String,
    },
    /// Data length does not match the requested shape.
    DataLength {
        /// The shape asked for.
        shape: Vec<usize>,
        /// Elements supplied.
        len: usize,
    },
    /// A tensor too large to exist: its element count overflows `usize`, its bytes exceed
    /// `isize::MAX`, or the allocator refused the memory.
    TooLarge {
        /// The op that was called.
        op: &'static str,
        /// The shape asked for.
        shape: Vec<usize>,
        /// Its element type.
        dtype: DType,
    },
    /// Named tensors do not match what they are loaded into.
    StateMismatch {
        /// Names expected but absent.
        missing: Vec<String>,
        /// Names present but not expected.
        unexpected: Vec<String>,
        /// `name: expected shape dtype, found shape dtype` lines.
        mismatched: Vec<String>,
    },
    // ---- gradients ----
    /// `backward()` on a non-scalar tensor without an explicit seed gradient.
    NonScalarBackward {
        /// The shape of the tensor `backward` was called on.
        shape: Vec<usize>,
    },
    /// A gradient was asked of or through a tensor that does not require one.
    NoGradient {
        /// What was asked.
        what: String,
    },
    /// Numerical and analytic gradients disagree.
    GradcheckFailed {
        /// Which input (position in the input list).
        input: usize,
        /// Flat index of the worst element.
        index: usize,
        /// The analytic (autodiff) value.
        analytic: f64,
        /// The finite-difference value.
        numeric: f64,
        /// `|analytic - numeric| - (atol + rtol·|numeric|)` at that element.
        excess: f64,
    },
    /// `jvpcheck` found a forward-mode tangent that disagrees with finite differences.
    JvpcheckFailed {
        /// The input whose tangent was set (`None`: all inputs together).
        input: Option<usize>,
        /// Flat index of the worst output element.
        index: usize,
        /// The forward-mode (jvp) value.
        tangent: f64,
        /// The finite-difference value.
        numeric: f64,
        /// `|tangent - numeric| - (atol + rtol·|numeric|)` at that element.
        excess: f64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs } => {
                write!(f, "{op}: shapes {lhs:?} and {rhs:?} are incompatible")
            }
            Error::DTypeMismatch { op, lhs, rhs } => {
                write!(f, "{op}: element types {lhs} and {rhs} differ")
            }
            Error::AxisOutOfRange { op, axis, shape } => {
                write!(f, "{op}: axis {axis} is out of range for shape {shape:?} (rank {})", shape.len())
            }
            Error::IndexOutOfRange { op, index, len } => {
                write!(f, "{op}: index {index} is out of range for a dimension of size {len}")
            }
            Error::InvalidArgument { op, reason } => write!(f, "{op}: {reason}"),
            Error::DataLength { shape, len } => {
                write!(f, "from_vec: {len} elements cannot fill shape {shape:?}")?;
                match shape.iter().try_fold(1u128, |n, &d| n.checked_mul(d as u128)) {
                    Some(n) => write!(f, " ({n} elements)"),
                    None => write!(f, " (more than 2^128 elements)"),
                }
            }
            Error::TooLarge { op, shape, dtype } => {
                let elements = shape.iter().try_fold(1u128, |n, &d| n.checked_mul(d as u128));
                let bytes = elements.and_then(|n| n.checked_mul(dtype.size() as u128));
                match (elements, bytes) {
                    (Some(n), Some(b)) => write!(
                        f,
                        "{op}: a {dtype} tensor of shape {shape:?} ({n} elements, {b} bytes) is too \
                         large to allocate"
                    ),
                    _ => write!(f, "{op}: a {dtype} tensor of shape {shape:?} is too large to allocate"),
                }
            }
            Error::StateMismatch { missing, unexpected, mismatched } => {
                write!(f, "load_state: state does not match")?;
                if !missing.is_empty() {
                    write!(f, "; missing: {}", missing.join(", "))?;
                }
                if !unexpected.is_empty() {
                    write!(f, "; unexpected: {}", unexpected.join(", "))?;
                }
                if !mismatched.is_empty() {
                    write!(f, "; mismatched: {}", mismatched.join("; "))?;
                }
                Ok(())
            }
            Error::NonScalarBackward { shape } => write!(
                f,
                "backward: tensor of shape {shape:?} is not a scalar; use backward_with(seed) \
                 or reduce it first"
            ),
            Error::NoGradient { what } => write!(f, "grad: {what}"),
            Error::GradcheckFailed { input, index, analytic, numeric, excess } => write!(
                f,
                "gradcheck: input {input}, element {index}: analytic {analytic:.10e} vs \
                 numeric {numeric:.10e} (exceeds tolerance by {excess:.3e})"
            ),
            Error::JvpcheckFailed { input, index, tangent, numeric, excess } => write!(
                f,
                "jvpcheck: tangent along {}, output element {index}: jvp {tangent:.10e} vs numeric \
                 {numeric:.10e} (exceeds tolerance by {excess:.3e})",
                input.map_or("every input".to_string(), |i| format!("input {i}"))
            ),
        }
    }
}

impl Error {
    /// This error as reported by `op`, the op the user called, when it came from a primitive
    /// that op is made of (`stack` is `unsqueeze` + `cat`): the message names what was called.
    pub fn called_as(self, op: &'static str) -> Error {
        match self {
            Error::ShapeMismatch { lhs, rhs, .. } => Error::ShapeMismatch { op, lhs, rhs },
            Error::DTypeMismatch { lhs, rhs, .. } => Error::DTypeMismatch { op, lhs, rhs },
            Error::AxisOutOfRange { axis, shape, .. } => Error::AxisOutOfRange { op, axis, shape },
            Error::IndexOutOfRange { index, len, .. } => Error::IndexOutOfRange { op, index, len },
            Error::InvalidArgument { reason, .. } => Error::InvalidArgument { op, reason },
            Error::TooLarge { shape, dtype, .. } => Error::TooLarge { op, shape, dtype },
            other => other,
        }
    }
}

impl std::error::Error for Error {}

/// Runs `f`, the body of `op`, reporting its errors as `op`'s ([`Error::called_as`]): a
/// composite (a loss, a layer) names itself, not the primitive inside it that failed.
pub fn reported_as<T>(op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    f().map_err(|e| e.called_as(op))
}

/// Returns early with an [`Error::InvalidArgument`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::Error::InvalidArgument { op: $op, reason: format!($($arg)*) })
    };
}

//! Typed storage behind a tensor and the bridge from generic kernels to it.

use crate::{Error, Result};
use graphgrad_ops::{checked_numel, DType, Element};
use std::sync::{Arc, LazyLock};

/// The element count of a new `dtype` tensor of `shape`, or [`Error::TooLarge`] naming `op` when
/// no buffer can hold it (more elements than `usize` counts, more bytes than `isize::MAX`).
/// Every tensor's shape passes this when it is made, so `numel` of a tensor never overflows.
pub(crate) fn checked_len(op: &'static str, shape: &[usize], dtype: DType) -> Result<usize> {
    addressable_len(shape, dtype).ok_or_else(|| Error::TooLarge { op, shape: shape.into(), dtype })
}

/// [`checked_len`] without the error (which names the op: built only when needed).
pub(crate) fn addressable_len(shape: &[usize], dtype: DType) -> Option<usize> {
    checked_numel(shape).filter(|&n| n.checked_mul(dtype.size()).is_some_and(|b| b <= isize::MAX as usize))
}

/// A new vector of `shape`'s element count filled with `value`, or [`Error::TooLarge`] naming
/// `op` when the allocator refuses the memory (an error, where `vec!` would abort the process).
pub(crate) fn filled<T: Storage>(op: &'static str, shape: &[usize], value: T) -> Result<Vec<T>> {
    let len = checked_len(op, shape, T::STORED)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::TooLarge { op, shape: shape.into(), dtype: T::STORED })?;
    v.resize(len, value);
    Ok(v)
}

/// A contiguous, row-major buffer of one element type.
///
/// The elements are shared copy-on-write: cloning a buffer (as `reshape` does) shares them, and
/// the first write through a shared buffer copies them.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// 32-bit floats.
    F32(Arc<Vec<f32>>),
    /// 64-bit floats.
    F64(Arc<Vec<f64>>),
    /// 64-bit integers (labels, token ids, indices).
    I64(Arc<Vec<i64>>),
}

impl Default for Buffer {
    /// An empty f32 buffer.
    fn default() -> Buffer {
        Buffer::empty()
    }
}

impl From<Vec<f32>> for Buffer {
    fn from(v: Vec<f32>) -> Buffer {
        Buffer::F32(crate::pool::share(v))
    }
}

impl From<Vec<f64>> for Buffer {
    fn from(v: Vec<f64>) -> Buffer {
        Buffer::F64(crate::pool::share(v))
    }
}

impl From<Vec<i64>> for Buffer {
    fn from(v: Vec<i64>) -> Buffer {
        Buffer::I64(Arc::new(v))
    }
}

impl Buffer {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
            Buffer::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty f32 buffer; all of them share one allocation, so placeholders cost none.
    pub(crate) fn empty() -> Buffer {
        static EMPTY: LazyLock<Arc<Vec<f32>>> = LazyLock::new(|| Arc::new(Vec::new()));
        Buffer::F32(Arc::clone(&EMPTY))
    }

    /// Gives the storage back to this thread's buffer pool, unless another buffer still
    /// shares it, leaving an empty buffer in its place (a dropped tensor's value).
    pub(crate) fn recycle(&mut self) {
        match std::mem::take(self) {
            Buffer::F32(v) => crate::pool::keep(v),
            Buffer::F64(v) => crate::pool::keep(v),
            Buffer::I64(_) => {}
        }
    }

    /// A copy that shares no storage with `self`, in a buffer from this thread's pool when
    /// it holds one of that length (a compiled step's outputs and copies on write are made at
    /// every call: fresh allocations would pile up in the pool, never reused).
    pub fn unshared(&self) -> Buffer {
        fn copy<T: crate::pool::Pooled>(v: &[T]) -> Vec<T> {
            match crate::pool::take(v.len()) {
                Some(mut out) => {
                    out.copy_from_slice(v);
                    out
                }
                None => v.to_vec(),
            }
        }
        match self {
            Buffer::F32(v) => Buffer::from(copy(v)),
            Buffer::F64(v) => Buffer::from(copy(v)),
            Buffer::I64(v) => Buffer::from(v.to_vec()),
        }
    }

    /// True when no other buffer shares this one's storage.
    pub fn is_unshared(&self) -> bool {
        match self {
            Buffer::F32(v) => Arc::strong_count(v) == 1,
            Buffer::F64(v) => Arc::strong_count(v) == 1,
            Buffer::I64(v) => Arc::strong_count(v) == 1,
        }
    }

    /// `len` zeros of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Buffer {
        match dtype {
            DType::F32 => Buffer::from(vec![0.0f32; len]),
            DType::F64 => Buffer::from(vec![0.0f64; len]),
            DType::I64 => Buffer::from(vec![0i64; len]),
        }
    }

    /// The elements converted to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Buffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::F64(v) => v.to_vec(),
            Buffer::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Builds a buffer of `dtype` from f64 values (rounding for f32, truncating toward zero
    /// for i64).
    pub fn from_f64(dtype: DType, values: &[f64]) -> Buffer {
        match dtype {
            DType::F32 => Buffer::from(values.iter().map(|&x| x as f32).collect::<Vec<_>>()),
            DType::F64 => Buffer::from(values.to_vec()),
            DType::I64 => Buffer::from(values.iter().map(|&x| x as i64).collect::<Vec<_>>()),
        }
    }
}

/// A type a [`Buffer`] can hold (`f32`, `f64`, `i64`): lets generic code get typed slices back.
pub trait Storage: Copy + Send + Sync + 'static {
    /// The buffer's element type for this Rust type.
    const STORED: DType;
    /// Wraps a vector.
    fn wrap(v: Vec<Self>) -> Buffer;
    /// The typed slice, when the buffer holds this type.
    fn slice(b: &Buffer) -> Option<&[Self]>;
    /// The typed mutable slice, when the buffer holds this type.
    fn slice_mut(b: &mut Buffer) -> Option<&mut [Self]>;
    /// Converts from f64 (rounding to nearest for floats, toward zero for integers).
    fn cast_from_f64(v: f64) -> Self;
    /// Converts to f64.
    fn cast_to_f64(self) -> f64;
    /// Converts from i64 (exact for i64, rounding for floats).
    fn cast_from_i64(v: i64) -> Self;
}

/// A floating-point element that can live in a [`Buffer`]: what kernels compute on.
pub trait Elem: Element + Storage {}

impl Elem for f32 {}
impl Elem for f64 {}

/// `Storage` for each element type and the `Buffer` variant holding it.
macro_rules! storage {
    ($($T:ty => $variant:ident),*) => {$(
        // The casts are the conversions; for the type itself they are identities.
        #[allow(clippy::unnecessary_cast)]
        impl Storage for $T {
            const STORED: DType = DType::$variant;
            fn cast_from_i64(v: i64) -> $T {
                v as $T
            }
            fn cast_from_f64(v: f64) -> $T {
                v as $T
            }
            fn cast_to_f64(self) -> f64 {
                self as f64
            }
            fn wrap(v: Vec<$T>) -> Buffer {
                Buffer::from(v)
            }
            fn slice(b: &Buffer) -> Option<&[$T]> {
                match b {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(b: &mut Buffer) -> Option<&mut [$T]> {
                if matches!(b, Buffer::$variant(_)) && !b.is_unshared() {
                    *b = b.unshared(); // copy on write, into a pooled buffer
                }
                match b {
                    Buffer::$variant(v) => Some(Arc::make_mut(v).as_mut_slice()),
                    _ => None,
                }
            }
        }
    )*};
}

storage!(f32 => F32, f64 => F64, i64 => I64);

/// Typed view of a buffer whose dtype was checked when the op was recorded.
pub(crate) fn typed<T: Storage>(b: &Buffer) -> &[T] {
    T::slice(b).expect("internal invariant: buffer dtype checked at op construction")
}

/// Runs a generic body with `$T` bound to the float element type of `$dtype`. Integer data is
/// never computed on: shape rules refuse it before a kernel runs.
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            graphgrad_ops::DType::F32 => {
                type $T = f32;
                $body
            }
            graphgrad_ops::DType::F64 => {
                type $T = f64;
                $body
            }
            graphgrad_ops::DType::I64 => {
                unreachable!("internal invariant: shape rules refuse float kernels on i64 data")
            }
        }
    };
}

/// [`with_dtype!`] for bodies that only move data, which run on every element type.
macro_rules! with_storage {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            graphgrad_ops::DType::F32 => {
                type $T = f32;
                $body
            }
            graphgrad_ops::DType::F64 => {
                type $T = f64;
                $body
            }
            graphgrad_ops::DType::I64 => {
                type $T = i64;
                $body
            }
        }
    };
}
pub(crate) use with_dtype;
pub(crate) use with_storage;

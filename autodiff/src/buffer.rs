//! Typed storage behind a tensor and the bridge from generic kernels to it.

use graphgrad_ops::{DType, Element};

/// A contiguous, row-major buffer of one element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
}

impl Buffer {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` zeros of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(vec![0.0; len]),
            DType::F64 => Buffer::F64(vec![0.0; len]),
        }
    }

    /// The elements converted to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Buffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::F64(v) => v.clone(),
        }
    }

    /// Builds a buffer of `dtype` from f64 values (rounding for f32).
    pub fn from_f64(dtype: DType, values: &[f64]) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(values.iter().map(|&x| x as f32).collect()),
            DType::F64 => Buffer::F64(values.to_vec()),
        }
    }
}

/// An element type that can live in a [`Buffer`]: lets generic code get typed slices back.
pub trait Elem: Element {
    /// Wraps a vector.
    fn wrap(v: Vec<Self>) -> Buffer;
    /// The typed slice, when the buffer holds this type.
    fn slice(b: &Buffer) -> Option<&[Self]>;
    /// The typed mutable slice, when the buffer holds this type.
    fn slice_mut(b: &mut Buffer) -> Option<&mut [Self]>;
}

impl Elem for f32 {
    fn wrap(v: Vec<f32>) -> Buffer {
        Buffer::F32(v)
    }
    fn slice(b: &Buffer) -> Option<&[f32]> {
        match b {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) => None,
        }
    }
    fn slice_mut(b: &mut Buffer) -> Option<&mut [f32]> {
        match b {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) => None,
        }
    }
}

impl Elem for f64 {
    fn wrap(v: Vec<f64>) -> Buffer {
        Buffer::F64(v)
    }
    fn slice(b: &Buffer) -> Option<&[f64]> {
        match b {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) => None,
        }
    }
    fn slice_mut(b: &mut Buffer) -> Option<&mut [f64]> {
        match b {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) => None,
        }
    }
}

/// Typed view of a buffer whose dtype was checked when the op was recorded.
pub(crate) fn typed<T: Elem>(b: &Buffer) -> &[T] {
    T::slice(b).expect("internal invariant: buffer dtype checked at op construction")
}

/// Runs a generic body with `$T` bound to the element type of `$dtype`.
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
        }
    };
}
pub(crate) use with_dtype;

/// Allocates `$len` zeros of `$dtype` as `$out: Vec<$T>`, runs `$body` to fill them, and wraps
/// the result in a [`Buffer`].
macro_rules! compute {
    ($dtype:expr, $len:expr, |$T:ident, $out:ident| $body:block) => {
        $crate::buffer::with_dtype!($dtype, $T => {
            #[allow(unused_mut)]
            let mut $out: Vec<$T> = $crate::pool::zeros($len);
            $body;
            <$T as $crate::buffer::Elem>::wrap($out)
        })
    };
}
pub(crate) use compute;

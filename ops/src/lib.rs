//! Kernels on plain buffers: the numeric core of graphgrad.
//!
//! Everything here is a pure function over contiguous, row-major slices of `f32` or `f64`
//! ([`Element`]). There is no graph and no gradient bookkeeping: shapes are validated by the
//! caller (`graphgrad-autodiff` infers and checks them when an op is recorded), and kernels
//! only `assert!` the internal invariants they rely on.
//!
//! | module | holds |
//! |---|---|
//! | [`gemm`] | packed, cache-blocked SIMD matrix multiply, batched, with a fused epilogue |
//! | [`conv`], [`pool`] | 1-d/2-d and transposed convolution, max/average pooling, with backward kernels |
//! | [`unary`], [`binary`], [`math`] | elementwise maps with broadcasting; vectorised exp/log/tanh/sigmoid/erf |
//! | [`reduce`], [`softmax`], [`norm`] | axis reductions, fused softmax / log-softmax / layer-norm |
//! | [`index`] | index_select, gather and their scatter-add adjoints |
//! | [`jit`] | elementwise programs compiled to AVX2 machine code, intermediates in registers |
//! | [`layout`] | permute, expand, narrow/cat slabs, padding |
//! | [`random`] | seeded uniform, normal and bernoulli fills |
//! | [`threads`] | the main thread joins the kernels' thread pool; workers kept awake through a compiled call |
//!
//! Parallel kernels use rayon only above a size threshold and split work the same way for the
//! same thread count, so results are bit-identical run to run.

pub mod binary;
pub mod conv;
mod element;
pub mod facts;
pub mod gemm;
pub mod index;
pub mod jit;
pub mod layout;
pub mod math;
pub mod norm;
pub mod pool;
pub mod random;
pub mod reduce;
mod shape;
pub mod softmax;
pub mod testing;
pub mod threads;
pub mod unary;

pub use element::{DType, Element};
pub use shape::{
    broadcast_shapes, broadcast_strides, checked_numel, checked_window_len, contiguous_strides, numel,
    split_at_axis, Shape,
};

//! Define-by-run tensors, reverse- and forward-mode gradients, gradcheck, function transforms
//! ([`func`]: `jvp`, `vjp`, `jacrev`, `jacfwd`, `hessian`, `hvp`, `vmap`) and the graph compiler
//! ([`mod@compile`]).
//!
//! A [`Tensor`] records the op that produced it; values are computed at once (eager), so they
//! can be printed and used in ordinary control flow. [`Tensor::backward`] accumulates
//! gradients into leaves ([`Var`] parameters and tensors made with
//! [`Tensor::requires_grad_`]); [`grad`] returns them as tensors and, with `create_graph`,
//! differentiates again.
//!
//! What can fail: an op whose operands can be refused (shapes that do not broadcast, element
//! types that differ, an axis out of range) returns a [`Result`] whose error names the op and
//! the shapes; an op that cannot fail returns a [`Tensor`]: unary maps (`exp`, `relu`, ...),
//! ops with a scalar (`mul_scalar`, `x * 2.0`), and the full reductions `sum_all` and
//! `mean_all`. The operators `+ - * /` and unary `-` follow the same rule (see the impls on
//! [`Tensor`]): `(&a + &b)?`, but `&a * 2.0` and `-&a`.
//!
//! ```
//! use graphgrad_autodiff::{grad, Tensor};
//! // y = x³ at x = 2: dy/dx = 3x² = 12, d²y/dx² = 6x = 12
//! let x = Tensor::from_vec(vec![2.0f64], &[1])?.requires_grad_();
//! let y = x.pow_scalar(3.0).sum_all();
//! let dy = grad(&[y], &[x.clone()], true)?.remove(0);
//! let d2y = grad(&[dy.sum_all()], &[x], false)?.remove(0);
//! assert_eq!((dy.item()?, d2y.item()?), (12.0, 12.0));
//! # Ok::<(), graphgrad_autodiff::Error>(())
//! ```

#![warn(missing_docs)]

mod backward;
mod buffer;
mod checkpoint;
pub mod compile;
mod error;
pub mod func;
mod gradcheck;
pub mod hooks;
mod mode;
pub mod op;
mod operators;
mod pool;
mod state;
mod tensor;
mod trace;
mod var;

pub use backward::{grad, grad_with_seeds};
pub use buffer::{Buffer, Elem, Storage};
pub use checkpoint::{checkpoint, Segment};
pub use compile::{compile, compile_if, compile_with, CompileOptions, Compiled, IntoOutputs, Program};
pub use error::{reported_as, Error, Result};
pub use gradcheck::{gradcheck, gradgradcheck, jvpcheck, GradcheckOptions};
pub use graphgrad_ops::conv::{ConvOptions, IntoPair};
pub use graphgrad_ops::DType;
pub use mode::{grad_enabled, no_grad, GradModeGuard};
pub use op::{Generator, IntoIndices, Op, Pool2dOptions};
pub use pool::clear_buffer_pool;
pub use state::{load_state, state_of, StateDict};
pub use tensor::Tensor;
pub use trace::Flag;
pub use var::Var;

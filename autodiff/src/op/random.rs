//! Random numbers as ops on a generator state, so a compiled step draws fresh numbers at every
//! call: the state is an `i64` tensor `[seed, position]` (a [`Generator`]'s variable), the
//! samples are a pure function of it, and advancing it is an op too.
//!
//! The stream is ChaCha8 keyed by the seed, read from a word position: an f32 sample takes one
//! 32-bit word (24 random bits), an f64 sample two (53 bits). Eager and compiled steps run the
//! same kernels on the same states, so they draw the same numbers.

use super::{Arg, Operand};
use crate::buffer::{Elem, Storage};
use crate::{DType, Result, Tensor};
use graphgrad_ops::facts::fact::NONE;
use graphgrad_ops::{numel, op_facts, Shape};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smallvec::smallvec;

/// An op on a generator state `[seed, position]` (`i64`).
#[derive(Clone, Debug, PartialEq)]
pub enum RandomOp {
    /// Uniform samples on [0, 1) of this shape and float type, from the state's position on.
    Uniform {
        /// The samples' shape.
        shape: Shape,
        /// f32 or f64.
        dtype: DType,
    },
    /// Standard normal samples of this shape and float type (Box–Muller, four words per pair).
    Normal {
        /// The samples' shape.
        shape: Shape,
        /// f32 or f64.
        dtype: DType,
    },
    /// The state after `words` words are drawn.
    Advance {
        /// Words to skip.
        words: u64,
    },
}

op_facts! { RandomOp;
    Uniform { shape: smallvec![2], dtype: DType::F32 } => "uniform", NONE;
    Normal { shape: smallvec![2], dtype: DType::F32 } => "normal", NONE;
    Advance { words: 1 } => "advance", NONE;
}

/// Words a uniform sample of `dtype` takes.
fn words_per_sample(dtype: DType) -> u64 {
    if dtype == DType::F32 {
        1
    } else {
        2
    }
}

impl RandomOp {
    pub(super) fn infer(&self, state: Operand<'_>) -> Result<(DType, Shape)> {
        if state.dtype != DType::I64 || state.shape != [2] {
            crate::bail!(
                self.name(),
                "the generator state must be an i64 tensor [seed, position] of shape [2], got {} {:?}",
                state.dtype,
                state.shape
            );
        }
        Ok(match self {
            RandomOp::Uniform { shape, dtype } | RandomOp::Normal { shape, dtype } => {
                if !dtype.is_float() {
                    crate::bail!(self.name(), "samples must be f32 or f64, got {dtype}");
                }
                (*dtype, shape.clone())
            }
            RandomOp::Advance { .. } => (DType::I64, smallvec![2]),
        })
    }

    /// The stream of `state` at its position.
    fn stream(state: &[i64]) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(state[0] as u64);
        rng.set_word_pos(u128::from(state[1] as u64));
        rng
    }

    /// Samples into `out`.
    pub(super) fn forward<T: Elem>(&self, ins: &[Arg<'_>], out: &mut [T]) {
        let mut rng = RandomOp::stream(ins[0].data::<i64>());
        if let RandomOp::Normal { .. } = self {
            return graphgrad_ops::random::fill_normal(&mut rng, out, T::ZERO, T::ONE);
        }
        match T::DTYPE {
            DType::F32 => out
                .iter_mut()
                .for_each(|o| *o = T::from_f64(f64::from(rng.next_u32() >> 8) * (1.0 / (1u32 << 24) as f64))),
            _ => out
                .iter_mut()
                .for_each(|o| *o = T::from_f64((rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))),
        }
    }

    /// The advanced state into `out`.
    pub(super) fn forward_state<T: Storage>(&self, ins: &[Arg<'_>], out: &mut [T]) {
        let RandomOp::Advance { words } = self else {
            unreachable!("internal invariant: samples are floats")
        };
        let state = ins[0].data::<i64>();
        out[0] = T::cast_from_i64(state[0]);
        out[1] = T::cast_from_i64((state[1] as u64).wrapping_add(*words) as i64);
    }
}

/// A seeded random generator whose state is program state (like `torch.Generator`): each draw
/// reads the state and advances it with [`Tensor::assign`], so inside a compiled step every call
/// draws new numbers, the same ones an eager run from the same seed draws.
///
/// ```
/// use graphgrad_autodiff::{DType, Generator};
/// let (a, b) = (Generator::new(7), Generator::new(7));
/// let first = a.uniform(&[3], DType::F32)?;
/// assert_eq!(first.to_vec::<f32>()?, b.uniform(&[3], DType::F32)?.to_vec::<f32>()?);
/// assert_ne!(first.to_vec::<f32>()?, a.uniform(&[3], DType::F32)?.to_vec::<f32>()?);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Generator {
    state: Tensor,
}

impl Generator {
    /// A generator at the start of the stream of `seed`.
    pub fn new(seed: u64) -> Generator {
        let state = Tensor::from_vec(vec![seed as i64, 0], &[2]).expect("internal invariant: two values");
        Generator { state: Tensor::variable(&state) }
    }

    /// The state `[seed, position]`, an `i64` variable (save it to resume the stream).
    pub fn state(&self) -> &Tensor {
        &self.state
    }

    /// The stream position `[seed, word position]` (to save with a checkpoint).
    pub fn position(&self) -> [i64; 2] {
        let state = self.state.read();
        let v = crate::buffer::typed::<i64>(&state);
        [v[0], v[1]]
    }

    /// Moves the stream to a saved position.
    pub fn set_position(&self, position: [i64; 2]) {
        let value = Tensor::from_vec(position.to_vec(), &[2]).expect("internal invariant: two values");
        self.state.assign(&value).expect("internal invariant: the state is an i64 [2] variable");
    }

    /// Uniform samples on [0, 1) of `shape`.
    pub fn uniform(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let words = (numel(shape) as u64).saturating_mul(words_per_sample(dtype));
        self.draw(RandomOp::Uniform { shape: shape.into(), dtype }, words)
    }

    /// Standard normal samples of `shape` (Box–Muller).
    pub fn normal(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let words = (numel(shape).div_ceil(2) as u64).saturating_mul(4);
        self.draw(RandomOp::Normal { shape: shape.into(), dtype }, words)
    }

    /// Records `op` on the state, then advances the state past the `words` it reads.
    fn draw(&self, op: RandomOp, words: u64) -> Result<Tensor> {
        let samples = Tensor::record(super::Op::Random(op), &[&self.state])?;
        let next = Tensor::record(super::Op::Random(RandomOp::Advance { words }), &[&self.state])?;
        self.state.assign(&next)?;
        Ok(samples)
    }
}

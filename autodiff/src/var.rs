//! `Var`: a named, persistent parameter whose value optimisers update in place.

use crate::buffer::Buffer;
use crate::{Result, Tensor};
use std::ops::Deref;
use std::sync::RwLockWriteGuard;

/// A trainable parameter: a leaf tensor that requires grad, with a stable name.
///
/// A `Var` derefs to its [`Tensor`], so it is used in ops like any tensor; `backward`
/// accumulates into its `.grad()`; optimisers write its value in place (every graph built
/// afterwards sees the new value).
#[derive(Clone, Debug)]
pub struct Var {
    name: String,
    tensor: Tensor,
}

impl Var {
    /// A parameter named `name` holding a copy of `value`.
    pub fn new(name: impl Into<String>, value: &Tensor) -> Var {
        Var { name: name.into(), tensor: value.requires_grad_() }
    }

    /// A named buffer: state that is saved with the model but not trained (running
    /// statistics), a [`Tensor::variable`] that requires no grad.
    pub fn buffer(name: impl Into<String>, value: &Tensor) -> Var {
        Var { name: name.into(), tensor: Tensor::variable(value) }
    }

    /// The parameter's name (dotted paths like `encoder.0.weight` inside modules).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same parameter under another name (modules prefix their children's names).
    pub fn renamed(&self, name: impl Into<String>) -> Var {
        Var { name: name.into(), tensor: self.tensor.clone() }
    }

    /// The tensor to use in ops.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// Overwrites the value with `value` (same shape and dtype), keeping identity and gradient
    /// ([`Tensor::assign`]: inside a compiled step, an update of the program).
    pub fn set(&self, value: &Tensor) -> Result<()> {
        self.tensor.assign(value)
    }

    /// Write access to the value, for optimisers' fused in-place updates.
    pub fn write(&self) -> RwLockWriteGuard<'_, Buffer> {
        self.tensor.write()
    }
}

impl Deref for Var {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

impl AsRef<Tensor> for Var {
    fn as_ref(&self) -> &Tensor {
        &self.tensor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    /// Reshapes share storage with their input; an in-place update must copy it first, so
    /// values computed before the update keep their numbers.
    #[test]
    fn in_place_updates_leave_earlier_values_alone() -> Result<()> {
        let w = Var::new("w", &Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?);
        let flat = w.reshape(&[4])?;
        let doubled = w.mul_scalar(2.0);
        f32::slice_mut(&mut w.write()).expect("f32").iter_mut().for_each(|x| *x += 10.0);
        assert_eq!(flat.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(doubled.to_vec::<f32>()?, [2.0, 4.0, 6.0, 8.0]);
        assert_eq!(w.to_vec::<f32>()?, [11.0, 12.0, 13.0, 14.0]);
        w.set(&Tensor::from_vec(vec![0.0f32; 4], &[2, 2])?)?;
        assert_eq!(flat.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
        Ok(())
    }
}

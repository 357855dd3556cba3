//! Replacing a parameter's accumulated gradient (what clipping needs), and a value scan.

use crate::Result;
use graphgrad_autodiff::{Buffer, Tensor, Var};

/// True when no element is NaN or infinite.
pub(crate) fn all_finite(buffer: &Buffer) -> bool {
    match buffer {
        Buffer::F32(v) => v.iter().all(|g| g.is_finite()),
        Buffer::F64(v) => v.iter().all(|g| g.is_finite()),
        Buffer::I64(_) => true,
    }
}

/// Makes `value` (same shape and dtype as `var`) the accumulated gradient of `var`.
pub(crate) fn replace_grad(var: &Var, value: &Tensor) -> Result<()> {
    Ok(var.set_grad(Some(value))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_gradient_is_bit_identical() {
        let var = Var::new("w", &Tensor::from_vec(vec![1.0f32, -0.0, 3.0, 0.0], &[2, 2]).unwrap());
        let special = vec![0.1f32, -0.0, f32::INFINITY, 1e-45];
        replace_grad(&var, &Tensor::from_vec(special.clone(), &[2, 2]).unwrap()).unwrap();
        let got = var.grad().unwrap().to_vec::<f32>().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&special));
        // Replacing again does not accumulate.
        replace_grad(&var, &Tensor::from_vec(vec![2.0f32; 4], &[2, 2]).unwrap()).unwrap();
        assert_eq!(var.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0; 4]);
    }
}

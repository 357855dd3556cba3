//! State dicts: a flat, ordered map from dotted names to tensors. Modules export their
//! parameters and buffers into one; checkpoints and safetensors files store one.

use crate::{DType, Error, Result, Tensor, Var};
use std::collections::BTreeMap;

/// Named tensors, ordered by name (`encoder.0.weight`, ...).
pub type StateDict = BTreeMap<String, Tensor>;

/// Copies `state` into `vars` (name, parameter) in place. Every var must have an entry of the
/// same shape and dtype and every entry a var; otherwise nothing is written and the error
/// lists the missing, unexpected and mismatched names. An `i64` entry loads into a float var,
/// converted: PyTorch keeps integer buffers (BatchNorm's `num_batches_tracked`) that are
/// floats here.
pub fn load_state(vars: &[(String, Var)], state: &StateDict) -> Result<()> {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let loads = |t: &Tensor, var: &Var| {
        t.dtype() == var.dtype() || (t.dtype() == DType::I64 && var.dtype().is_float())
    };
    for (name, var) in vars {
        match state.get(name) {
            None => missing.push(name.clone()),
            Some(t) if t.shape() != var.shape() || !loads(t, var) => mismatched.push(format!(
                "{name}: expected {:?} {}, found {:?} {}",
                var.shape(),
                var.dtype(),
                t.shape(),
                t.dtype()
            )),
            Some(_) => {}
        }
    }
    let known: std::collections::BTreeSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let unexpected: Vec<String> = state.keys().filter(|k| !known.contains(k.as_str())).cloned().collect();
    if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
        return Err(Error::StateMismatch { missing, unexpected, mismatched });
    }
    for (name, var) in vars {
        var.set(&state[name].to_dtype(var.dtype()))?;
    }
    Ok(())
}

/// The state of `vars` as a state dict (values copied, detached from any graph).
pub fn state_of(vars: &[(String, Var)]) -> StateDict {
    vars.iter().map(|(name, var)| (name.clone(), var.detach())).collect()
}

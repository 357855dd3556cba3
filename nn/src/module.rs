//! The `Module` trait: forward, named parameters, train/eval mode, state dicts.

use graphgrad_autodiff::{load_state, state_of, Result, StateDict, Tensor, Var};

/// A layer or model: maps a tensor to a tensor and owns named parameters.
///
/// Names are dotted paths, stable across runs: a container prefixes its children's names
/// with the child's field name or index (`encoder.0.weight`). Forward takes `&self`; mode and
/// random state use interior mutability so a model can be shared while training.
pub trait Module {
    /// Runs the module on `input`.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// Trainable parameters with their names relative to this module.
    fn named_parameters(&self) -> Vec<(String, Var)>;

    /// Persistent state that is not trained (batch-norm running statistics), by name.
    fn named_buffers(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// Switches training behaviour (dropout, batch-norm statistics) on or off, recursively.
    fn set_training(&self, _training: bool) {}

    /// The trainable parameters, in name order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, v)| v).collect()
    }

    /// Parameters and buffers by name, copied.
    fn state_dict(&self) -> StateDict {
        let mut all = self.named_parameters();
        all.extend(self.named_buffers());
        state_of(&all)
    }

    /// Loads parameters and buffers in place. Missing, unexpected and shape-mismatched names
    /// are an error that lists them all, and then nothing is changed.
    fn load_state_dict(&self, state: &StateDict) -> Result<()> {
        let mut all = self.named_parameters();
        all.extend(self.named_buffers());
        load_state(&all, state)
    }
}

/// Prefixes each name with `prefix.` (how containers name their children's parameters).
pub fn prefixed(prefix: &str, named: Vec<(String, Var)>) -> Vec<(String, Var)> {
    named.into_iter().map(|(name, var)| (format!("{prefix}.{name}"), var)).collect()
}

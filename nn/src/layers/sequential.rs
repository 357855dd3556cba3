//! `Sequential`: a chain of modules applied in order (PyTorch's `nn.Sequential`).
//!
//! Children are named by their position, so parameter names are `0.weight`, `2.bias`, ...
//! exactly as in PyTorch, and nest (`encoder.0.weight` when a `Sequential` is a field
//! `encoder` of a bigger model).

use crate::{Module, Visitor};
use graphgrad_autodiff::{Result, Tensor};

/// Modules applied one after another; the output of each is the input of the next.
///
/// # Shapes
/// - input: whatever the first module takes
/// - output: whatever the last module returns (the input itself when empty)
///
/// ```
/// use graphgrad_nn::{LinearConfig, Module, ReLU, Sequential};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mlp = Sequential::new()
///     .append(LinearConfig::new(4, 8).init(&mut rng)?)
///     .append(ReLU)
///     .append(LinearConfig::new(8, 2).init(&mut rng)?);
/// let y = mlp.forward(&Tensor::ones(&[3, 4], DType::F32)?)?; // y: [3, 2]
/// assert_eq!(y.shape(), &[3, 2]);
/// let names: Vec<String> = mlp.state_dict().into_keys().collect();
/// assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
///
/// Its modules are `Send + Sync` (every layer of this crate is), so a `Sequential` can be
/// moved to and shared by threads.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module + Send + Sync>>,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// Appends `module` (builder style; PyTorch's `append`).
    pub fn append(mut self, module: impl Module + Send + Sync + 'static) -> Sequential {
        self.layers.push(Box::new(module));
        self
    }

    /// Appends an already boxed module.
    pub fn push(&mut self, module: Box<dyn Module + Send + Sync>) {
        self.layers.push(module);
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The module at position `index`.
    pub fn get(&self, index: usize) -> Option<&dyn Module> {
        self.layers.get(index).map(|m| m.as_ref() as &dyn Module)
    }

    /// The modules in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.layers.iter().map(|m| m.as_ref() as &dyn Module)
    }
}

impl FromIterator<Box<dyn Module + Send + Sync>> for Sequential {
    fn from_iter<I: IntoIterator<Item = Box<dyn Module + Send + Sync>>>(iter: I) -> Sequential {
        Sequential { layers: iter.into_iter().collect() }
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let mut x = input.clone();
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    /// Children named by position (`0`, `1`, ...), as in PyTorch.
    fn visit(&self, v: &mut dyn Visitor) {
        for (i, layer) in self.layers.iter().enumerate() {
            v.child(&i.to_string(), layer.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{BatchNormConfig, DropoutConfig, LinearConfig, ReLU, Tanh};
    use graphgrad_autodiff::{DType, Error, StateDict};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn model(seed: u64) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let f64 = DType::F64;
        Sequential::new()
            .append(LinearConfig::new(3, 4).with_dtype(f64).init(&mut rng).unwrap())
            .append(BatchNormConfig::new(4).with_dtype(f64).init_1d(&mut rng).unwrap())
            .append(ReLU)
            .append(DropoutConfig::new(0.5).init(&mut rng).unwrap())
            .append(
                Sequential::new()
                    .append(LinearConfig::new(4, 2).with_dtype(f64).init(&mut rng).unwrap())
                    .append(Tanh),
            )
    }

    #[test]
    fn names_are_dotted_and_stable() {
        let m = model(0);
        let params: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(params, ["0.weight", "0.bias", "1.weight", "1.bias", "4.0.weight", "4.0.bias"]);
        let buffers: Vec<String> = m.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(buffers, ["1.running_mean", "1.running_var", "1.num_batches_tracked"]);
        assert_eq!(m.state_dict().len(), 9);
        assert_eq!(m.parameters().len(), 6);
    }

    #[test]
    fn same_seed_same_model() {
        let (a, b, c) = (model(5).state_dict(), model(5).state_dict(), model(6).state_dict());
        let values = |s: &StateDict| s.values().map(|t| t.to_f64_vec()).collect::<Vec<_>>();
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
    }

    #[test]
    fn state_dict_round_trip() {
        let (source, target) = (model(1), model(2));
        let x = Tensor::from_vec((0..15).map(|i| i as f64 * 0.1 - 0.7).collect::<Vec<_>>(), &[5, 3]).unwrap();
        // one training step of batch norm changes its running statistics
        source.forward(&x).unwrap();
        source.set_training(false);
        target.set_training(false);
        let saved = source.state_dict();
        assert_ne!(source.forward(&x).unwrap().to_f64_vec(), target.forward(&x).unwrap().to_f64_vec());
        target.load_state_dict(&saved).unwrap();
        assert_eq!(source.forward(&x).unwrap().to_f64_vec(), target.forward(&x).unwrap().to_f64_vec());
        for (name, t) in target.state_dict() {
            assert_eq!(t.to_f64_vec(), saved[&name].to_f64_vec(), "{name}");
        }
    }

    #[test]
    fn load_reports_missing_unexpected_and_mismatched() {
        let m = model(0);
        let mut state = m.state_dict();
        let before = m.state_dict();
        state.remove("0.bias");
        state.insert("9.weight".into(), Tensor::zeros(&[1], DType::F64).unwrap());
        state.insert("4.0.weight".into(), Tensor::zeros(&[3, 3], DType::F64).unwrap());
        state.insert("1.weight".into(), Tensor::zeros(&[4], DType::F32).unwrap());
        let err = m.load_state_dict(&state).unwrap_err();
        match &err {
            Error::StateMismatch { missing, unexpected, mismatched } => {
                assert_eq!(missing, &["0.bias"]);
                assert_eq!(unexpected, &["9.weight"]);
                assert_eq!(mismatched.len(), 2, "{mismatched:?}");
                assert!(mismatched.iter().any(|m| m.starts_with("4.0.weight")));
                assert!(mismatched.iter().any(|m| m.starts_with("1.weight")));
            }
            other => panic!("unexpected error {other}"),
        }
        let message = err.to_string();
        assert!(message.contains("0.bias") && message.contains("9.weight") && message.contains("4.0.weight"));
        // nothing was written
        for (name, t) in m.state_dict() {
            assert_eq!(t.to_f64_vec(), before[&name].to_f64_vec(), "{name}");
        }
    }

    #[test]
    fn train_eval_reaches_children() {
        let m = model(3);
        let x = Tensor::ones(&[6, 3], DType::F64).unwrap();
        m.set_training(false);
        // eval: deterministic (dropout off, running statistics)
        assert_eq!(m.forward(&x).unwrap().to_f64_vec(), m.forward(&x).unwrap().to_f64_vec());
        let empty = Sequential::new();
        assert!(empty.is_empty());
        assert_eq!(empty.forward(&x).unwrap().to_f64_vec(), x.to_f64_vec());
    }
}

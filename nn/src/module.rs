//! The `Module` trait: forward, and one traversal from which everything else follows.
//!
//! A module implements two methods: [`Module::forward`] and [`Module::visit`], which shows a
//! [`Visitor`] each of its parameters, buffers, children, training-mode flags and random
//! streams. Named parameters, named buffers, `train`/`eval`, the state dict and the random
//! state are provided methods written once here on top of `visit`, so a module cannot forget
//! one of them (before, three traversals were written by hand per module and two defaulted to
//! doing nothing, so a model that forgot `set_training` kept dropout on in evaluation). This is
//! burn's module visitor; `#[derive(Module)]` (from `graphgrad-nn-derive`) writes `visit` for
//! a struct of modules and parameters.
//!
//! Invariant: `visit` reports the same names in the same order on every call, and a name is
//! reported once; the provided methods and checkpoints rely on it.

use graphgrad_autodiff::{load_state, state_of, Error, Flag, Generator, Result, StateDict, Tensor, Var};
use std::collections::BTreeMap;

/// What [`Module::visit`] shows: the module's state, item by item, nested by [`enter`] and
/// [`leave`] around each child. Every method does nothing by default, so a visitor implements
/// only what it looks for.
///
/// [`enter`]: Visitor::enter
/// [`leave`]: Visitor::leave
pub trait Visitor {
    /// A trainable parameter called `name` (relative to the current child).
    fn parameter(&mut self, _name: &str, _var: &Var) {}

    /// Persistent state that is not trained (batch-norm running statistics) called `name`.
    fn buffer(&mut self, _name: &str, _var: &Var) {}

    /// A training-mode flag (dropout, batch norm, a VAE's sampling): `true` in training.
    fn mode(&mut self, _training: &Flag) {}

    /// A random stream the module draws from in training (dropout masks, VAE noise): saved
    /// by checkpoints so a resumed run draws the same numbers.
    fn random_stream(&mut self, _name: &str, _generator: &Generator) {}

    /// The traversal goes into the child called `name`.
    fn enter(&mut self, _name: &str) {}

    /// The traversal comes back out of the child it last entered.
    fn leave(&mut self) {}
}

impl dyn Visitor + '_ {
    /// Visits `module` as the child called `name` (its names get the prefix `name.`).
    pub fn child(&mut self, name: &str, module: &(impl Module + ?Sized)) {
        self.enter(name);
        module.visit(self);
        self.leave();
    }
}

/// A layer or model: maps a tensor to a tensor and owns named parameters.
///
/// Names are dotted paths, stable across runs: a container prefixes its children's names
/// with the child's field name or index (`encoder.0.weight`). Forward takes `&self`; mode and
/// random state use interior mutability so a model can be shared while training.
///
/// Implement `forward` and `visit` (or derive `visit` with `#[derive(Module)]`); the other
/// methods follow from `visit` and are not meant to be overridden.
///
/// ```
/// use graphgrad_autodiff::{Result, Tensor, Var};
/// use graphgrad_nn::{Dropout, DropoutConfig, Linear, LinearConfig, Module, Visitor};
/// use rand::SeedableRng;
/// struct Net {
///     hidden: Linear,
///     dropout: Dropout,
///     scale: Var,
/// }
/// impl Module for Net {
///     fn forward(&self, x: &Tensor) -> Result<Tensor> {
///         self.dropout.forward(&self.hidden.forward(x)?.relu())?.mul(&self.scale)
///     }
///     fn visit(&self, v: &mut dyn Visitor) {
///         v.child("hidden", &self.hidden);
///         v.child("dropout", &self.dropout);
///         v.parameter("scale", &self.scale);
///     }
/// }
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let net = Net {
///     hidden: LinearConfig::new(3, 2).init(&mut rng)?,
///     dropout: DropoutConfig::new(0.5).init(&mut rng)?,
///     scale: Var::new("scale", &Tensor::ones(&[2], graphgrad_autodiff::DType::F32)?),
/// };
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["hidden.weight", "hidden.bias", "scale"]);
/// net.eval(); // reaches the dropout inside: no forgotten set_training
/// assert!(!net.is_training());
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub trait Module {
    /// Runs the module on `input`.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// Shows `visitor` every parameter, buffer, child, mode flag and random stream, with the
    /// same names in the same order on every call.
    fn visit(&self, visitor: &mut dyn Visitor);

    /// Trainable parameters with their dotted names relative to this module, in visit order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut collect = Collect::new(Kind::Parameters);
        self.visit(&mut collect);
        collect.found
    }

    /// Persistent state that is not trained (batch-norm running statistics), by name.
    fn named_buffers(&self) -> Vec<(String, Var)> {
        let mut collect = Collect::new(Kind::Buffers);
        self.visit(&mut collect);
        collect.found
    }

    /// The trainable parameters, in visit order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, v)| v).collect()
    }

    /// Parameters and buffers, by name: what a checkpoint of the model must hold.
    fn named_state(&self) -> Vec<(String, Var)> {
        let mut collect = Collect::new(Kind::State);
        self.visit(&mut collect);
        collect.found
    }

    /// Switches training behaviour (dropout, batch-norm statistics) on or off, everywhere in
    /// the module.
    fn set_training(&self, training: bool) {
        struct SetMode(bool);
        impl Visitor for SetMode {
            fn mode(&mut self, flag: &Flag) {
                flag.set(self.0);
            }
        }
        self.visit(&mut SetMode(training));
    }

    /// Training mode (PyTorch's `module.train()`).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (PyTorch's `module.eval()`): dropout off, running statistics used.
    fn eval(&self) {
        self.set_training(false);
    }

    /// False when every mode flag in the module is off (after [`eval`](Module::eval)); true
    /// otherwise, including for a module without any flag.
    fn is_training(&self) -> bool {
        struct AnyOn(bool, bool);
        impl Visitor for AnyOn {
            fn mode(&mut self, flag: &Flag) {
                self.0 |= flag.get();
                self.1 = true;
            }
        }
        let mut seen = AnyOn(false, false);
        self.visit(&mut seen);
        seen.0 || !seen.1
    }

    /// Parameters and buffers by name, copied.
    fn state_dict(&self) -> StateDict {
        state_of(&self.named_state())
    }

    /// Loads parameters and buffers in place. Missing, unexpected and shape-mismatched names
    /// are an error that lists them all, and then nothing is changed. PyTorch's integer
    /// buffers (`num_batches_tracked`, `int64` there) load into their float buffers here.
    fn load_state_dict(&self, state: &StateDict) -> Result<()> {
        load_state(&self.named_state(), state)
    }

    /// Every random stream's position (`[seed, word position]`), by dotted name.
    fn random_state(&self) -> BTreeMap<String, [i64; 2]> {
        struct Streams(Path, BTreeMap<String, [i64; 2]>);
        impl Visitor for Streams {
            fn random_stream(&mut self, name: &str, generator: &Generator) {
                self.1.insert(self.0.full(name), generator.position());
            }
            fn enter(&mut self, name: &str) {
                self.0.enter(name);
            }
            fn leave(&mut self) {
                self.0.leave();
            }
        }
        let mut streams = Streams(Path::default(), BTreeMap::new());
        self.visit(&mut streams);
        streams.1
    }

    /// Restores the random streams saved by [`random_state`](Module::random_state). The
    /// names must match exactly; otherwise nothing is changed and the error lists them.
    fn load_random_state(&self, state: &BTreeMap<String, [i64; 2]>) -> Result<()> {
        struct Streams<'a>(Path, &'a BTreeMap<String, [i64; 2]>);
        let ours = self.random_state();
        let missing: Vec<String> = ours.keys().filter(|k| !state.contains_key(*k)).cloned().collect();
        let unexpected: Vec<String> = state.keys().filter(|k| !ours.contains_key(*k)).cloned().collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(Error::StateMismatch { missing, unexpected, mismatched: Vec::new() });
        }
        impl Visitor for Streams<'_> {
            fn random_stream(&mut self, name: &str, generator: &Generator) {
                if let Some(&saved) = self.1.get(&self.0.full(name)) {
                    generator.set_position(saved);
                }
            }
            fn enter(&mut self, name: &str) {
                self.0.enter(name);
            }
            fn leave(&mut self) {
                self.0.leave();
            }
        }
        self.visit(&mut Streams(Path::default(), state));
        Ok(())
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        (**self).forward(input)
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        (**self).visit(visitor);
    }
}

/// A field of a module that [`Module::visit`] shows: a child module, a parameter, or an
/// optional, repeated or boxed one of them. `#[derive(Module)]` calls it for every field not
/// marked otherwise.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module, a parameter (`Var`) or a collection of them",
    note = "mark plain fields `#[module(skip)]`, buffers `#[module(buffer)]`, training flags \
            (`Cell<bool>`) `#[module(training)]` and random streams (`RefCell<ChaCha8Rng>`) `#[module(rng)]`"
)]
pub trait Field {
    /// Shows this field to `visitor` under `name`.
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor);
}

impl<M: Module + ?Sized> Field for M {
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor) {
        visitor.child(name, self);
    }
}

impl Field for Var {
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor) {
        visitor.parameter(name, self);
    }
}

impl<T: Field> Field for Option<T> {
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor) {
        if let Some(inner) = self {
            inner.visit_field(name, visitor);
        }
    }
}

impl<T: Field> Field for Vec<T> {
    /// Elements are named by position: `layers.0`, `layers.1`, ...
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor) {
        for (i, item) in self.iter().enumerate() {
            item.visit_field(&format!("{name}.{i}"), visitor);
        }
    }
}

impl<T: Field, const N: usize> Field for [T; N] {
    fn visit_field(&self, name: &str, visitor: &mut dyn Visitor) {
        for (i, item) in self.iter().enumerate() {
            item.visit_field(&format!("{name}.{i}"), visitor);
        }
    }
}

/// A buffer field (`#[module(buffer)]` in the derive): a `Var`, or an optional or repeated one.
pub trait BufferField {
    /// Shows this field to `visitor` as buffers under `name`.
    fn visit_buffer(&self, name: &str, visitor: &mut dyn Visitor);
}

impl BufferField for Var {
    fn visit_buffer(&self, name: &str, visitor: &mut dyn Visitor) {
        visitor.buffer(name, self);
    }
}

impl<T: BufferField> BufferField for Option<T> {
    fn visit_buffer(&self, name: &str, visitor: &mut dyn Visitor) {
        if let Some(inner) = self {
            inner.visit_buffer(name, visitor);
        }
    }
}

impl<T: BufferField> BufferField for Vec<T> {
    fn visit_buffer(&self, name: &str, visitor: &mut dyn Visitor) {
        for (i, item) in self.iter().enumerate() {
            item.visit_buffer(&format!("{name}.{i}"), visitor);
        }
    }
}

/// Prefixes each name with `prefix.` (how containers name their children's parameters).
pub fn prefixed(prefix: &str, named: Vec<(String, Var)>) -> Vec<(String, Var)> {
    named.into_iter().map(|(name, var)| (format!("{prefix}.{name}"), var)).collect()
}

/// The dotted path of the child a traversal is in.
#[derive(Default)]
struct Path {
    parts: Vec<String>,
}

impl Path {
    fn enter(&mut self, name: &str) {
        self.parts.push(name.to_string());
    }

    fn leave(&mut self) {
        self.parts.pop();
    }

    /// `name` with the current path in front (`encoder.0.weight`).
    fn full(&self, name: &str) -> String {
        let mut full = String::new();
        for part in &self.parts {
            full.push_str(part);
            full.push('.');
        }
        full.push_str(name);
        full
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Parameters,
    Buffers,
    State,
}

/// Collects parameters and/or buffers with their full names.
struct Collect {
    kind: Kind,
    path: Path,
    found: Vec<(String, Var)>,
}

impl Collect {
    fn new(kind: Kind) -> Collect {
        Collect { kind, path: Path::default(), found: Vec::new() }
    }
}

impl Visitor for Collect {
    fn parameter(&mut self, name: &str, var: &Var) {
        if self.kind != Kind::Buffers {
            self.found.push((self.path.full(name), var.clone()));
        }
    }

    fn buffer(&mut self, name: &str, var: &Var) {
        if self.kind != Kind::Parameters {
            self.found.push((self.path.full(name), var.clone()));
        }
    }

    fn enter(&mut self, name: &str) {
        self.path.enter(name);
    }

    fn leave(&mut self) {
        self.path.leave();
    }
}

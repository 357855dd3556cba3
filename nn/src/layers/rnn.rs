//! Recurrent layers: [`Rnn`] (Elman, tanh or ReLU), [`Lstm`] and [`Gru`], as PyTorch's
//! `nn.RNN`, `nn.LSTM` and `nn.GRU` with `batch_first=True`.
//!
//! Parameters per layer `k` and direction (suffix `_reverse` for the backward direction of a
//! bidirectional layer), named and laid out exactly as in PyTorch so state dicts transfer:
//! `weight_ih_l{k}` `[gates·hidden, input]`, `weight_hh_l{k}` `[gates·hidden, hidden]`,
//! `bias_ih_l{k}` and `bias_hh_l{k}` `[gates·hidden]`, and for an LSTM with projections
//! (`proj_size` p > 0) `weight_hr_l{k}` `[p, hidden]`, its h then being p wide (`weight_hh`
//! `[gates·hidden, p]`). Gate blocks are stacked in PyTorch's order: LSTM (i, f, g, o), GRU
//! (r, z, n). All parameters start from U(−1/√hidden, 1/√hidden).
//!
//! The input projections of all time steps are one matrix product before the loop; each step
//! then costs one `[batch, hidden] × [hidden, gates·hidden]` product.
//!
//! Not supported (yet): packed/variable-length sequences, dropout between layers, unbatched
//! `[seq, features]` input.

use crate::init;
use crate::{Module, Visitor};
use graphgrad_autodiff::{bail, DType, Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// The activation of an Elman [`Rnn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// h' = tanh(·) (PyTorch's default).
    Tanh,
    /// h' = max(·, 0).
    Relu,
}

/// Which recurrence a [`Recurrent`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CellKind {
    Rnn(RnnNonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    /// Gate blocks stacked in the weights.
    fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "RNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// The parameters of one direction of one layer.
#[derive(Clone, Debug)]
pub struct RecurrentWeights {
    /// `[gates·hidden, input]` (input = `input_size` in layer 0, `directions·hidden` above).
    pub weight_ih: Var,
    /// `[gates·hidden, h]`, h being the hidden size or the LSTM's `proj_size`.
    pub weight_hh: Var,
    /// `[gates·hidden]`, when the layer has biases.
    pub bias_ih: Option<Var>,
    /// `[gates·hidden]`, when the layer has biases.
    pub bias_hh: Option<Var>,
    /// `[proj_size, hidden]`, for an LSTM with projections: h_t = W_hr·(o ⊙ tanh(c_t)).
    pub weight_hr: Option<Var>,
}

/// What the three configs share.
#[derive(Clone, Debug, PartialEq)]
struct Shared {
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    bias: bool,
    bidirectional: bool,
    dtype: DType,
    /// The LSTM's projection size (0: none).
    proj_size: usize,
}

/// The machinery of all three layers.
#[derive(Clone, Debug)]
struct Recurrent {
    kind: CellKind,
    input_size: usize,
    hidden_size: usize,
    /// Features of h: the hidden size, or the LSTM's projection size.
    output_size: usize,
    num_layers: usize,
    directions: usize,
    /// Index `layer · directions + direction`.
    cells: Vec<RecurrentWeights>,
}

impl Shared {
    fn init(&self, kind: CellKind, rng: &mut ChaCha8Rng) -> Result<Recurrent> {
        let name = kind.name();
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            bail!(
                name,
                "input_size, hidden_size and num_layers must be positive, got {}, {} and {}",
                self.input_size,
                self.hidden_size,
                self.num_layers
            );
        }
        if self.proj_size >= self.hidden_size {
            bail!(name, "proj_size {} must be smaller than hidden_size {}", self.proj_size, self.hidden_size);
        }
        let (h, g) = (self.hidden_size, kind.gates());
        let out = if self.proj_size > 0 { self.proj_size } else { h };
        let directions = if self.bidirectional { 2 } else { 1 };
        let bound = 1.0 / (h as f64).sqrt();
        let mut param = |shape: &[usize]| init::uniform(shape, -bound, bound, self.dtype, rng);
        let mut cells = Vec::new();
        for layer in 0..self.num_layers {
            let input = if layer == 0 { self.input_size } else { directions * out };
            for direction in 0..directions {
                let suffix = format!("l{layer}{}", if direction == 1 { "_reverse" } else { "" });
                let weight_ih = Var::new(format!("weight_ih_{suffix}"), &param(&[g * h, input])?);
                let weight_hh = Var::new(format!("weight_hh_{suffix}"), &param(&[g * h, out])?);
                let (bias_ih, bias_hh) = if self.bias {
                    (
                        Some(Var::new(format!("bias_ih_{suffix}"), &param(&[g * h])?)),
                        Some(Var::new(format!("bias_hh_{suffix}"), &param(&[g * h])?)),
                    )
                } else {
                    (None, None)
                };
                let weight_hr = match self.proj_size {
                    0 => None,
                    p => Some(Var::new(format!("weight_hr_{suffix}"), &param(&[p, h])?)),
                };
                cells.push(RecurrentWeights { weight_ih, weight_hh, bias_ih, bias_hh, weight_hr });
            }
        }
        Ok(Recurrent {
            kind,
            input_size: self.input_size,
            hidden_size: h,
            output_size: out,
            num_layers: self.num_layers,
            directions,
            cells,
        })
    }
}

impl Recurrent {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.cells
            .iter()
            .flat_map(|c| {
                [
                    Some(&c.weight_ih),
                    Some(&c.weight_hh),
                    c.bias_ih.as_ref(),
                    c.bias_hh.as_ref(),
                    c.weight_hr.as_ref(),
                ]
            })
            .flatten()
            .map(|v| (v.name().to_string(), v.clone()))
            .collect()
    }

    fn dtype(&self) -> DType {
        self.cells[0].weight_ih.dtype()
    }

    /// Checks a state tensor `[layers·directions, batch, size]`, or makes zeros.
    fn initial(&self, state: Option<&Tensor>, batch: usize, size: usize, what: &str) -> Result<Tensor> {
        let shape = [self.num_layers * self.directions, batch, size];
        match state {
            None => Ok(Tensor::zeros(&shape, self.dtype())?),
            Some(s) if s.shape() != shape || s.dtype() != self.dtype() => bail!(
                self.kind.name(),
                "{what} must be {shape:?} {}, got {:?} {}",
                self.dtype(),
                s.shape(),
                s.dtype()
            ),
            Some(s) => Ok(s.clone()),
        }
    }

    /// Runs the stack over `input` `[batch, seq, input_size]` from states h0 (and c0 for the
    /// LSTM). Returns the last layer's outputs `[batch, seq, directions·hidden]` and the final
    /// states `[layers·directions, batch, hidden]`.
    fn run(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let name = self.kind.name();
        if input.rank() != 3 || input.shape()[2] != self.input_size || input.shape()[1] == 0 {
            return Err(Error::InvalidArgument {
                op: name,
                reason: format!(
                    "input must be [batch, seq ≥ 1, input_size {}] (batch_first), got {:?}",
                    self.input_size,
                    input.shape()
                ),
            });
        }
        if input.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch { op: name, lhs: input.dtype(), rhs: self.dtype() });
        }
        let (batch, seq) = (input.shape()[0], input.shape()[1]);
        let h0 = self.initial(h0, batch, self.output_size, "h0")?;
        let c0 = self.initial(c0, batch, self.hidden_size, "c0")?;
        let mut layer_input = input.clone();
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for layer in 0..self.num_layers {
            let mut outputs = Vec::with_capacity(self.directions);
            for direction in 0..self.directions {
                let index = layer * self.directions + direction;
                let cell = &self.cells[index];
                let slot = |s: &Tensor, size: usize| s.narrow(0, index, 1)?.reshape(&[batch, size]);
                let (mut h, mut c) = (slot(&h0, self.output_size)?, slot(&c0, self.hidden_size)?);
                // xw: [batch, seq, gates·hidden], all time steps at once
                let mut xw = layer_input.matmul_with(&cell.weight_ih, false, true)?;
                if let Some(b) = &cell.bias_ih {
                    xw = xw.add(b)?;
                }
                let mut steps = vec![None; seq];
                let order: Vec<usize> =
                    if direction == 0 { (0..seq).collect() } else { (0..seq).rev().collect() };
                for t in order {
                    // xw_t: [batch, gates·hidden]
                    let xw_t = xw.narrow(1, t, 1)?.squeeze(1)?;
                    (h, c) = self.step(cell, &xw_t, &h, &c)?;
                    steps[t] = Some(h.clone());
                }
                let steps: Vec<Tensor> = steps.into_iter().map(|s| s.expect("every step ran")).collect();
                // out: [batch, seq, hidden]
                outputs.push(Tensor::stack(&steps, 1)?);
                h_n.push(h);
                c_n.push(c);
            }
            layer_input = if outputs.len() == 1 { outputs.remove(0) } else { Tensor::cat(&outputs, -1)? };
        }
        Ok((layer_input, Tensor::stack(&h_n, 0)?, Tensor::stack(&c_n, 0)?))
    }

    /// One time step. `xw` already holds x·W_ihᵀ + b_ih; returns (h', c') (c is passed through
    /// unchanged except by the LSTM).
    fn step(&self, cell: &RecurrentWeights, xw: &Tensor, h: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let hs = self.hidden_size;
        // hw: [batch, gates·hidden]
        let mut hw = h.matmul_with(&cell.weight_hh, false, true)?;
        if let Some(b) = &cell.bias_hh {
            hw = hw.add(b)?;
        }
        let gate = |t: &Tensor, k: usize| t.narrow(-1, k * hs, hs);
        match self.kind {
            // h' = act(W_ih x + b_ih + W_hh h + b_hh)
            CellKind::Rnn(RnnNonlinearity::Tanh) => Ok((xw.add(&hw)?.tanh(), c.clone())),
            CellKind::Rnn(RnnNonlinearity::Relu) => Ok((xw.add(&hw)?.relu(), c.clone())),
            CellKind::Lstm => {
                let z = xw.add(&hw)?;
                // i, f, o = σ(·), g = tanh(·); c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')
                let (i, f, g, o) = (
                    gate(&z, 0)?.sigmoid(),
                    gate(&z, 1)?.sigmoid(),
                    gate(&z, 2)?.tanh(),
                    gate(&z, 3)?.sigmoid(),
                );
                let c_next = f.mul(c)?.add(&i.mul(&g)?)?;
                let h_next = o.mul(&c_next.tanh())?;
                match &cell.weight_hr {
                    Some(w_hr) => Ok((h_next.matmul_with(w_hr, false, true)?, c_next)),
                    None => Ok((h_next, c_next)),
                }
            }
            CellKind::Gru => {
                // r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h' = (1 − z) ⊙ n + z ⊙ h
                let r = gate(xw, 0)?.add(&gate(&hw, 0)?)?.sigmoid();
                let z = gate(xw, 1)?.add(&gate(&hw, 1)?)?.sigmoid();
                let n = gate(xw, 2)?.add(&r.mul(&gate(&hw, 2)?)?)?.tanh();
                // written as n + z ⊙ (h − n)
                Ok((n.add(&z.mul(&h.sub(&n)?)?)?, c.clone()))
            }
        }
    }
}

/// A recurrent layer's configuration: the settings all three layers share (with PyTorch's
/// defaults) and the layer's own, each with its default, declared once per layer.
macro_rules! recurrent_config {
    (
        $(#[$doc:meta])* $config:ident {
            $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $default:expr, $setter:ident; )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $config {
            /// Features per time step of the input.
            pub input_size: usize,
            /// Features of the hidden state.
            pub hidden_size: usize,
            /// Stacked layers (default 1).
            pub num_layers: usize,
            /// Whether layers have biases (default true).
            pub bias: bool,
            /// Whether each layer also runs backwards (default false).
            pub bidirectional: bool,
            /// Element type of the parameters (default f32).
            pub dtype: DType,
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl $config {
            /// One unidirectional layer with biases, in f32, every other setting at its
            /// default (PyTorch's defaults).
            pub fn new(input_size: usize, hidden_size: usize) -> Self {
                $config {
                    input_size,
                    hidden_size,
                    num_layers: 1,
                    bias: true,
                    bidirectional: false,
                    dtype: DType::F32,
                    $( $field: $default, )*
                }
            }

            $(
                $(#[$fdoc])*
                pub fn $setter(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*

            /// Sets the number of stacked layers (default 1).
            pub fn with_num_layers(mut self, num_layers: usize) -> Self {
                self.num_layers = num_layers;
                self
            }

            /// Sets whether the layers have biases (default true).
            pub fn with_bias(mut self, bias: bool) -> Self {
                self.bias = bias;
                self
            }

            /// Sets whether each layer also runs backwards over the sequence (default false);
            /// outputs then concatenate both directions.
            pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
                self.bidirectional = bidirectional;
                self
            }

            /// Sets the parameters' element type (default f32).
            pub fn with_dtype(mut self, dtype: DType) -> Self {
                self.dtype = dtype;
                self
            }

            fn shared(&self) -> Shared {
                Shared {
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    num_layers: self.num_layers,
                    bias: self.bias,
                    bidirectional: self.bidirectional,
                    dtype: self.dtype,
                    proj_size: 0,
                }
            }
        }
    };
}

recurrent_config! {
    /// Configuration of an [`Lstm`].
    LstmConfig {
        /// Features of h when projected, below `hidden_size`: h_t = W_hr·(o ⊙ tanh(c_t))
        /// (PyTorch's `proj_size`; default 0, no projection).
        proj_size: usize = 0, with_proj_size;
    }
}

recurrent_config! {
    /// Configuration of a [`Gru`].
    GruConfig {}
}

recurrent_config! {
    /// Configuration of an [`Rnn`].
    RnnConfig {
        /// The activation: tanh (default) or ReLU.
        nonlinearity: RnnNonlinearity = RnnNonlinearity::Tanh, with_nonlinearity;
    }
}

impl RnnConfig {
    /// Creates the layer (parameters from U(−1/√hidden, 1/√hidden)).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Rnn> {
        Ok(Rnn { inner: self.shared().init(CellKind::Rnn(self.nonlinearity), rng)? })
    }
}

impl LstmConfig {
    /// Creates the layer (parameters from U(−1/√hidden, 1/√hidden)).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Lstm> {
        Ok(Lstm { inner: Shared { proj_size: self.proj_size, ..self.shared() }.init(CellKind::Lstm, rng)? })
    }
}

impl GruConfig {
    /// Creates the layer (parameters from U(−1/√hidden, 1/√hidden)).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Gru> {
        Ok(Gru { inner: self.shared().init(CellKind::Gru, rng)? })
    }
}

/// An Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh).
///
/// # Shapes
/// - input: `[batch, seq, input_size]` (batch first)
/// - h0 (optional, zeros by default) and h_n: `[num_layers·directions, batch, hidden]`
/// - output: `[batch, seq, directions·hidden]` (the last layer's h_t at every step)
///
/// ```
/// use graphgrad_nn::layers::RnnConfig;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let rnn = RnnConfig::new(3, 5).with_num_layers(2).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let (out, h_n) = rnn.forward_with_state(&Tensor::zeros(&[4, 7, 3], DType::F32)?, None)?;
/// assert_eq!((out.shape(), h_n.shape()), (&[4, 7, 5][..], &[2, 4, 5][..]));
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Rnn {
    inner: Recurrent,
}

/// A long short-term memory layer, PyTorch's gate order (i, f, g, o):
/// c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t).
///
/// # Shapes
/// - input: `[batch, seq, input_size]` (batch first)
/// - state h (optional, zeros by default): `[num_layers·directions, batch, h]`, h being
///   `proj_size` when set, else `hidden`; c: `[num_layers·directions, batch, hidden]`
/// - output: `[batch, seq, directions·h]`
///
/// ```
/// use graphgrad_nn::layers::LstmConfig;
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let lstm = LstmConfig::new(3, 4).with_bidirectional(true).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let (out, state) = lstm.forward_with_state(&Tensor::zeros(&[2, 6, 3], DType::F32)?, None)?;
/// assert_eq!(out.shape(), &[2, 6, 8]);
/// assert_eq!((state.h.shape(), state.c.shape()), (&[2, 2, 4][..], &[2, 2, 4][..]));
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lstm {
    inner: Recurrent,
}

/// A gated recurrent unit, PyTorch's gate order (r, z, n):
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
///
/// # Shapes
/// - input: `[batch, seq, input_size]` (batch first)
/// - h0 (optional, zeros by default) and h_n: `[num_layers·directions, batch, hidden]`
/// - output: `[batch, seq, directions·hidden]`
///
/// ```
/// use graphgrad_nn::{layers::GruConfig, Module};
/// use graphgrad_autodiff::{DType, Tensor};
/// use rand::SeedableRng;
/// let gru = GruConfig::new(3, 4).init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!(gru.forward(&Tensor::zeros(&[2, 5, 3], DType::F32)?)?.shape(), &[2, 5, 4]);
/// assert_eq!(gru.named_parameters()[0].0, "weight_ih_l0");
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Gru {
    inner: Recurrent,
}

/// The (h, c) state of an [`Lstm`], each `[num_layers·directions, batch, hidden]`.
#[derive(Clone, Debug)]
pub struct LstmState {
    /// Hidden state.
    pub h: Tensor,
    /// Cell state.
    pub c: Tensor,
}

macro_rules! recurrent_accessors {
    ($layer:ident) => {
        impl $layer {
            /// Parameters of each layer and direction, index `layer · directions + direction`.
            pub fn cells(&self) -> &[RecurrentWeights] {
                &self.inner.cells
            }

            /// Features of the hidden state.
            pub fn hidden_size(&self) -> usize {
                self.inner.hidden_size
            }

            /// Number of stacked layers.
            pub fn num_layers(&self) -> usize {
                self.inner.num_layers
            }

            /// 2 for a bidirectional layer, else 1.
            pub fn num_directions(&self) -> usize {
                self.inner.directions
            }
        }
    };
}

recurrent_accessors!(Rnn);
recurrent_accessors!(Lstm);
recurrent_accessors!(Gru);

impl Rnn {
    /// Runs over a sequence from `h0` (zeros when `None`); returns (output, h_n).
    pub fn forward_with_state(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (out, h, _) = self.inner.run(input, h0, None)?;
        Ok((out, h))
    }
}

impl Gru {
    /// Runs over a sequence from `h0` (zeros when `None`); returns (output, h_n).
    pub fn forward_with_state(&self, input: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (out, h, _) = self.inner.run(input, h0, None)?;
        Ok((out, h))
    }
}

impl Lstm {
    /// Runs over a sequence from `state` (zeros when `None`); returns (output, (h_n, c_n)).
    pub fn forward_with_state(
        &self,
        input: &Tensor,
        state: Option<&LstmState>,
    ) -> Result<(Tensor, LstmState)> {
        let (out, h, c) = self.inner.run(input, state.map(|s| &s.h), state.map(|s| &s.c))?;
        Ok((out, LstmState { h, c }))
    }
}

macro_rules! recurrent_module {
    ($layer:ident) => {
        impl Module for $layer {
            /// The output sequence from a zero initial state.
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                Ok(self.inner.run(input, None, None)?.0)
            }

            fn visit(&self, v: &mut dyn Visitor) {
                for (name, param) in self.inner.named_parameters() {
                    v.parameter(&name, &param);
                }
            }
        }
    };
}

recurrent_module!(Rnn);
recurrent_module!(Lstm);
recurrent_module!(Gru);

#[cfg(test)]
#[path = "rnn_tests.rs"]
mod tests;

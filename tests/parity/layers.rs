//! The layers family: each case builds a graphgrad layer from the PyTorch module's constructor
//! arguments (`"config"`, PyTorch's names), loads the PyTorch module's own state dict (its key
//! names, buffers included; strictly: a missing or extra name fails the case), runs it in the
//! case's mode and compares outputs, input and parameter gradients (parameters by name), and
//! the state afterwards (batch-norm running statistics).

use crate::golden::{Attrs, Case, Report, Res};
use graphgrad::autodiff::{DType, Tensor};
use graphgrad::nn::layers::{AttentionMasks, FeedForwardActivation, LstmState, RnnNonlinearity};
use graphgrad::nn::{
    AvgPool2d, BatchNormConfig, Conv1d, Conv2d, ConvConfig, ConvTranspose2d, DropoutConfig, EmbeddingConfig,
    Flatten, GeluApproximate, Gru, GruConfig, Hardtanh, LayerNormConfig, LeakyReLU, LinearConfig, LogSigmoid,
    LogSoftmax, Lstm, LstmConfig, MaxPool2d, Module, MultiheadAttention, MultiheadAttentionConfig, ReLU, Rnn,
    RnnConfig, Sequential, SiLU, Sigmoid, Softmax, Softplus, Tanh, TransformerEncoder,
    TransformerEncoderLayer, TransformerEncoderLayerConfig, ELU, GELU,
};
use graphgrad::ChaCha8Rng;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// The PyTorch modules mapped here (each needs a golden case).
pub const KINDS: &[&str] = &[
    "Linear",
    "Embedding",
    "Sequential",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "SiLU",
    "LogSigmoid",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Softplus",
    "Softmax",
    "LogSoftmax",
    "Hardtanh",
    "Flatten",
    "Dropout",
    "MaxPool2d",
    "AvgPool2d",
    "RNN",
    "LSTM",
    "GRU",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
];

type Tensors = BTreeMap<String, Tensor>;
type Boxed = Box<dyn Module + Send + Sync>;

/// A built layer: most run as a `Module` on `x`; the others take more than one input or
/// return more than one output.
enum Layer {
    Plain(Boxed),
    Rnn(Rnn),
    Lstm(Lstm),
    Gru(Gru),
    Attention(MultiheadAttention),
    Block(Box<TransformerEncoderLayer>),
    Encoder(TransformerEncoder),
}

impl Layer {
    fn module(&self) -> &dyn Module {
        match self {
            Layer::Plain(m) => m.as_ref(),
            Layer::Rnn(m) => m,
            Layer::Lstm(m) => m,
            Layer::Gru(m) => m,
            Layer::Attention(m) => m,
            Layer::Block(m) => m.as_ref(),
            Layer::Encoder(m) => m,
        }
    }

    /// Runs the layer on the case's inputs (see `generate.py`'s `layer` for the names).
    fn forward(&self, inputs: &Tensors, attrs: &Attrs) -> Res<Tensors> {
        let t = |name: &str| -> Res<&Tensor> {
            inputs.get(name).ok_or_else(|| format!("missing input {name:?}").into())
        };
        let out =
            |pairs: Vec<(&str, Tensor)>| Ok(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let masks = || -> Res<AttentionMasks> {
            let mut masks = AttentionMasks::none().with_causal(attrs.bool_or("causal", false)?);
            for (name, m) in inputs {
                match name.as_str() {
                    "key_padding_mask" | "src_key_padding_mask" => masks = masks.with_key_padding(m.clone()),
                    "attn_mask" => masks = masks.with_attn(m.clone()),
                    _ => {}
                }
            }
            Ok(masks)
        };
        match self {
            Layer::Rnn(m) => {
                let (y, h) = m.forward_with_state(t("x")?, inputs.get("h0"))?;
                out(vec![("y", y), ("h_n", h)])
            }
            Layer::Gru(m) => {
                let (y, h) = m.forward_with_state(t("x")?, inputs.get("h0"))?;
                out(vec![("y", y), ("h_n", h)])
            }
            Layer::Lstm(m) => {
                let state = match (inputs.get("h0"), inputs.get("c0")) {
                    (Some(h), Some(c)) => Some(LstmState { h: h.clone(), c: c.clone() }),
                    _ => None,
                };
                let (y, s) = m.forward_with_state(t("x")?, state.as_ref())?;
                out(vec![("y", y), ("h_n", s.h), ("c_n", s.c)])
            }
            Layer::Attention(m) => {
                // self-attention cases give the query only
                let query = t("query")?;
                let key = inputs.get("key").unwrap_or(query);
                let a = m.forward_attention(query, key, inputs.get("value").unwrap_or(key), &masks()?)?;
                out(vec![("y", a.output), ("weights", a.weights)])
            }
            Layer::Block(m) => out(vec![("y", m.forward_with_masks(t("x")?, &masks()?)?)]),
            Layer::Encoder(m) => out(vec![("y", m.forward_with_masks(t("x")?, &masks()?)?)]),
            Layer::Plain(m) => {
                if let Some(x) = inputs.get("x") {
                    return out(vec![("y", m.forward(x)?)]);
                }
                // x0, x1, ...: one forward pass each, in order (running statistics move on)
                let mut outputs = Tensors::new();
                for i in 0.. {
                    let Some(x) = inputs.get(&format!("x{i}")) else { break };
                    outputs.insert(format!("y{i}"), m.forward(x)?);
                }
                Ok(outputs)
            }
        }
    }
}

/// Errors unless every key of `config` is one the builder reads (an unread PyTorch setting
/// would otherwise be silently ignored).
fn known(kind: &str, config: &Attrs, keys: &[&str]) -> Res<()> {
    let unknown: Vec<&String> = config.map().keys().filter(|k| !keys.contains(&k.as_str())).collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("{kind}: settings {unknown:?} are not mapped to graphgrad").into())
    }
}

/// PyTorch's `batch_first=True`, the only layout graphgrad's sequence layers take.
fn batch_first(kind: &str, c: &Attrs) -> Res<()> {
    if c.bool_or("batch_first", false)? {
        Ok(())
    } else {
        Err(format!("{kind}: graphgrad's sequence layers are batch-first").into())
    }
}

/// A size or a pair of sizes (PyTorch takes both for kernels, strides, ...).
fn pair(c: &Attrs, key: &str, default: (usize, usize)) -> Res<(usize, usize)> {
    match c.usize(key) {
        Ok(k) => Ok((k, k)),
        Err(_) => c.pair_or(key, default),
    }
}

/// A convolution layer's configuration from PyTorch's arguments (the same for all three).
fn conv_config<L>(kind: &str, c: &Attrs) -> Res<ConvConfig<L>> {
    let mut keys =
        vec!["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"];
    if kind == "ConvTranspose2d" {
        keys.push("output_padding");
    }
    known(kind, c, &keys)?;
    Ok(ConvConfig::new(c.usize("in_channels")?, c.usize("out_channels")?, pair(c, "kernel_size", (1, 1))?)
        .with_stride(pair(c, "stride", (1, 1))?)
        .with_padding(pair(c, "padding", (0, 0))?)
        .with_output_padding(pair(c, "output_padding", (0, 0))?)
        .with_dilation(pair(c, "dilation", (1, 1))?)
        .with_groups(c.usize_or("groups", 1)?)
        .with_bias(c.bool_or("bias", true)?)
        .with_dtype(DType::F64))
}

/// The convolution layers.
fn conv_layer(kind: &str, c: &Attrs, rng: &mut ChaCha8Rng) -> Res<Boxed> {
    Ok(match kind {
        "Conv1d" => Box::new(conv_config::<Conv1d>(kind, c)?.init(rng)?),
        "Conv2d" => Box::new(conv_config::<Conv2d>(kind, c)?.init(rng)?),
        "ConvTranspose2d" => Box::new(conv_config::<ConvTranspose2d>(kind, c)?.init(rng)?),
        other => return Err(format!("{other} is not a convolution").into()),
    })
}

/// A layer without an extra calling convention, from its PyTorch class name and arguments.
fn plain(kind: &str, c: &Attrs, rng: &mut ChaCha8Rng) -> Res<Boxed> {
    let none: &[&str] = &[];
    Ok(match kind {
        "Linear" => {
            known(kind, c, &["in_features", "out_features", "bias"])?;
            let config = LinearConfig::new(c.usize("in_features")?, c.usize("out_features")?);
            Box::new(config.with_bias(c.bool_or("bias", true)?).with_dtype(DType::F64).init(rng)?)
        }
        "Embedding" => {
            known(kind, c, &["num_embeddings", "embedding_dim", "padding_idx"])?;
            let config = EmbeddingConfig::new(c.usize("num_embeddings")?, c.usize("embedding_dim")?);
            Box::new(config.with_padding_idx(c.opt_usize("padding_idx")?).with_dtype(DType::F64).init(rng)?)
        }
        "Sequential" => {
            known(kind, c, &["layers"])?;
            let specs = c.map()["layers"].as_array().ok_or("Sequential: layers is not a list")?;
            let mut seq = Sequential::new();
            for spec in specs {
                let (child, config) = spec
                    .as_object()
                    .and_then(|o| o.iter().next())
                    .ok_or("Sequential: a layer is {kind: config}")?;
                let config = Attrs::new(config.as_object().cloned().unwrap_or_default());
                seq.push(plain(child, &config, rng)?);
            }
            Box::new(seq)
        }
        "Conv1d" | "Conv2d" | "ConvTranspose2d" => conv_layer(kind, c, rng)?,
        "BatchNorm1d" | "BatchNorm2d" => {
            known(kind, c, &["num_features", "eps", "momentum", "affine", "track_running_stats"])?;
            let config = BatchNormConfig::new(c.usize("num_features")?)
                .with_eps(c.f64_or("eps", 1e-5)?)
                .with_momentum(if c.map().contains_key("momentum") {
                    c.opt_f64("momentum")?
                } else {
                    Some(0.1)
                })
                .with_affine(c.bool_or("affine", true)?)
                .with_track_running_stats(c.bool_or("track_running_stats", true)?)
                .with_dtype(DType::F64);
            if kind == "BatchNorm1d" {
                Box::new(config.init_1d(rng)?)
            } else {
                Box::new(config.init_2d(rng)?)
            }
        }
        "LayerNorm" => {
            known(kind, c, &["normalized_shape", "eps", "elementwise_affine", "bias"])?;
            let config = LayerNormConfig::new(&c.usizes("normalized_shape")?)
                .with_eps(c.f64_or("eps", 1e-5)?)
                .with_elementwise_affine(c.bool_or("elementwise_affine", true)?)
                .with_bias(c.bool_or("bias", true)?)
                .with_dtype(DType::F64);
            Box::new(config.init(rng)?)
        }
        "ReLU" => known(kind, c, none).map(|_| Box::new(ReLU) as Boxed)?,
        "Sigmoid" => known(kind, c, none).map(|_| Box::new(Sigmoid) as Boxed)?,
        "Tanh" => known(kind, c, none).map(|_| Box::new(Tanh) as Boxed)?,
        "SiLU" => known(kind, c, none).map(|_| Box::new(SiLU) as Boxed)?,
        "LogSigmoid" => known(kind, c, none).map(|_| Box::new(LogSigmoid) as Boxed)?,
        "LeakyReLU" => {
            known(kind, c, &["negative_slope"])?;
            Box::new(LeakyReLU::new(c.f64_or("negative_slope", 0.01)?))
        }
        "ELU" => known(kind, c, &["alpha"])
            .and_then(|_| Ok(Box::new(ELU::new(c.f64_or("alpha", 1.0)?)) as Boxed))?,
        "GELU" => {
            known(kind, c, &["approximate"])?;
            let approximate = match c.str("approximate").unwrap_or("none") {
                "none" => GeluApproximate::None,
                "tanh" => GeluApproximate::Tanh,
                other => return Err(format!("GELU: approximate {other:?}").into()),
            };
            Box::new(GELU::new(approximate))
        }
        "Softplus" => {
            known(kind, c, &["beta", "threshold"])?;
            Box::new(Softplus::new(c.f64_or("beta", 1.0)?, c.f64_or("threshold", 20.0)?))
        }
        "Softmax" => {
            known(kind, c, &["dim"]).and_then(|_| Ok(Box::new(Softmax::new(c.isize("dim")?)) as Boxed))?
        }
        "LogSoftmax" => {
            known(kind, c, &["dim"]).and_then(|_| Ok(Box::new(LogSoftmax::new(c.isize("dim")?)) as Boxed))?
        }
        "Hardtanh" => {
            known(kind, c, &["min_val", "max_val"])?;
            Box::new(Hardtanh::new(c.f64_or("min_val", -1.0)?, c.f64_or("max_val", 1.0)?))
        }
        "Flatten" => {
            known(kind, c, &["start_dim", "end_dim"])?;
            Box::new(Flatten::new(c.isize("start_dim")?, c.isize("end_dim")?))
        }
        "Dropout" => known(kind, c, &["p"])
            .and_then(|_| Ok(Box::new(DropoutConfig::new(c.f64("p")?).init(rng)?) as Boxed))?,
        "MaxPool2d" => {
            known(kind, c, &["kernel_size", "stride", "padding", "ceil_mode"])?;
            let pool = MaxPool2d::new(pair(c, "kernel_size", (1, 1))?)
                .with_stride(pair(c, "stride", (1, 1))?)
                .with_padding(pair(c, "padding", (0, 0))?)
                .with_ceil_mode(c.bool_or("ceil_mode", false)?);
            Box::new(pool)
        }
        "AvgPool2d" => {
            known(kind, c, &["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"])?;
            let pool = AvgPool2d::new(pair(c, "kernel_size", (1, 1))?)
                .with_stride(pair(c, "stride", (1, 1))?)
                .with_padding(pair(c, "padding", (0, 0))?)
                .with_ceil_mode(c.bool_or("ceil_mode", false)?)
                .with_count_include_pad(c.bool_or("count_include_pad", true)?);
            Box::new(pool)
        }
        other => {
            return Err(format!(
                "no graphgrad layer is mapped to {other:?} (add it to tests/parity/layers.rs)"
            )
            .into())
        }
    })
}

const RECURRENT: &[&str] = &[
    "input_size",
    "hidden_size",
    "num_layers",
    "bias",
    "batch_first",
    "bidirectional",
    "nonlinearity",
    "proj_size",
];

fn encoder_layer_config(c: &Attrs) -> Res<TransformerEncoderLayerConfig> {
    let keys = [
        "d_model",
        "nhead",
        "dim_feedforward",
        "dropout",
        "activation",
        "layer_norm_eps",
        "batch_first",
        "norm_first",
    ];
    known("TransformerEncoderLayer", c, &keys)?;
    batch_first("TransformerEncoderLayer", c)?;
    let activation = match c.str("activation")? {
        "relu" => FeedForwardActivation::Relu,
        "gelu" => FeedForwardActivation::Gelu,
        other => return Err(format!("TransformerEncoderLayer: activation {other:?}").into()),
    };
    Ok(TransformerEncoderLayerConfig::new(c.usize("d_model")?, c.usize("nhead")?)
        .with_dim_feedforward(c.usize("dim_feedforward")?)
        .with_dropout(c.f64("dropout")?)
        .with_activation(activation)
        .with_layer_norm_eps(c.f64("layer_norm_eps")?)
        .with_norm_first(c.bool("norm_first")?)
        .with_dtype(DType::F64))
}

fn build(kind: &str, c: &Attrs, rng: &mut ChaCha8Rng) -> Res<Layer> {
    let recurrent = || -> Res<(usize, usize, usize, bool, bool)> {
        known(kind, c, RECURRENT)?;
        batch_first(kind, c)?;
        Ok((
            c.usize("input_size")?,
            c.usize("hidden_size")?,
            c.usize_or("num_layers", 1)?,
            c.bool_or("bias", true)?,
            c.bool_or("bidirectional", false)?,
        ))
    };
    Ok(match kind {
        "RNN" => {
            let (i, h, layers, bias, bi) = recurrent()?;
            let nonlinearity = match c.str("nonlinearity").unwrap_or("tanh") {
                "tanh" => RnnNonlinearity::Tanh,
                "relu" => RnnNonlinearity::Relu,
                other => return Err(format!("RNN: nonlinearity {other:?}").into()),
            };
            let config = RnnConfig::new(i, h).with_num_layers(layers).with_bias(bias).with_bidirectional(bi);
            Layer::Rnn(config.with_nonlinearity(nonlinearity).with_dtype(DType::F64).init(rng)?)
        }
        "LSTM" => {
            let (i, h, layers, bias, bi) = recurrent()?;
            let config = LstmConfig::new(i, h).with_num_layers(layers).with_bias(bias).with_bidirectional(bi);
            Layer::Lstm(config.with_proj_size(c.usize_or("proj_size", 0)?).with_dtype(DType::F64).init(rng)?)
        }
        "GRU" => {
            let (i, h, layers, bias, bi) = recurrent()?;
            let config = GruConfig::new(i, h).with_num_layers(layers).with_bias(bias).with_bidirectional(bi);
            Layer::Gru(config.with_dtype(DType::F64).init(rng)?)
        }
        "MultiheadAttention" => {
            known(kind, c, &["embed_dim", "num_heads", "bias", "batch_first"])?;
            batch_first(kind, c)?;
            let config = MultiheadAttentionConfig::new(c.usize("embed_dim")?, c.usize("num_heads")?);
            Layer::Attention(config.with_bias(c.bool_or("bias", true)?).with_dtype(DType::F64).init(rng)?)
        }
        "TransformerEncoderLayer" => Layer::Block(Box::new(encoder_layer_config(c)?.init(rng)?)),
        "TransformerEncoder" => {
            known(kind, c, &["layer", "num_layers", "norm"])?;
            let layer = Attrs::new(c.map()["layer"].as_object().cloned().ok_or("TransformerEncoder: layer")?);
            let config = encoder_layer_config(&layer)?;
            Layer::Encoder(TransformerEncoder::new(&config, c.usize("num_layers")?, c.bool("norm")?, rng)?)
        }
        _ => Layer::Plain(plain(kind, c, rng)?),
    })
}

/// Runs one layer case.
pub fn run(report: &mut Report, case: &Case) -> Res<()> {
    let name = case.name();
    let layer = build(case.str("module")?, &case.object("config")?, &mut ChaCha8Rng::seed_from_u64(0))?;
    let module = layer.module();
    module
        .load_state_dict(&case.tensors("state")?)
        .map_err(|e| format!("PyTorch's state dict does not load by its names: {e}"))?;
    match case.str("mode")? {
        "train" => module.train(),
        "eval" => module.eval(),
        other => return Err(format!("unknown mode {other:?}").into()),
    }
    let (inputs, leaves, want_grads) = crate::golden::leaf_inputs(case)?;
    let params: Tensors =
        module.named_parameters().into_iter().map(|(n, v)| (n, v.tensor().clone())).collect();
    let attrs = case.attrs();
    let outputs = layer.forward(&inputs, &attrs)?;
    attrs.all_read()?;
    report.check_all(name, "output", &outputs, &case.tensors("outputs")?);
    let cotangents = case.tensors("cotangents")?;
    crate::check_vjp(report, name, "grad", &outputs, &cotangents, &leaves, &want_grads)?;
    crate::check_vjp(
        report,
        name,
        "param grad",
        &outputs,
        &cotangents,
        &params,
        &case.tensors("param_grads")?,
    )?;
    // the state afterwards: running statistics updated in training, nothing changed otherwise
    let after = if case.0.contains_key("state_after") {
        case.tensors("state_after")?
    } else {
        case.tensors("state")?
    };
    report.check_all(name, "state after", &module.state_dict(), &after);
    Ok(())
}

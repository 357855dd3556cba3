"""The layers family (layers.json): each layer, loaded by the PyTorch module's own state dict."""

import torch
import torch.nn as nn

from common import S, Rng, enc_all, grid, ints, normal, outputs_of, vjp


# ---------------------------------------------------------------------------------------------
# Layers: each PyTorch module's own state dict (PyTorch's key names, buffers included) is what
# graphgrad loads; parameters and buffers get random values first, so nothing is trivially 1 or 0.

LAYERS = []


def randomize(module, rng):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(0.5 * rng.normal(*p.shape))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * rng.normal(*b.shape))
            elif name.endswith("running_var"):
                b.copy_(rng.uniform(0.5, 1.5, *b.shape))
            elif name.endswith("num_batches_tracked"):
                b.fill_(3)


def layer(name, kind, module, config, inputs, call=None, mode="eval", attrs=None, wrt=None, params=True):
    """A case of graphgrad layer `kind` against the PyTorch `module` built from `config`:
    call(module, **inputs) (default: module(x), or module(x0), module(x1), ... in turn); wrt:
    the inputs differentiated (default: every float input that is not a mask)."""
    rng = Rng(name)
    if params:
        randomize(module, rng)
    module.train(mode == "train")
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    inputs = {k: (v(rng) if callable(v) else v) for k, v in inputs.items()}
    if wrt is None:
        wrt = [k for k, v in inputs.items() if v.dtype.is_floating_point and "mask" not in k]
    leaves = {k: inputs[k].clone().requires_grad_() for k in wrt}
    args = [leaves.get(k, v) for k, v in inputs.items()]
    if call is not None:
        outputs = outputs_of(call(module, **dict(zip(inputs, args))))
    elif list(inputs) == ["x"]:
        outputs = {"y": module(args[0])}
    else:  # x0, x1, ...: one forward pass each, in order
        outputs = {f"y{i}": module(a) for i, a in enumerate(args)}
    named = dict(module.named_parameters())
    cot, grads = vjp(outputs, {**leaves, **{f"param:{k}": v for k, v in named.items()}}, rng)
    case = {
        "name": name,
        "module": kind,
        "config": config,
        "mode": mode,
        "attrs": attrs or {},
        "state": enc_all(state),
        "inputs": enc_all(inputs),
        "outputs": enc_all(outputs),
        "cotangents": enc_all(cot),
        "grads": enc_all({k: v for k, v in grads.items() if not k.startswith("param:")}),
        "param_grads": enc_all({k[6:]: v for k, v in grads.items() if k.startswith("param:")}),
    }
    after = module.state_dict()
    if any(not torch.equal(after[k], state[k]) for k in state):
        case["state_after"] = enc_all(after)
    LAYERS.append(case)


def dense_layers():
    for bias in [True, False]:
        c = {"in_features": 5, "out_features": 3, "bias": bias}
        layer(f"Linear/bias{int(bias)}", "Linear", nn.Linear(**c), c, {"x": normal(2, 3, 5)})
    c = {"num_embeddings": 6, "embedding_dim": 3, "padding_idx": None}
    layer("Embedding", "Embedding", nn.Embedding(**c), c, {"x": ints([5, 0, 5, 2, 1, 1], (2, 3))})
    c = {"num_embeddings": 6, "embedding_dim": 3, "padding_idx": 1}
    layer("Embedding/padding_idx", "Embedding", nn.Embedding(**c), c, {"x": ints([5, 1, 5, 2, 1, 0], (3, 2))})
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.Tanh())
    c = {"layers": [{"Linear": {"in_features": 4, "out_features": 6, "bias": True}}, {"ReLU": {}},
                    {"Linear": {"in_features": 6, "out_features": 3, "bias": True}}, {"Tanh": {}}]}
    layer("Sequential", "Sequential", seq, c, {"x": normal(5, 4)})


def conv_layers():
    c = {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": True}
    layer("Conv1d/options", "Conv1d", nn.Conv1d(**c), c, {"x": normal(2, 4, 9)})
    c = {"in_channels": 3, "out_channels": 2, "kernel_size": 2, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": False}
    layer("Conv1d/plain", "Conv1d", nn.Conv1d(**c), c, {"x": normal(1, 3, 6)})
    c = {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 2],
         "dilation": [1, 2], "groups": 2, "bias": True}
    layer("Conv2d/options", "Conv2d", nn.Conv2d(**c), c, {"x": normal(2, 4, 5, 6)})
    c = {"in_channels": 3, "out_channels": 2, "kernel_size": [2, 3], "stride": [1, 1], "padding": [0, 0],
         "dilation": [1, 1], "groups": 1, "bias": False}
    layer("Conv2d/plain", "Conv2d", nn.Conv2d(**c), c, {"x": normal(1, 3, 4, 5)})
    c = {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
         "output_padding": [1, 0], "groups": 1, "bias": True, "dilation": [1, 1]}
    layer("ConvTranspose2d/output_padding", "ConvTranspose2d", nn.ConvTranspose2d(**c), c, {"x": normal(2, 2, 3, 3)})
    c = {"in_channels": 4, "out_channels": 2, "kernel_size": [2, 3], "stride": [1, 2], "padding": [0, 1],
         "output_padding": [0, 1], "groups": 2, "bias": False, "dilation": [2, 1]}
    layer("ConvTranspose2d/groups_dilation", "ConvTranspose2d", nn.ConvTranspose2d(**c), c, {"x": normal(1, 4, 3, 2)})


def norm_layers():
    def bn(dims, **kw):
        c = {"num_features": 3, "eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}
        c.update(kw)
        return c, (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(**c)

    # training: batch statistics, and the running statistics after two batches
    c, m = bn(2)
    layer("BatchNorm2d/train", "BatchNorm2d", m, c, {"x0": normal(2, 3, 4, 5), "x1": normal(2, 3, 4, 5)}, mode="train")
    c, m = bn(2, momentum=None)
    layer("BatchNorm2d/train_cumulative", "BatchNorm2d", m, c, {"x0": normal(2, 3, 2, 3), "x1": normal(3, 3, 2, 2)}, mode="train")
    c, m = bn(2, eps=1e-3)
    layer("BatchNorm2d/eval", "BatchNorm2d", m, c, {"x": normal(2, 3, 4, 5)})
    c, m = bn(2, affine=False, momentum=0.3)
    layer("BatchNorm2d/train_no_affine", "BatchNorm2d", m, c, {"x0": normal(2, 3, 3, 3), "x1": normal(2, 3, 3, 3)}, mode="train")
    for mode in ["train", "eval"]:
        c, m = bn(2, track_running_stats=False)
        layer(f"BatchNorm2d/untracked_{mode}", "BatchNorm2d", m, c, {"x": normal(2, 3, 3, 2)}, mode=mode)
    c, m = bn(1)
    layer("BatchNorm1d/train_2d", "BatchNorm1d", m, c, {"x0": normal(5, 3), "x1": normal(4, 3)}, mode="train")
    c, m = bn(1, momentum=0.25)
    layer("BatchNorm1d/train_3d", "BatchNorm1d", m, c, {"x0": normal(2, 3, 4), "x1": normal(3, 3, 2)}, mode="train")
    c, m = bn(1)
    layer("BatchNorm1d/eval", "BatchNorm1d", m, c, {"x": normal(4, 3, 2)})
    for shape, affine, bias in [([5], True, True), ([3, 5], True, False), ([5], False, False)]:
        c = {"normalized_shape": shape, "eps": 1e-5, "elementwise_affine": affine, "bias": bias}
        layer(f"LayerNorm/{'x'.join(map(str, shape))}_affine{int(affine)}_bias{int(bias)}", "LayerNorm",
              nn.LayerNorm(**c), c, {"x": normal(2, 3, 5)})


def recurrent_layers():
    base = {"input_size": 3, "hidden_size": 4, "num_layers": 1, "bias": True, "batch_first": True, "bidirectional": False}

    def cfg(**kw):
        c = dict(base)
        c.update(kw)
        return c

    rnn_call = lambda m, x, h0=None: dict(zip(["y", "h_n"], m(x, h0)))
    lstm_call = lambda m, x, h0=None, c0=None: (
        lambda out: {"y": out[0], "h_n": out[1][0], "c_n": out[1][1]}
    )(m(x, None if h0 is None else (h0, c0)))
    for nonlinearity in ["tanh", "relu"]:
        c = cfg(nonlinearity=nonlinearity)
        layer(f"RNN/{nonlinearity}", "RNN", nn.RNN(**c), c, {"x": normal(2, 5, 3)}, rnn_call)
    c = cfg(num_layers=2, bidirectional=True)
    layer("RNN/stacked_bidirectional_h0", "RNN", nn.RNN(**c), c, {"x": normal(2, 4, 3), "h0": normal(4, 2, 4)}, rnn_call)
    c = cfg(bias=False)
    layer("RNN/no_bias", "RNN", nn.RNN(**c), c, {"x": normal(3, 2, 3)}, rnn_call)
    layer("LSTM", "LSTM", nn.LSTM(**cfg()), cfg(), {"x": normal(2, 5, 3)}, lstm_call)
    c = cfg(num_layers=2, bidirectional=True)
    layer("LSTM/stacked_bidirectional_state", "LSTM", nn.LSTM(**c), c,
          {"x": normal(2, 4, 3), "h0": normal(4, 2, 4), "c0": normal(4, 2, 4)}, lstm_call)
    c = cfg(num_layers=2, bidirectional=True, proj_size=2)
    layer("LSTM/proj_size", "LSTM", nn.LSTM(**c), c,
          {"x": normal(2, 3, 3), "h0": normal(4, 2, 2), "c0": normal(4, 2, 4)}, lstm_call)
    layer("GRU", "GRU", nn.GRU(**cfg()), cfg(), {"x": normal(2, 5, 3)}, rnn_call)
    c = cfg(num_layers=2, bidirectional=True)
    layer("GRU/stacked_bidirectional_h0", "GRU", nn.GRU(**c), c, {"x": normal(2, 4, 3), "h0": normal(4, 2, 4)}, rnn_call)


def mask(values, shape):
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def causal(n):
    return torch.triu(torch.ones(n, n), 1)


def attention_layers():
    def mha_call(m, query, key, value, key_padding_mask=None, attn_mask=None, causal_len=None):
        if causal_len is not None:
            attn_mask = causal(causal_len)
        y, w = m(query, key, value, key_padding_mask=None if key_padding_mask is None else key_padding_mask != 0,
                 attn_mask=None if attn_mask is None else attn_mask != 0, need_weights=True, average_attn_weights=False)
        return {"y": y, "weights": w}

    c = {"embed_dim": 6, "num_heads": 2, "bias": True, "batch_first": True}
    qkv = {"query": normal(2, 3, 6), "key": normal(2, 4, 6), "value": normal(2, 4, 6)}
    layer("MultiheadAttention/cross", "MultiheadAttention", nn.MultiheadAttention(**c), c, qkv, mha_call)
    padding = mask([0, 0, 0, 1, 0, 0, 1, 1], (2, 4))
    layer("MultiheadAttention/key_padding", "MultiheadAttention", nn.MultiheadAttention(**c), c,
          {**qkv, "key_padding_mask": padding}, mha_call)
    blocked = mask([0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0], (3, 4))
    layer("MultiheadAttention/attn_mask", "MultiheadAttention", nn.MultiheadAttention(**c), c,
          {**qkv, "attn_mask": blocked}, mha_call)
    c = {"embed_dim": 6, "num_heads": 3, "bias": False, "batch_first": True}
    # self-attention: key and value are the query
    layer("MultiheadAttention/causal_self_no_bias", "MultiheadAttention", nn.MultiheadAttention(**c), c,
          {"query": normal(2, 4, 6)}, lambda m, query: mha_call(m, query, query, query, causal_len=4),
          attrs={"causal": True})

    def tel(**kw):
        c = {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "dropout": 0.1, "activation": "relu",
             "layer_norm_eps": 1e-5, "batch_first": True, "norm_first": False}
        c.update(kw)
        return c

    def enc_call(m, x, src_key_padding_mask=None):
        return m(x, src_key_padding_mask=None if src_key_padding_mask is None else src_key_padding_mask != 0)

    c = tel()
    layer("TransformerEncoderLayer/post_norm", "TransformerEncoderLayer", nn.TransformerEncoderLayer(**c), c,
          {"x": normal(2, 3, 4)})
    c = tel(activation="gelu", norm_first=True)
    layer("TransformerEncoderLayer/pre_norm_gelu_padding", "TransformerEncoderLayer", nn.TransformerEncoderLayer(**c), c,
          {"x": normal(2, 3, 4), "src_key_padding_mask": mask([0, 0, 1, 0, 0, 0], (2, 3))}, enc_call)
    c = tel(layer_norm_eps=1e-4)
    layer("TransformerEncoderLayer/causal", "TransformerEncoderLayer", nn.TransformerEncoderLayer(**c), c,
          {"x": normal(2, 3, 4)}, lambda m, x: m(x, src_mask=causal(3) != 0), attrs={"causal": True})
    c = tel(norm_first=True)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**c), 2, norm=nn.LayerNorm(4), enable_nested_tensor=False)
    layer("TransformerEncoder/two_layers_final_norm", "TransformerEncoder", encoder,
          {"layer": c, "num_layers": 2, "norm": True}, {"x": normal(2, 3, 4)})


def stateless_layers():
    # the 1/2 grid puts inputs on the kinks (relu at 0, hardtanh at its bounds, ...)
    acts = [
        ("ReLU", {}, nn.ReLU()),
        ("LeakyReLU", {"negative_slope": 0.2}, nn.LeakyReLU(0.2)),
        ("ELU", {"alpha": 0.5}, nn.ELU(0.5)),
        ("GELU", {"approximate": "none"}, nn.GELU()),
        ("GELU", {"approximate": "tanh"}, nn.GELU("tanh")),
        ("Sigmoid", {}, nn.Sigmoid()),
        ("Tanh", {}, nn.Tanh()),
        ("Softplus", {"beta": 2.0, "threshold": 3.0}, nn.Softplus(2.0, 3.0)),
        ("Softmax", {"dim": 1}, nn.Softmax(1)),
        ("LogSoftmax", {"dim": -1}, nn.LogSoftmax(-1)),
        ("SiLU", {}, nn.SiLU()),
        ("LogSigmoid", {}, nn.LogSigmoid()),
        ("Hardtanh", {"min_val": -1.0, "max_val": 1.5}, nn.Hardtanh(-1.0, 1.5)),
    ]
    for kind, c, m in acts:
        suffix = "/" + "_".join(f"{k}{v}" for k, v in c.items()) if c else ""
        layer(f"{kind}{suffix}", kind, m, c, {"x": grid(*S)})
    c = {"start_dim": 1, "end_dim": -1}
    layer("Flatten/default", "Flatten", nn.Flatten(**c), c, {"x": normal(2, 3, 2, 2)})
    c = {"start_dim": 0, "end_dim": 1}
    layer("Flatten/leading", "Flatten", nn.Flatten(**c), c, {"x": normal(2, 3, 2)})
    c = {"p": 0.4}
    layer("Dropout/eval", "Dropout", nn.Dropout(**c), c, {"x": normal(*S)})
    c = {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": False}
    layer("MaxPool2d/ties", "MaxPool2d", nn.MaxPool2d(**c), c, {"x": grid(2, 2, 5, 5, half_width=1)})
    c = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": True}
    layer("MaxPool2d/ceil_mode", "MaxPool2d", nn.MaxPool2d(**c), c, {"x": normal(1, 2, 5, 3)})
    c = {"kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 1], "ceil_mode": False, "count_include_pad": True}
    layer("AvgPool2d/padding", "AvgPool2d", nn.AvgPool2d(**c), c, {"x": normal(2, 2, 5, 4)})
    c = {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True, "count_include_pad": False}
    layer("AvgPool2d/ceil_exclude_pad", "AvgPool2d", nn.AvgPool2d(**c), c, {"x": normal(1, 2, 6, 5)})


def cases():
    for family in [dense_layers, conv_layers, norm_layers, recurrent_layers, attention_layers, stateless_layers]:
        family()
    return LAYERS

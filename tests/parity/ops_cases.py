"""The ops family (ops.json): every differentiable Tensor op, and the comparisons."""

import torch
import torch.nn.functional as F

from common import S, Rng, away, enc_all, fixed, grid, ints, normal, outputs_of, positive, vjp


# ---------------------------------------------------------------------------------------------
# Ops: every differentiable Tensor op (autodiff/tests/gradcheck_ops.rs is the checklist)

OPS = []


def op(name, kind, inputs, fn, attrs=None, wrt=None):
    """A case of Tensor op `kind`: fn(*inputs) in PyTorch; wrt: the inputs differentiated
    (default: every float input)."""
    rng = Rng(name)
    inputs = {k: (v(rng) if callable(v) else v) for k, v in inputs.items()}
    leaves = {}
    for k, v in inputs.items():
        if v.dtype.is_floating_point and (wrt is None or k in wrt):
            leaves[k] = v.clone().requires_grad_()
    # positional, in the inputs' order
    outputs = outputs_of(fn(*[leaves.get(k, v) for k, v in inputs.items()]))
    cot, grads = vjp(outputs, leaves, rng)
    OPS.append(
        {
            "name": name,
            "op": kind,
            "attrs": attrs or {},
            "inputs": enc_all(inputs),
            "outputs": enc_all(outputs),
            "cotangents": enc_all(cot),
            "grads": enc_all(grads),
        }
    )


def unary_ops():
    u = lambda name, f, x, attrs=None: op(name, name.split("/")[0], {"x": x}, f, attrs)
    u("neg", lambda x: -x, normal(*S))
    u("abs/kinks", torch.abs, grid(*S))
    u("sign/kinks", torch.sign, grid(*S))
    u("exp", torch.exp, normal(*S))
    u("log", torch.log, positive(*S))
    u("sqrt", torch.sqrt, positive(*S))
    u("recip", torch.reciprocal, away(*S))
    u("square", torch.square, normal(*S))
    u("relu/kinks", F.relu, grid(*S))
    u("sigmoid", torch.sigmoid, lambda r: 3 * r.normal(*S))
    u("tanh", torch.tanh, lambda r: 2 * r.normal(*S))
    u("gelu", F.gelu, lambda r: 2 * r.normal(*S))
    u("erf", torch.erf, normal(*S))
    wide = fixed([-30.0, -5.0, -1.25, -0.5, 0.0, 0.5, 1.0, 4.0, 19.0, 25.0])
    u("softplus", F.softplus, lambda r: torch.cat([wide, 3 * r.normal(20)]))
    u("silu", F.silu, lambda r: 2 * r.normal(*S))
    u("log_sigmoid", F.logsigmoid, lambda r: torch.cat([wide, 3 * r.normal(20)]))
    u("leaky_relu/kinks", lambda x: F.leaky_relu(x, 0.1), grid(*S), {"slope": 0.1})
    u("elu/kinks", lambda x: F.elu(x, 0.7), grid(*S), {"alpha": 0.7})
    u("add_scalar", lambda x: x + 1.5, normal(*S), {"c": 1.5})
    u("sub_scalar", lambda x: x - 0.75, normal(*S), {"c": 0.75})
    u("mul_scalar", lambda x: x * -2.5, normal(*S), {"c": -2.5})
    u("div_scalar", lambda x: x / 3.0, normal(*S), {"c": 3.0})
    u("rsub_scalar", lambda x: 2.0 - x, normal(*S), {"c": 2.0})
    u("rdiv_scalar", lambda x: 1.5 / x, away(*S), {"c": 1.5})
    u("pow_scalar/fractional", lambda x: torch.pow(x, 2.7), positive(*S), {"p": 2.7})
    u("pow_scalar/negative", lambda x: torch.pow(x, -1.5), positive(*S), {"p": -1.5})
    u("pow_scalar/cube_at_zero", lambda x: torch.pow(x, 3.0), grid(*S), {"p": 3.0})
    u("pow_scalar/zero_exponent", lambda x: torch.pow(x, 0.0), grid(*S), {"p": 0.0})
    u("clamp/bounds", lambda x: torch.clamp(x, -0.5, 1.0), grid(*S), {"min": -0.5, "max": 1.0})
    u("hardtanh/bounds", lambda x: F.hardtanh(x, -1.0, 1.5), grid(*S), {"min": -1.0, "max": 1.5})
    u("maximum_scalar/ties", lambda x: torch.maximum(x, torch.tensor(0.5)), grid(*S), {"c": 0.5})
    u("minimum_scalar/ties", lambda x: torch.minimum(x, torch.tensor(-0.5)), grid(*S), {"c": -0.5})
    u("cast", lambda x: x.float().double(), normal(*S))
    # dropout is random in training; outside training (and with p = 0 or 1) it is not
    u("dropout/eval", lambda x: F.dropout(x, 0.3, training=False), normal(*S), {"p": 0.3, "training": False})
    u("dropout/p0", lambda x: F.dropout(x, 0.0, training=True), normal(*S), {"p": 0.0, "training": True})
    u("dropout/p1", lambda x: F.dropout(x, 1.0, training=True), normal(*S), {"p": 1.0, "training": True})


def binary_ops():
    b = lambda name, f, x, y: op(name, name.split("/")[0], {"a": x, "b": y}, f)
    b("add/broadcast", lambda a, b: a + b, normal(2, 3, 5), normal(3, 1))
    b("sub/broadcast", lambda a, b: a - b, normal(3, 1), normal(2, 1, 5))
    b("mul/broadcast", lambda a, b: a * b, normal(2, 3, 5), normal(2, 1, 5))
    b("div/broadcast", lambda a, b: a / b, normal(2, 3, 5), away(5))
    b("pow/broadcast", torch.pow, positive(2, 3, 5), normal(3, 1))
    zero_base = fixed([0.0, 0.0, 0.0, 1.5, 0.5, 2.0], (2, 3))
    b("pow/zero_base", torch.pow, zero_base, fixed([2.0, 1.0, 0.0, -1.0, 0.0, 1.5], (2, 3)))
    b("maximum/ties", torch.maximum, grid(2, 3, 5, half_width=1), grid(3, 5, half_width=1))
    b("minimum/ties", torch.minimum, grid(2, 3, 5, half_width=1), grid(2, 1, 5, half_width=1))
    for cmp in ["eq", "ne", "lt", "le", "gt", "ge"]:
        f = getattr(torch, cmp)
        b(f"{cmp}/ties", lambda a, b, f=f: f(a, b).double(), grid(2, 3, 5, half_width=1), grid(3, 5, half_width=1))
        op(
            f"{cmp}_scalar/ties",
            f"{cmp}_scalar",
            {"x": grid(*S, half_width=1)},
            lambda x, f=f: f(x, 0.5).double(),
            {"c": 0.5},
        )
    cond = lambda r: (r.uniform(0, 1, 2, 3, 5) < 0.5).double()
    op("where", "where", {"cond": cond, "a": normal(2, 3, 5), "b": normal(3, 1)},
       lambda cond, a, b: torch.where(cond != 0, a, b), wrt=["a", "b"])
    mask = lambda r: (r.uniform(0, 1, 3, 5) < 0.5).double()
    op("masked_fill", "masked_fill", {"x": normal(2, 3, 5), "mask": mask},
       lambda x, mask: x.masked_fill(mask != 0, -0.75), {"value": -0.75}, wrt=["x"])


def reduce_ops():
    r = lambda name, f, x, attrs: op(name, name.split("/")[0], {"x": x}, f, attrs)
    r("sum/axis1", lambda x: x.sum(1), normal(*S), {"axes": [1], "keepdim": False})
    r("sum/axes02_keepdim", lambda x: x.sum((0, 2), keepdim=True), normal(*S), {"axes": [0, 2], "keepdim": True})
    r("sum/last", lambda x: x.sum(-1), normal(*S), {"axes": [-1], "keepdim": False})
    r("mean/axes02_keepdim", lambda x: x.mean((0, 2), keepdim=True), normal(*S), {"axes": [0, 2], "keepdim": True})
    r("mean/axis0", lambda x: x.mean(0), normal(*S), {"axes": [0], "keepdim": False})
    # max and min over axes are amax and amin: ties share the gradient
    r("max/ties", lambda x: x.amax(1), grid(*S, half_width=1), {"axes": [1], "keepdim": False})
    r("max/ties_axes02", lambda x: x.amax((0, 2), keepdim=True), grid(*S, half_width=1), {"axes": [0, 2], "keepdim": True})
    r("min/ties", lambda x: x.amin(-1), grid(*S, half_width=1), {"axes": [-1], "keepdim": False})
    r("logsumexp/last", lambda x: torch.logsumexp(x, -1), lambda g: 3 * g.normal(*S), {"axes": [-1], "keepdim": False})
    r("logsumexp/axes01_keepdim", lambda x: torch.logsumexp(x, (0, 1), keepdim=True), normal(*S), {"axes": [0, 1], "keepdim": True})
    r("var/unbiased", lambda x: x.var(1, correction=1), normal(*S), {"axes": [1], "keepdim": False, "unbiased": True})
    r("var/biased_keepdim", lambda x: x.var((0, 2), correction=0, keepdim=True), normal(*S), {"axes": [0, 2], "keepdim": True, "unbiased": False})
    op("sum_all", "sum_all", {"x": normal(*S)}, lambda x: x.sum())
    op("mean_all", "mean_all", {"x": normal(*S)}, lambda x: x.mean())
    # the first index on ties, as graphgrad documents and torch.argmax does
    op("argmax/ties", "argmax", {"x": grid(*S, half_width=1)}, lambda x: torch.argmax(x, 1), {"axis": 1})
    op("argmax/last", "argmax", {"x": normal(*S)}, lambda x: torch.argmax(x, -1), {"axis": -1})


def matmul_ops():
    m = lambda name, a, b, f=torch.matmul: op(name, "matmul", {"a": a, "b": b}, f)
    m("matmul/2d", normal(3, 4), normal(4, 5))
    m("matmul/batched", normal(2, 3, 4), normal(4, 2))
    m("matmul/broadcast", normal(2, 1, 2, 3), normal(3, 3, 2))
    m("matmul/vector_matrix", normal(4), normal(4, 3))
    m("matmul/matrix_vector", normal(3, 4), normal(4))
    m("matmul/dot", normal(5), normal(5))
    for ta, tb, sa, sb in [(True, False, (4, 3), (4, 2)), (False, True, (3, 4), (2, 4)), (True, True, (2, 4, 3), (2, 4))]:
        f = lambda a, b, ta=ta, tb=tb: (a.mT if ta else a) @ (b.mT if tb else b)
        op(f"matmul_with/{int(ta)}{int(tb)}", "matmul_with", {"a": normal(*sa), "b": normal(*sb)}, f,
           {"trans_a": ta, "trans_b": tb})


def movement_ops():
    mv = lambda name, f, x, attrs: op(name, name.split("/")[0], {"x": x}, f, attrs)
    mv("reshape", lambda x: x.reshape(5, 6), normal(*S), {"shape": [5, 6]})
    mv("reshape_inferred", lambda x: x.reshape(-1, 10), normal(*S), {"shape": [-1, 10]})
    mv("flatten_from", lambda x: torch.flatten(x, 1), normal(2, 3, 5, 2), {"start": 1})
    mv("permute", lambda x: x.permute(2, 0, 1), normal(*S), {"perm": [2, 0, 1]})
    mv("transpose", lambda x: x.transpose(0, -1), normal(*S), {"a": 0, "b": -1})
    mv("t", lambda x: x.t(), normal(3, 5), {})
    mv("unsqueeze", lambda x: x.unsqueeze(-2), normal(*S), {"axis": -2})
    mv("squeeze", lambda x: x.squeeze(1), normal(2, 1, 5), {"axis": 1})
    mv("expand", lambda x: x.expand(2, 3, 4), normal(3, 1), {"shape": [2, 3, 4]})
    mv("narrow", lambda x: x.narrow(1, 1, 3), normal(2, 5, 3), {"axis": 1, "start": 1, "len": 3})
    mv("split", lambda x: torch.split(x, 2, 0), normal(5, 3), {"size": 2, "axis": 0})
    # F.pad lists (before, after) from the last axis backwards; graphgrad lists every axis forwards
    mv("pad", lambda x: F.pad(x, (0, 3, 2, 1, 1, 0), value=0.5), normal(*S), {"pads": [[1, 0], [2, 1], [0, 3]], "value": 0.5})
    op("cat", "cat", {"a": normal(2, 3), "b": normal(2, 1), "c": normal(2, 4)},
       lambda a, b, c: torch.cat([a, b, c], 1), {"axis": 1})
    op("stack", "stack", {"a": normal(3, 2), "b": normal(3, 2)}, lambda a, b: torch.stack([a, b], 1), {"axis": 1})


def index_ops():
    op("index_select", "index_select", {"x": normal(3, 4, 2), "index": ints([3, 0, 3, 1])},
       lambda x, index: x.index_select(1, index), {"axis": 1})
    op("index_add/repeats", "index_add", {"x": normal(3, 2), "index": ints([2, 0, 2, 1]), "source": normal(4, 2)},
       lambda x, index, source: x.index_add(0, index, source), {"axis": 0})
    op("gather", "gather", {"x": normal(3, 4), "index": ints([0, 3, 3, 1, 2, 2], (3, 2))},
       lambda x, index: x.gather(1, index), {"axis": 1})
    op("scatter_add/repeats", "scatter_add",
       {"x": normal(3, 4), "index": ints([0, 3, 3, 3, 2, 1], (3, 2)), "source": normal(3, 2)},
       lambda x, index, source: x.scatter_add(1, index, source), {"axis": 1})
    op("embedding", "embedding", {"table": normal(5, 3), "index": ints([4, 0, 4, 2, 1, 1], (2, 3))},
       lambda table, index: F.embedding(index, table))


def norm_ops():
    for axis in [1, 0, -1]:
        op(f"softmax/axis{axis}", "softmax", {"x": lambda r: 2 * r.normal(*S)}, lambda x, a=axis: torch.softmax(x, a), {"axis": axis})
        op(f"log_softmax/axis{axis}", "log_softmax", {"x": lambda r: 2 * r.normal(*S)}, lambda x, a=axis: torch.log_softmax(x, a), {"axis": axis})
    op("layer_norm/affine", "layer_norm", {"x": normal(2, 3, 5), "weight": normal(5), "bias": normal(5)},
       lambda x, weight, bias: F.layer_norm(x, (5,), weight, bias, 1e-5), {"normalized_shape": [5], "eps": 1e-5})
    op("layer_norm/2d_plain", "layer_norm", {"x": normal(2, 3, 5)},
       lambda x: F.layer_norm(x, (3, 5), None, None, 1e-3), {"normalized_shape": [3, 5], "eps": 1e-3})
    op("layer_norm/weight_only", "layer_norm", {"x": normal(3, 7), "weight": normal(7)},
       lambda x, weight: F.layer_norm(x, (7,), weight, None, 1e-5), {"normalized_shape": [7], "eps": 1e-5})


def conv_ops():
    op("conv2d/options", "conv2d", {"x": normal(2, 4, 5, 6), "weight": normal(4, 2, 3, 2), "bias": normal(4)},
       lambda x, weight, bias: F.conv2d(x, weight, bias, (2, 1), (1, 2), (1, 2), 2),
       {"stride": [2, 1], "padding": [1, 2], "dilation": [1, 2], "groups": 2})
    op("conv2d/plain", "conv2d", {"x": normal(1, 3, 5, 4), "weight": normal(2, 3, 2, 3)},
       lambda x, weight: F.conv2d(x, weight), {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1})
    op("conv1d/options", "conv1d", {"x": normal(2, 4, 9), "weight": normal(6, 2, 3), "bias": normal(6)},
       lambda x, weight, bias: F.conv1d(x, weight, bias, 2, 1, 2, 2),
       {"stride": 2, "padding": 1, "dilation": 2, "groups": 2})
    op("conv1d/plain", "conv1d", {"x": normal(1, 3, 7), "weight": normal(2, 3, 3)},
       lambda x, weight: F.conv1d(x, weight), {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    op("conv_transpose2d/output_padding", "conv_transpose2d",
       {"x": normal(1, 2, 3, 3), "weight": normal(2, 3, 3, 3), "bias": normal(3)},
       lambda x, weight, bias: F.conv_transpose2d(x, weight, bias, (2, 2), (1, 1), (1, 0)),
       {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 0], "dilation": [1, 1], "groups": 1})
    op("conv_transpose2d/groups_dilation", "conv_transpose2d",
       {"x": normal(2, 4, 3, 2), "weight": normal(4, 1, 2, 3)},
       lambda x, weight: F.conv_transpose2d(x, weight, None, (1, 2), (0, 1), (0, 1), 2, (2, 1)),
       {"stride": [1, 2], "padding": [0, 1], "output_padding": [0, 1], "dilation": [2, 1], "groups": 2})


def pool_ops():
    ties = grid(2, 2, 5, 5, half_width=1)
    op("max_pool2d/ties", "max_pool2d", {"x": ties},
       lambda x: F.max_pool2d(x, (3, 3), (2, 2), (1, 1)), {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]})
    op("max_pool2d/ceil_mode", "max_pool2d", {"x": normal(1, 2, 5, 6)},
       lambda x: F.max_pool2d(x, (2, 3), (2, 2), (0, 1), ceil_mode=True),
       {"kernel": [2, 3], "stride": [2, 2], "padding": [0, 1], "ceil_mode": True})
    op("max_pool2d_with_indices/ties", "max_pool2d_with_indices", {"x": grid(1, 2, 4, 5, half_width=1)},
       lambda x: F.max_pool2d(x, (2, 2), (1, 2), (1, 0), return_indices=True),
       {"kernel": [2, 2], "stride": [1, 2], "padding": [1, 0]})
    op("avg_pool2d/padding", "avg_pool2d", {"x": normal(2, 2, 5, 4)},
       lambda x: F.avg_pool2d(x, (3, 2), (2, 2), (1, 1)), {"kernel": [3, 2], "stride": [2, 2], "padding": [1, 1]})
    op("avg_pool2d/ceil_exclude_pad", "avg_pool2d", {"x": normal(1, 2, 5, 6)},
       lambda x: F.avg_pool2d(x, (3, 3), (2, 2), (1, 1), ceil_mode=True, count_include_pad=False),
       {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True, "count_include_pad": False})


def composite_ops():
    # activation checkpointing recomputes the segment: the values are the plain ones
    op("checkpoint", "checkpoint", {"a": normal(3, 4), "b": normal(4, 2)}, lambda a, b: torch.tanh(a @ b))


def cases():
    for family in [unary_ops, binary_ops, reduce_ops, matmul_ops, movement_ops, index_ops,
                   norm_ops, conv_ops, pool_ops, composite_ops]:
        family()
    return OPS

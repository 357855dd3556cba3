"""The losses family (losses.json): every loss of nn/src/loss, each reduction."""

import math

import torch
import torch.nn.functional as F

from common import S, Rng, enc_all, fixed, grid, ints, normal, outputs_of, vjp


# ---------------------------------------------------------------------------------------------
# Losses: every loss of nn/src/loss, each reduction

LOSSES = []


def loss(name, kind, inputs, fn, attrs=None, wrt=("input",)):
    """A case of loss `kind`: fn(*inputs) in PyTorch; wrt: the inputs differentiated."""
    rng = Rng(name)
    inputs = {k: (v(rng) if callable(v) else v) for k, v in inputs.items()}
    leaves = {k: inputs[k].clone().requires_grad_() for k in wrt}
    outputs = outputs_of(fn(*[leaves.get(k, v) for k, v in inputs.items()]))
    cot, grads = vjp(outputs, leaves, rng)
    LOSSES.append(
        {
            "name": name,
            "loss": kind,
            "attrs": attrs or {},
            "inputs": enc_all(inputs),
            "outputs": enc_all(outputs),
            "cotangents": enc_all(cot),
            "grads": enc_all(grads),
        }
    )


REDUCTIONS = ["mean", "sum", "none"]


def probabilities(*shape):
    return lambda r: r.uniform(0.05, 0.95, *shape)


def regression_losses():
    both = ("input", "target")
    for red in REDUCTIONS:
        loss(f"l1_loss/{red}", "l1_loss", {"input": grid(*S), "target": grid(*S)},
             lambda x, t, red=red: F.l1_loss(x, t, reduction=red), {"reduction": red}, both)
        loss(f"mse_loss/{red}", "mse_loss", {"input": normal(*S), "target": normal(*S)},
             lambda x, t, red=red: F.mse_loss(x, t, reduction=red), {"reduction": red}, both)
    for beta, red in [(1.0, "mean"), (0.5, "none"), (0.0, "sum")]:
        loss(f"smooth_l1_loss/beta{beta}_{red}", "smooth_l1_loss", {"input": grid(*S), "target": grid(*S)},
             lambda x, t, b=beta, red=red: F.smooth_l1_loss(x, t, reduction=red, beta=b),
             {"reduction": red, "beta": beta}, both)
    for delta, red in [(1.0, "mean"), (0.5, "none"), (2.0, "sum")]:
        loss(f"huber_loss/delta{delta}_{red}", "huber_loss", {"input": grid(*S), "target": grid(*S)},
             lambda x, t, d=delta, red=red: F.huber_loss(x, t, reduction=red, delta=d),
             {"reduction": red, "delta": delta}, both)


def classification_losses():
    logits = lambda r: 2 * r.normal(4, 5)
    labels = ints([3, 0, 2, 2])
    for red in REDUCTIONS:
        loss(f"cross_entropy/{red}", "cross_entropy", {"input": logits, "target": labels},
             lambda x, t, red=red: F.cross_entropy(x, t, reduction=red), {"reduction": red})
    weight = lambda r: r.uniform(0.2, 2.0, 5)
    loss("cross_entropy/weight", "cross_entropy", {"input": logits, "target": labels, "weight": weight},
         lambda x, t, w: F.cross_entropy(x, t, weight=w), {"reduction": "mean"})
    loss("cross_entropy/ignore_index", "cross_entropy", {"input": logits, "target": labels},
         lambda x, t: F.cross_entropy(x, t, ignore_index=2), {"reduction": "mean", "ignore_index": 2})
    for red in ["mean", "none"]:
        loss(f"cross_entropy/smoothing_weight_ignore_{red}", "cross_entropy",
             {"input": logits, "target": labels, "weight": weight},
             lambda x, t, w, red=red: F.cross_entropy(x, t, weight=w, ignore_index=0, label_smoothing=0.2, reduction=red),
             {"reduction": red, "ignore_index": 0, "label_smoothing": 0.2})
    loss("cross_entropy/spatial", "cross_entropy", {"input": normal(2, 4, 3), "target": ints([3, 0, 1, 1, 2, 3], (2, 3))},
         lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), {"reduction": "mean", "label_smoothing": 0.1})
    loss("cross_entropy/one_sample", "cross_entropy", {"input": normal(5), "target": ints(3)},
         lambda x, t: F.cross_entropy(x, t), {"reduction": "mean"})
    soft = lambda r: torch.softmax(r.normal(4, 5), 1)
    for red in REDUCTIONS:
        loss(f"cross_entropy/probabilities_{red}", "cross_entropy", {"input": logits, "target": soft, "weight": weight},
             lambda x, t, w, red=red: F.cross_entropy(x, t, weight=w, label_smoothing=0.15, reduction=red),
             {"reduction": red, "label_smoothing": 0.15}, ("input", "target"))
    loss("cross_entropy/probabilities_spatial", "cross_entropy",
         {"input": normal(2, 4, 3), "target": lambda r: torch.softmax(r.normal(2, 4, 3), 1)},
         lambda x, t: F.cross_entropy(x, t), {"reduction": "mean"}, ("input", "target"))
    log_probs = lambda r: torch.log_softmax(r.normal(4, 5), 1)
    for red in REDUCTIONS:
        loss(f"nll_loss/{red}", "nll_loss", {"input": log_probs, "target": labels},
             lambda x, t, red=red: F.nll_loss(x, t, reduction=red), {"reduction": red})
    for red in ["mean", "sum"]:
        loss(f"nll_loss/weight_ignore_{red}", "nll_loss", {"input": log_probs, "target": labels, "weight": weight},
             lambda x, t, w, red=red: F.nll_loss(x, t, weight=w, ignore_index=3, reduction=red),
             {"reduction": red, "ignore_index": 3})
    loss("nll_loss/spatial", "nll_loss", {"input": normal(2, 4, 3), "target": ints([3, 0, 1, 1, 2, 3], (2, 3))},
         lambda x, t: F.nll_loss(x, t), {"reduction": "mean"})
    both = ("input", "target")
    for red in REDUCTIONS:
        loss(f"binary_cross_entropy/{red}", "binary_cross_entropy",
             {"input": probabilities(*S), "target": probabilities(*S)},
             lambda x, t, red=red: F.binary_cross_entropy(x, t, reduction=red), {"reduction": red}, both)
    loss("binary_cross_entropy/weight", "binary_cross_entropy",
         {"input": probabilities(*S), "target": probabilities(*S), "weight": lambda r: r.uniform(0.2, 2.0, 5)},
         lambda x, t, w: F.binary_cross_entropy(x, t, weight=w), {"reduction": "mean"}, both)
    # saturated probabilities: the input gradient is PyTorch's (x − y)/max(x(1 − x), 1e-12)
    loss("binary_cross_entropy/saturated", "binary_cross_entropy",
         {"input": fixed([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1e-13]), "target": fixed([0.0, 1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 1.0])},
         lambda x, t: F.binary_cross_entropy(x, t, reduction="none"), {"reduction": "none"})
    for red in REDUCTIONS:
        loss(f"binary_cross_entropy_with_logits/{red}", "binary_cross_entropy_with_logits",
             {"input": lambda r: 3 * r.normal(*S), "target": probabilities(*S)},
             lambda x, t, red=red: F.binary_cross_entropy_with_logits(x, t, reduction=red), {"reduction": red}, both)
    loss("binary_cross_entropy_with_logits/weights", "binary_cross_entropy_with_logits",
         {"input": lambda r: 3 * r.normal(*S), "target": probabilities(*S),
          "weight": lambda r: r.uniform(0.2, 2.0, 3, 1), "pos_weight": lambda r: r.uniform(0.2, 3.0, 5)},
         lambda x, t, w, p: F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=p),
         {"reduction": "mean"}, both)
    with_zeros = lambda r: torch.softmax(r.normal(4, 5), -1) * (r.uniform(0, 1, 4, 5) > 0.3)
    # PyTorch's target gradient is NaN where the target is 0: there only the input's
    for red in REDUCTIONS:
        loss(f"kl_div/zeros_{red}", "kl_div", {"input": log_probs, "target": with_zeros},
             lambda x, t, red=red: F.kl_div(x, t, reduction=red), {"reduction": red, "log_target": False})
    loss("kl_div/positive", "kl_div", {"input": log_probs, "target": lambda r: torch.softmax(r.normal(4, 5), -1)},
         lambda x, t: F.kl_div(x, t, reduction="sum"), {"reduction": "sum", "log_target": False},
         ("input", "target"))
    loss("kl_div/log_target", "kl_div", {"input": log_probs, "target": log_probs},
         lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True), {"reduction": "sum", "log_target": True},
         ("input", "target"))


def one_hot():
    case = lambda name, t, classes: LOSSES.append(
        {"name": name, "loss": "one_hot", "attrs": {"classes": classes}, "inputs": enc_all({"target": t}),
         "outputs": enc_all({"y": F.one_hot(t, classes).double().reshape(-1, classes)}), "cotangents": {}, "grads": {}})
    case("one_hot", ints([3, 0, 2, 2, 4]), 5)


def margin_losses():
    # scores on the 1/2 grid with margin 1: hinges exactly at 0
    scores = grid(4, 5)
    labels = ints([3, 0, 2, 2])
    for red in REDUCTIONS:
        loss(f"multi_margin_loss/{red}", "multi_margin_loss", {"input": scores, "target": labels},
             lambda x, t, red=red: F.multi_margin_loss(x, t, reduction=red), {"reduction": red, "p": 1, "margin": 1.0})
    loss("multi_margin_loss/p2_weight", "multi_margin_loss",
         {"input": scores, "target": labels, "weight": lambda r: r.uniform(0.2, 2.0, 5)},
         lambda x, t, w: F.multi_margin_loss(x, t, p=2, margin=0.5, weight=w), {"reduction": "mean", "p": 2, "margin": 0.5})
    loss("multi_margin_loss/one_sample", "multi_margin_loss", {"input": grid(5), "target": ints(1)},
         lambda x, t: F.multi_margin_loss(x, t), {"reduction": "mean", "p": 1, "margin": 1.0})
    pm1 = lambda r: torch.where(r.uniform(0, 1, 4, 5) < 0.5, -1.0, 1.0)
    for red in REDUCTIONS:
        loss(f"margin_ranking_loss/{red}", "margin_ranking_loss", {"x1": grid(4, 5), "x2": grid(4, 5), "y": pm1},
             lambda a, b, y, red=red: F.margin_ranking_loss(a, b, y, margin=0.5, reduction=red),
             {"reduction": red, "margin": 0.5}, ("x1", "x2"))
        loss(f"hinge_embedding_loss/{red}", "hinge_embedding_loss", {"input": grid(4, 5), "target": pm1},
             lambda x, y, red=red: F.hinge_embedding_loss(x, y, margin=1.0, reduction=red),
             {"reduction": red, "margin": 1.0})
    trio = {"anchor": normal(4, 5), "positive": normal(4, 5), "negative": normal(4, 5)}
    for p, swap, red in [(2.0, False, "mean"), (1.0, True, "none"), (3.0, False, "sum")]:
        loss(f"triplet_margin_loss/p{p}_swap{int(swap)}_{red}", "triplet_margin_loss", trio,
             lambda a, po, n, p=p, swap=swap, red=red: F.triplet_margin_loss(a, po, n, margin=1.5, p=p, eps=1e-6, swap=swap, reduction=red),
             {"reduction": red, "margin": 1.5, "p": p, "eps": 1e-6, "swap": swap}, ("anchor", "positive", "negative"))


def embedding_losses():
    pair = ("x1", "x2")
    for p in [1.0, 2.0, 3.0, "inf"]:
        pv = math.inf if p == "inf" else p
        loss(f"pairwise_distance/p{p}", "pairwise_distance", {"x1": normal(4, 5), "x2": normal(4, 5)},
             lambda a, b, pv=pv: F.pairwise_distance(a, b, p=pv, eps=1e-6), {"p": p, "eps": 1e-6, "keepdim": False}, pair)
    loss("pairwise_distance/keepdim_broadcast", "pairwise_distance", {"x1": normal(4, 5), "x2": normal(5)},
         lambda a, b: F.pairwise_distance(a, b, p=2.0, eps=1e-3, keepdim=True), {"p": 2.0, "eps": 1e-3, "keepdim": True}, pair)
    loss("cosine_similarity/dim1", "cosine_similarity", {"x1": normal(4, 5), "x2": normal(4, 5)},
         lambda a, b: F.cosine_similarity(a, b, 1, 1e-8), {"dim": 1, "eps": 1e-8}, pair)
    loss("cosine_similarity/dim0_broadcast", "cosine_similarity", {"x1": normal(3, 4), "x2": normal(3, 1)},
         lambda a, b: F.cosine_similarity(a, b, 0, 1e-8), {"dim": 0, "eps": 1e-8}, pair)
    ys = ints([1, -1, -1, 1]).double()
    for red in REDUCTIONS:
        loss(f"cosine_embedding_loss/{red}", "cosine_embedding_loss", {"x1": normal(4, 5), "x2": normal(4, 5), "y": ys},
             lambda a, b, y, red=red: F.cosine_embedding_loss(a, b, y, margin=-0.2, reduction=red),
             {"reduction": red, "margin": -0.2}, pair)
    loss("cosine_embedding_loss/one_pair", "cosine_embedding_loss", {"x1": normal(5), "x2": normal(5), "y": fixed(-1.0)},
         lambda a, b, y: F.cosine_embedding_loss(a, b, y, margin=-0.5), {"reduction": "mean", "margin": -0.5}, pair)


def cases():
    for family in [regression_losses, classification_losses, one_hot, margin_losses, embedding_losses]:
        family()
    return LOSSES

"""Shared by the golden-file generators (see generate.py): encoding, seeded inputs, and the
vector-Jacobian products every case stores."""

import json
import math
import os
import warnings
import zlib

import torch

torch.set_default_dtype(torch.float64)
# kl_div's reduction='mean' is what graphgrad's Mean is (the mean over all elements)
warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
# One thread: reductions then add in one order, run after run.
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
FORMAT = 1

# ---------------------------------------------------------------------------------------------
# Encoding


def enc(t):
    """A tensor as {"shape", "data"} (floats) or {"shape", "dtype": "i64", "data"} (integers)."""
    t = torch.as_tensor(t).detach()
    shape = list(t.shape)
    if t.dtype == torch.bool:
        t = t.to(torch.float64)
    if t.dtype.is_floating_point:
        data = [float(v) for v in t.to(torch.float64).reshape(-1).tolist()]
        for v in data:
            if not math.isfinite(v):
                raise ValueError(f"non-finite value {v} cannot be stored in JSON")
        return {"shape": shape, "data": data}
    return {"shape": shape, "dtype": "i64", "data": [int(v) for v in t.reshape(-1).tolist()]}


def enc_all(tensors):
    """{name: tensor} encoded."""
    return {k: enc(v) for k, v in tensors.items()}


def write(family, cases):
    """Writes golden/{family}.json: a header and the cases, one per line."""
    names = [c["name"] for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{family}: duplicate case names {dupes}")
    os.makedirs(GOLDEN, exist_ok=True)
    path = os.path.join(GOLDEN, f"{family}.json")
    header = {"format": FORMAT, "family": family, "torch": torch.__version__.split("+")[0]}
    head = json.dumps(header, allow_nan=False)[:-1]
    # one case per line, so a regenerated file diffs case by case
    body = ",\n".join(json.dumps(c, allow_nan=False, separators=(",", ":")) for c in cases)
    with open(path, "w") as f:
        f.write(f'{head}, "cases": [\n{body}\n]}}\n')
    print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


# ---------------------------------------------------------------------------------------------
# Inputs


def short(t):
    """Rounded to 3 decimals: the files stay small, and the values are still random."""
    return torch.round(t * 1000) / 1000


class Rng:
    """A generator seeded from the case name, so adding a case changes no other case. Its
    values have 3 decimals (see `short`)."""

    def __init__(self, name):
        self.g = torch.Generator().manual_seed(zlib.crc32(name.encode()))

    def normal(self, *shape):
        return short(torch.randn(shape, generator=self.g))

    def uniform(self, lo, hi, *shape):
        return short(lo + (hi - lo) * torch.rand(shape, generator=self.g))

    def positive(self, *shape):
        """In [0.3, 2): for log, sqrt, reciprocals and bases of powers."""
        return self.uniform(0.3, 2.0, *shape)

    def away(self, *shape):
        """±[0.5, 2): away from 0, for denominators."""
        sign = torch.where(torch.rand(shape, generator=self.g) < 0.5, -1.0, 1.0)
        return sign * self.uniform(0.5, 2.0, *shape)

    def grid(self, *shape, half_width=2):
        """Multiples of 1/2 in [-half_width, half_width]: zeros, ties and values on bounds."""
        steps = 4 * half_width + 1
        return torch.randint(0, steps, shape, generator=self.g).to(torch.float64) / 2 - half_width

    def ints(self, high, *shape):
        return torch.randint(0, high, shape, generator=self.g)


def outputs_of(result):
    """A function's result as named outputs: y, or y0, y1, ... for a tuple or list."""
    if isinstance(result, dict):
        return result
    if isinstance(result, (tuple, list)):
        return {f"y{i}": r for i, r in enumerate(result)}
    return {"y": result}


def vjp(outputs, wrt, rng):
    """Cotangents for the float outputs, and the gradients of Σ output·cotangent w.r.t. wrt."""
    cot = {k: rng.normal(*v.shape) for k, v in outputs.items() if v.dtype.is_floating_point}
    diff = [(k, v) for k, v in outputs.items() if k in cot and v.requires_grad]
    if not wrt or not diff:
        return cot, {}
    grads = torch.autograd.grad(
        [v for _, v in diff],
        list(wrt.values()),
        grad_outputs=[cot[k] for k, _ in diff],
        allow_unused=True,
    )
    return cot, {
        k: (g if g is not None else torch.zeros_like(v)) for (k, v), g in zip(wrt.items(), grads)
    }


# ---------------------------------------------------------------------------------------------
# Input makers: functions of a case's Rng

S = (2, 3, 5)  # the awkward default shape


def normal(*shape):
    return lambda r: r.normal(*shape)


def positive(*shape):
    return lambda r: r.positive(*shape)


def away(*shape):
    return lambda r: r.away(*shape)


def grid(*shape, half_width=2):
    return lambda r: r.grid(*shape, half_width=half_width)


def fixed(values, shape=None):
    t = torch.tensor(values)
    return t.reshape(shape) if shape is not None else t


def ints(values, shape=None):
    t = torch.tensor(values, dtype=torch.int64)
    return t.reshape(shape) if shape is not None else t


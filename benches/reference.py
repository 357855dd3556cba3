#!/usr/bin/env python3
"""Reference figures for the workloads of shared/bench/WORKLOADS.md in numpy, PyTorch (eager and
torch.compile) and JAX (jit), printed as the same JSON lines as `cargo bench --bench workloads`.

    pip install numpy torch jax
    python3 benches/reference.py            # every workload
    python3 benches/reference.py W1 W5      # workloads whose id starts with W1 or W5
    python3 benches/reference.py T          # the function transforms (T1-T3, benches/func.rs)

Runs on 2 threads like the Rust harness (set before the libraries load).
"""
import json
import os
import resource
import sys
import time

THREADS = "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS)
# Inductor compiles in a pool of worker processes that stay alive and compete for the 2 cores.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2")

import numpy as np  # noqa: E402


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# Timed repetitions of one training step (the same count in workloads.rs), and of one W9
# forward (the same count in inference.rs).
STEP_REPS = 100
INFER_REPS = 2000


def timed(fn, reps):
    for _ in range(3):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[0]


def report(workload, framework, param, median, minimum, throughput, unit):
    print(json.dumps({
        "workload": workload, "framework": framework, "param": param,
        "median_s": median, "min_s": minimum, "throughput": throughput,
        "unit": unit, "peak_rss_mb": peak_rss_mb(),
    }), flush=True)


def try_import(name):
    try:
        return __import__(name)
    except ImportError:
        print(f"# {name} is not installed: skipping it", file=sys.stderr)
        return None


torch = try_import("torch")
jax = try_import("jax")
if torch is not None:
    torch.set_num_threads(int(THREADS))


def w1():
    for n in (128, 256, 512, 1024, 2048):
        reps = 5 if n >= 1024 else 20
        for dtype, workload in ((np.float32, "W1-sgemm"), (np.float64, "W1-dgemm")):
            a = np.random.rand(n, n).astype(dtype)
            b = np.random.rand(n, n).astype(dtype)
            med, mn = timed(lambda: a @ b, reps)
            report(workload, "numpy", f"n{n}", med, mn, 2 * n**3 / med / 1e9, "GFLOP/s")
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                med, mn = timed(lambda: ta @ tb, reps)
                report(workload, "torch-eager", f"n{n}", med, mn, 2 * n**3 / med / 1e9, "GFLOP/s")


def w5():
    ops = 1000
    if torch is not None:
        x = torch.full((16,), 0.5, requires_grad=True)

        def step():
            y = x
            for i in range(ops):
                y = y * 1.0001 if i % 3 == 0 else (y + 0.0001 if i % 3 == 1 else torch.tanh(y))
            y.sum().backward()
            x.grad = None

        med, mn = timed(step, 20)
        report("W5-autograd-overhead", "torch-eager", "n16", med, mn, med / ops * 1e6, "us/op")
    if jax is not None:
        import jax.numpy as jnp

        def f(x):
            y = x
            for i in range(ops):
                y = y * 1.0001 if i % 3 == 0 else (y + 0.0001 if i % 3 == 1 else jnp.tanh(y))
            return y.sum()

        g = jax.jit(jax.grad(f))
        x = jnp.full((16,), 0.5, dtype=jnp.float32)
        med, mn = timed(lambda: g(x).block_until_ready(), 20)
        report("W5-autograd-overhead", "jax-jit", "n16", med, mn, med / ops * 1e6, "us/op")


def gelu_parts(lib_tanh, x):
    return 0.5 * x * (1 + lib_tanh(0.79788456 * (x + 0.044715 * x * x * x)))


def w6():
    n = 4_194_304
    if torch is not None:
        x = torch.randn(n, requires_grad=True)

        def eager():
            gelu_parts(torch.tanh, x).sum().backward()
            x.grad = None

        med, mn = timed(eager, 10)
        report("W6-fusion", "torch-eager", f"n{n}", med, mn, med * 1e3, "ms/step")
        try:
            compiled_f = torch.compile(lambda x: gelu_parts(torch.tanh, x).sum())

            def compiled():
                compiled_f(x).backward()
                x.grad = None

            med, mn = timed(compiled, 10)
            report("W6-fusion", "torch-compile", f"n{n}", med, mn, med * 1e3, "ms/step")
        except Exception as e:  # torch.compile needs a C++ toolchain; report and go on
            print(f"# torch.compile failed: {e}", file=sys.stderr)
    if jax is not None:
        import jax.numpy as jnp
        g = jax.jit(jax.grad(lambda x: gelu_parts(jnp.tanh, x).sum()))
        x = jax.random.normal(jax.random.PRNGKey(0), (n,), dtype=jnp.float32)
        med, mn = timed(lambda: g(x).block_until_ready(), 10)
        report("W6-fusion", "jax-jit", f"n{n}", med, mn, med * 1e3, "ms/step")


# ---- W2-W4, W7, W8: training steps (forward, loss, backward, update) on fixed random data ----
# The models, shapes and optimisers match benches/training.rs and benches/sequence.rs: W2 SGD
# momentum 0.9 lr 0.01; W3 plain SGD lr 0.01; W4 one pre-LN encoder layer (no dropout, exact
# GELU, no positional encoding, no final norm, no mask) between a token embedding and a head
# over 64 tokens, Adam lr 1e-3; W7 an LSTM whose last output feeds the head, Adam lr 1e-3; W8
# 4 such layers with a causal mask after token and learned positional embeddings, a final
# LayerNorm, AdamW lr 3e-4 weight decay 0.1 (betas 0.9/0.999, eps 1e-8 throughout).
# torch.compile compiles the model (forward and backward); the optimiser step stays eager. JAX
# jits the whole step, with the optimiser written out (no optax).

def torch_train_step(model, opt, x, y):
    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def report_torch_steps(workload, batch, reps, build):
    """Times the eager model, then torch.compile of the same model where it works."""
    for framework in ("torch-eager", "torch-compile"):
        try:
            model, opt, x, y = build()
            if framework == "torch-compile":
                model = torch.compile(model)
            step = torch_train_step(model, opt, x, y)
            for _ in range(3):  # compiles, or allocates optimiser state, before timing
                step()
            med, mn = timed(step, reps)
            report(workload, framework, f"b{batch}", med, mn, 1 / med, "steps/s")
        except Exception as e:  # torch.compile needs a C++ toolchain; report and go on
            print(f"# {workload} {framework} failed: {e}", file=sys.stderr)


def report_jax_steps(workload, batch, reps, step, state):
    """Times a jitted step `state -> state` (compiled in the warm-up)."""
    holder = [jax.block_until_ready(step(*state))]

    def run():
        holder[0] = jax.block_until_ready(step(*holder[0]))

    med, mn = timed(run, reps)
    report(workload, "jax-jit", f"b{batch}", med, mn, 1 / med, "steps/s")


def jax_cross_entropy(logits, y):
    import jax.numpy as jnp
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


def jax_uniform(key, shape, fan_in):
    bound = 1 / fan_in**0.5
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound, dtype=np.float32)


def jax_sgd_step(loss_fn, lr, momentum):
    """A jitted SGD step (PyTorch's formula: b = μ·b + g, p = p − lr·b; b starts at g)."""
    @jax.jit
    def step(params, buf, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        buf = jax.tree_util.tree_map(lambda b, g: momentum * b + g, buf, grads)
        params = jax.tree_util.tree_map(lambda p, b: p - lr * b, params, buf)
        return params, buf, x, y
    return step


def jax_adam_step(loss_fn, lr, weight_decay=0.0):
    """A jitted Adam step, or AdamW's with weight_decay (PyTorch's formulas: betas 0.9, 0.999,
    eps 1e-8, bias-corrected, decay p -= lr·wd·p); its state is jax_adam_state's."""
    import jax.numpy as jnp
    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(p, m, v, t, x, y):
        g = jax.grad(loss_fn)(p, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t
        p = jax.tree_util.tree_map(
            lambda p, m, v: p * (1 - lr * weight_decay) - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), p, m, v)
        return p, m, v, t, x, y
    return step


def jax_adam_state(params, x, y):
    import jax.numpy as jnp
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return params, zeros, zeros, jnp.float32(0), jnp.asarray(x), jnp.asarray(y)


def torch_mlp():
    """The W2 and W9 network: 784→512→512→10 with ReLU."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def jax_mlp_params(key):
    keys = jax.random.split(key, 6)
    sizes = [(784, 512), (512, 512), (512, 10)]
    return [(jax_uniform(keys[2 * i], (o, i_), i_), jax_uniform(keys[2 * i + 1], (o,), i_))
            for i, (i_, o) in enumerate(sizes)]


def jax_mlp(params, x):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def w2():
    batch = 128
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((batch, 784), dtype=np.float32)
    y_np = rng.integers(0, 10, batch)
    if torch is not None:
        def build():
            torch.manual_seed(2)
            model = torch_mlp()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            return model, opt, torch.from_numpy(x_np), torch.from_numpy(y_np)
        report_torch_steps("W2-mlp-train", batch, STEP_REPS, build)
    if jax is not None:
        import jax.numpy as jnp
        params = jax_mlp_params(jax.random.PRNGKey(2))
        loss_fn = lambda params, x, y: jax_cross_entropy(jax_mlp(params, x), y)
        # The first step's buffer is g (PyTorch); starting at 0 changes no cost.
        buf = jax.tree_util.tree_map(jnp.zeros_like, params)
        step = jax_sgd_step(loss_fn, 0.01, 0.9)
        report_jax_steps("W2-mlp-train", batch, STEP_REPS, step, (params, buf, jnp.asarray(x_np), jnp.asarray(y_np)))


def w3():
    batch = 32
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    y_np = rng.integers(0, 10, batch)
    if torch is not None:
        def build():
            torch.manual_seed(3)
            nn = torch.nn
            model = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            return model, opt, torch.from_numpy(x_np), torch.from_numpy(y_np)
        report_torch_steps("W3-cnn-train", batch, STEP_REPS, build)
    if jax is not None:
        import jax.numpy as jnp
        k = jax.random.split(jax.random.PRNGKey(3), 6)
        params = {
            "c1w": jax_uniform(k[0], (16, 1, 3, 3), 9), "c1b": jax_uniform(k[1], (16,), 9),
            "c2w": jax_uniform(k[2], (32, 16, 3, 3), 144), "c2b": jax_uniform(k[3], (32,), 144),
            "fw": jax_uniform(k[4], (10, 1568), 1568), "fb": jax_uniform(k[5], (10,), 1568),
        }

        def conv_relu_pool(h, w, b):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            h = jax.nn.relu(h + b[None, :, None, None])
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

        def loss_fn(p, x, y):
            h = conv_relu_pool(x, p["c1w"], p["c1b"])
            h = conv_relu_pool(h, p["c2w"], p["c2b"])
            h = h.reshape(h.shape[0], -1)
            return jax_cross_entropy(h @ p["fw"].T + p["fb"], y)

        buf = jax.tree_util.tree_map(jnp.zeros_like, params)
        step = jax_sgd_step(loss_fn, 0.01, 0.0)
        report_jax_steps("W3-cnn-train", batch, STEP_REPS, step, (params, buf, jnp.asarray(x_np), jnp.asarray(y_np)))


def jax_layer_norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jax.numpy.sqrt(var + 1e-5) * w + b


def jax_encoder_params(key, d, ff):
    """One pre-LN encoder layer's parameters, as PyTorch's TransformerEncoderLayer has them."""
    k = jax.random.split(key, 6)
    ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
    return {
        "ln1w": ones, "ln1b": zeros, "ln2w": ones, "ln2b": zeros,
        "in_w": jax_uniform(k[0], (3 * d, d), d), "in_b": np.zeros(3 * d, np.float32),
        "out_w": jax_uniform(k[1], (d, d), d), "out_b": zeros,
        "l1w": jax_uniform(k[2], (ff, d), d), "l1b": jax_uniform(k[3], (ff,), d),
        "l2w": jax_uniform(k[4], (d, ff), ff), "l2b": jax_uniform(k[5], (d,), ff),
    }


def jax_encoder_layer(p, x, heads, causal=False):
    """x + attention(LN(x)), then + FFN(LN(·)) with exact GELU, on x of [batch, seq, d]."""
    import jax.numpy as jnp
    batch, seq, d = x.shape
    h = jax_layer_norm(x, p["ln1w"], p["ln1b"])
    q, kk, v = jnp.split(h @ p["in_w"].T + p["in_b"], 3, axis=-1)
    split = lambda t: t.reshape(batch, seq, heads, d // heads).transpose(0, 2, 1, 3)
    q, kk, v = split(q) / (d // heads) ** 0.5, split(kk), split(v)
    scores = q @ kk.transpose(0, 1, 3, 2)
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((seq, seq), bool)), scores, -jnp.inf)
    ctx = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, d)
    x = x + ctx @ p["out_w"].T + p["out_b"]
    h = jax_layer_norm(x, p["ln2w"], p["ln2b"])
    h = jax.nn.gelu(h @ p["l1w"].T + p["l1b"], approximate=False)
    return x + h @ p["l2w"].T + p["l2b"]


def w4():
    batch, seq, d, heads, ff, vocab = 16, 64, 128, 4, 512, 64
    rng = np.random.default_rng(4)
    tokens_np = rng.integers(0, vocab, (batch, seq))
    targets_np = rng.integers(0, vocab, batch * seq)
    if torch is not None:
        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(vocab, d)
                self.layer = torch.nn.TransformerEncoderLayer(
                    d, heads, dim_feedforward=ff, dropout=0.0, activation="gelu",
                    batch_first=True, norm_first=True)
                self.head = torch.nn.Linear(d, vocab)

            def forward(self, tokens):
                return self.head(self.layer(self.embedding(tokens))).reshape(-1, vocab)

        def build():
            torch.manual_seed(4)
            model = Model()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            return model, opt, torch.from_numpy(tokens_np), torch.from_numpy(targets_np)
        report_torch_steps("W4-transformer-train", batch, STEP_REPS, build)
    if jax is not None:
        k = jax.random.split(jax.random.PRNGKey(4), 3)
        params = {"emb": jax.random.normal(k[0], (vocab, d), dtype=np.float32),
                  "layer": jax_encoder_params(k[1], d, ff),
                  "hw": jax_uniform(k[2], (vocab, d), d), "hb": np.zeros(vocab, np.float32)}

        def loss_fn(p, tokens, y):
            x = jax_encoder_layer(p["layer"], p["emb"][tokens], heads)
            return jax_cross_entropy((x @ p["hw"].T + p["hb"]).reshape(-1, vocab), y)

        state = jax_adam_state(params, tokens_np, targets_np)
        report_jax_steps("W4-transformer-train", batch, STEP_REPS, jax_adam_step(loss_fn, 1e-3), state)


def w7():
    batch, seq, features, hidden = 32, 64, 16, 128
    rng = np.random.default_rng(7)
    x_np = rng.standard_normal((batch, seq, features), dtype=np.float32)
    y_np = rng.integers(0, 10, batch)
    if torch is not None:
        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(features, hidden, batch_first=True)
                self.head = torch.nn.Linear(hidden, 10)

            def forward(self, x):
                return self.head(self.lstm(x)[0][:, -1])

        def build():
            torch.manual_seed(7)
            model = Model()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            return model, opt, torch.from_numpy(x_np), torch.from_numpy(y_np)
        # torch.compile graph-breaks at nn.LSTM, which so runs eagerly (its experimental
        # allow_rnn fails on CPU in torch 2.15): what a user gets from torch.compile(model).
        report_torch_steps("W7-lstm-train", batch, STEP_REPS, build)
    if jax is not None:
        import jax.numpy as jnp
        k = jax.random.split(jax.random.PRNGKey(7), 6)
        params = {
            "wih": jax_uniform(k[0], (4 * hidden, features), hidden), "bih": jax_uniform(k[1], (4 * hidden,), hidden),
            "whh": jax_uniform(k[2], (4 * hidden, hidden), hidden), "bhh": jax_uniform(k[3], (4 * hidden,), hidden),
            "hw": jax_uniform(k[4], (10, hidden), hidden), "hb": jax_uniform(k[5], (10,), hidden),
        }

        def loss_fn(p, x, y):
            def cell(carry, xt):  # PyTorch's gate order: input, forget, cell, output
                h, c = carry
                i, f, g, o = jnp.split(xt @ p["wih"].T + p["bih"] + h @ p["whh"].T + p["bhh"], 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

            zeros = jnp.zeros((batch, hidden), np.float32)
            (h, _), _ = jax.lax.scan(cell, (zeros, zeros), x.transpose(1, 0, 2))
            return jax_cross_entropy(h @ p["hw"].T + p["hb"], y)

        state = jax_adam_state(params, x_np, y_np)
        report_jax_steps("W7-lstm-train", batch, STEP_REPS, jax_adam_step(loss_fn, 1e-3), state)


def w8():
    batch, seq, vocab, d, heads, ff, layers = 8, 128, 96, 256, 4, 1024, 4
    rng = np.random.default_rng(8)
    tokens_np = rng.integers(0, vocab, (batch, seq))
    targets_np = rng.integers(0, vocab, batch * seq)
    if torch is not None:
        nn = torch.nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.tokens = nn.Embedding(vocab, d)
                self.positions = nn.Embedding(seq, d)
                layer = nn.TransformerEncoderLayer(
                    d, heads, dim_feedforward=ff, dropout=0.0, activation="gelu",
                    batch_first=True, norm_first=True)
                self.blocks = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
                self.head = nn.Linear(d, vocab)
                self.register_buffer("position_ids", torch.arange(seq))
                self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))

            def forward(self, tokens):
                x = self.tokens(tokens) + self.positions(self.position_ids)
                return self.head(self.blocks(x, mask=self.mask, is_causal=True)).reshape(-1, vocab)

        def build():
            torch.manual_seed(8)
            model = Model()
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
            return model, opt, torch.from_numpy(tokens_np), torch.from_numpy(targets_np)
        report_torch_steps("W8-gpt-train", batch, STEP_REPS, build)
    if jax is not None:
        k = jax.random.split(jax.random.PRNGKey(8), 3 + layers)
        params = {"tokens": jax.random.normal(k[0], (vocab, d), dtype=np.float32),
                  "positions": jax.random.normal(k[1], (seq, d), dtype=np.float32),
                  "blocks": [jax_encoder_params(key, d, ff) for key in k[3:]],
                  "lnw": np.ones(d, np.float32), "lnb": np.zeros(d, np.float32),
                  "hw": jax_uniform(k[2], (vocab, d), d), "hb": np.zeros(vocab, np.float32)}

        def loss_fn(p, tokens, y):
            x = p["tokens"][tokens] + p["positions"]
            for block in p["blocks"]:
                x = jax_encoder_layer(block, x, heads, causal=True)
            x = jax_layer_norm(x, p["lnw"], p["lnb"])
            return jax_cross_entropy((x @ p["hw"].T + p["hb"]).reshape(-1, vocab), y)

        state = jax_adam_state(params, tokens_np, targets_np)
        report_jax_steps("W8-gpt-train", batch, STEP_REPS, jax_adam_step(loss_fn, 3e-4, 0.1), state)


def w9():
    """W2's network, forward only without gradients, on one sample (benches/inference.rs)."""
    rng = np.random.default_rng(9)
    x_np = rng.standard_normal((1, 784), dtype=np.float32)
    if torch is not None:
        torch.manual_seed(9)
        model = torch_mlp().eval()
        x = torch.from_numpy(x_np)
        for framework, forward in (("torch-eager", model), ("torch-compile", torch.compile(model))):
            try:
                with torch.no_grad():
                    med, mn = timed(lambda: forward(x), INFER_REPS)
                report("W9-mlp-infer", framework, "b1", med, mn, med * 1e6, "us/forward")
            except Exception as e:  # torch.compile needs a C++ toolchain; report and go on
                print(f"# W9-mlp-infer {framework} failed: {e}", file=sys.stderr)
    if jax is not None:
        params = jax_mlp_params(jax.random.PRNGKey(9))
        forward = jax.jit(jax_mlp)
        x = jax.numpy.asarray(x_np)
        med, mn = timed(lambda: forward(params, x).block_until_ready(), INFER_REPS)
        report("W9-mlp-infer", "jax-jit", "b1", med, mn, med * 1e6, "us/forward")

# ---- function transforms (benches/func.rs): W2's network, batch 128, weights [in, out] ----

TRANSFORM_REPS = 20


def w2_transform_data():
    rng = np.random.default_rng(2)
    params = []
    for i, o in ((784, 512), (512, 512), (512, 10)):
        bound = 1 / np.sqrt(i)
        params.append(rng.uniform(-bound, bound, (i, o)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, (o,)).astype(np.float32))
    x = rng.standard_normal((128, 784), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    tangents = [rng.standard_normal(p.shape, dtype=np.float32) for p in params]
    return params, x, y, tangents


def transforms():
    params_np, x_np, y_np, tangents_np = w2_transform_data()

    def timed_report(workload, param, framework, fn):
        med, mn = timed(fn, TRANSFORM_REPS)
        report(workload, framework, param, med, mn, 1 / med, "calls/s")

    if torch is not None:
        from torch.func import grad, jvp, vmap
        f = torch.nn.functional
        params = tuple(torch.from_numpy(p) for p in params_np)
        tangents = tuple(torch.from_numpy(t) for t in tangents_np)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def logits(p, x):
            h = torch.relu(x @ p[0] + p[1])
            h = torch.relu(h @ p[2] + p[3])
            return h @ p[4] + p[5]

        def sample_loss(p, xb, yb):
            return f.cross_entropy(logits(p, xb[None]), yb[None], reduction="sum")

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
        timed_report("T1-per-sample-grads", "vmap-b128", "torch-eager", lambda: per_sample(params, x, y))
        leaves = tuple(p.clone().requires_grad_() for p in params)

        def loop():
            for b in range(128):
                torch.autograd.grad(f.cross_entropy(logits(leaves, x[b:b + 1]), y[b:b + 1], reduction="sum"), leaves)
        timed_report("T1-per-sample-grads", "loop-b128", "torch-eager", loop)

        def batch_loss(p):
            return f.cross_entropy(logits(p, x), y)
        timed_report("T1-per-sample-grads", "batched-b128", "torch-eager",
                     lambda: torch.autograd.grad(batch_loss(leaves), leaves))

        def hvp():
            return jvp(lambda *p: grad(lambda q: batch_loss(q))(p), params, tangents)
        timed_report("T2-hvp", "hvp-b128", "torch-eager", hvp)
        timed_report("T2-hvp", "grad-b128", "torch-eager", lambda: torch.autograd.grad(batch_loss(leaves), leaves))
        with torch.no_grad():
            timed_report("T3-jvp", "jvp-b128", "torch-eager", lambda: jvp(lambda *p: logits(p, x), params, tangents))
            timed_report("T3-jvp", "forward-b128", "torch-eager", lambda: logits(params, x))
    if jax is not None:
        import jax.numpy as jnp
        params = tuple(jnp.asarray(p) for p in params_np)
        tangents = tuple(jnp.asarray(t) for t in tangents_np)
        x, y = jnp.asarray(x_np), jnp.asarray(y_np)

        def logits(p, x):
            h = jax.nn.relu(x @ p[0] + p[1])
            h = jax.nn.relu(h @ p[2] + p[3])
            return h @ p[4] + p[5]

        def sample_loss(p, xb, yb):
            return jax_cross_entropy(logits(p, xb[None]), yb[None])

        def batch_loss(p):
            return jax_cross_entropy(logits(p, x), y)

        def ready(fn):
            return lambda: jax.block_until_ready(fn())

        per_sample = jax.jit(jax.vmap(jax.grad(sample_loss), in_axes=(None, 0, 0)))
        timed_report("T1-per-sample-grads", "vmap-b128", "jax-jit", ready(lambda: per_sample(params, x, y)))
        single = jax.jit(jax.grad(sample_loss))

        def loop():
            out = None
            for b in range(128):
                out = single(params, x[b], y[b])
            return out
        timed_report("T1-per-sample-grads", "loop-b128", "jax-jit", ready(loop))
        batched = jax.jit(jax.grad(batch_loss))
        timed_report("T1-per-sample-grads", "batched-b128", "jax-jit", ready(lambda: batched(params)))
        hvp = jax.jit(lambda p, t: jax.jvp(jax.grad(batch_loss), (p,), (t,))[1])
        timed_report("T2-hvp", "hvp-b128", "jax-jit", ready(lambda: hvp(params, tangents)))
        timed_report("T2-hvp", "grad-b128", "jax-jit", ready(lambda: batched(params)))
        jvp = jax.jit(lambda p, t: jax.jvp(lambda q: logits(q, x), (p,), (t,)))
        forward = jax.jit(lambda p: logits(p, x))
        timed_report("T3-jvp", "jvp-b128", "jax-jit", ready(lambda: jvp(params, tangents)))
        timed_report("T3-jvp", "forward-b128", "jax-jit", ready(lambda: forward(params)))


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7, "W8": w8, "W9": w9,
             "T": transforms}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(WORKLOADS)
    for key, run in WORKLOADS.items():
        if any(key.startswith(w) or w.startswith(key) for w in wanted):
            run()

#!/usr/bin/env python3
"""Reference figures for the workloads of shared/bench/WORKLOADS.md in numpy, PyTorch (eager and
torch.compile) and JAX (jit), printed as the same JSON lines as `cargo bench --bench workloads`.

    pip install numpy torch jax
    python3 benches/reference.py            # every workload
    python3 benches/reference.py W1 W5      # workloads whose id starts with W1 or W5

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
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2")

import numpy as np  # noqa: E402


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def timed(fn, reps):
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


WORKLOADS = {"W1": w1, "W5": w5, "W6": w6}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(WORKLOADS)
    for key, run in WORKLOADS.items():
        if any(key.startswith(w) or w.startswith(key) for w in wanted):
            run()

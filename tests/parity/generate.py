#!/usr/bin/env python3
"""Writes the golden files of graphgrad's PyTorch parity suite (tests/parity.rs).

Run it with a Python that has PyTorch (CPU is enough):

    python tests/parity/generate.py

It writes one JSON file per family into tests/parity/golden/: ops.json (every differentiable
Tensor op, and the comparisons), losses.json, layers.json (each layer loaded by PyTorch's own
state-dict key names), optimisers.json (trajectories) and schedules.json (learning-rate
sequences). Everything is float64 and seeded, so a rerun with the same PyTorch writes the same
files. Each case holds its inputs, its outputs, a random cotangent for each float output, and
the gradients of sum(output * cotangent) with respect to every differentiated input (and
parameter). Integer inputs (class labels, indices) are stored as integers.

The cases are in ops_cases.py, loss_cases.py, layer_cases.py and optim_cases.py (common.py
holds what they share). The Rust test reads the files with serde_json and needs no Python. A
case the Rust side does not know is a failure there, so a case added here must be handled in
tests/parity/*.rs too.

Inputs are small and awkward (2x3x5, odd sizes); ops with kinks (relu and abs at 0, clamp at
its bounds, max with ties) get inputs exactly at the kink, on a grid of multiples of 1/2, so
PyTorch's convention there is the reference.
"""

import layer_cases
import loss_cases
import ops_cases
import optim_cases
from common import write


def main():
    write("ops", ops_cases.cases())
    write("losses", loss_cases.cases())
    write("layers", layer_cases.cases())
    write("optimisers", optim_cases.optimiser_cases())
    write("schedules", optim_cases.schedule_cases())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The worked example of docs/own-tasks.md: a task family of damped oscillations, one CSV per
device, and a starting network as ONNX.

Each device (a task) is a sensor whose reading after a knock at t = 0 is
    y(t) = offset + amplitude · exp(−damping · t) · sin(2π · frequency · t)
with its own frequency ~ U[0.2, 0.5] Hz, damping ~ U[0.1, 0.5] /s, offset ~ U[−1, 1] and
amplitude ~ ±U[1, 2] (the sign: which way the sensor is mounted); rows are readings at t ~ U[0, 5] s with noise N(0, 0.05²). Writes OUT/train/device-NNN.csv and OUT/eval/device-NNN.csv (header `t,y`) and
OUT/init.onnx: a 1 → 64 → 64 → 1 tanh network with PyTorch's default initialisation, built with
the `onnx` package as `torch.onnx.export` writes an `nn.Sequential` of `nn.Linear` and `nn.Tanh`
(Gemm with transB = 1, Tanh).

Usage: python3 scripts/own-tasks.py OUT [--train 200] [--eval 50] [--rows 60] [--seed 0]
"""

import argparse
import math
import os
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def device(rng):
    return dict(
        frequency=rng.uniform(0.2, 0.5),
        damping=rng.uniform(0.1, 0.5),
        offset=rng.uniform(-1.0, 1.0),
        amplitude=rng.choice((-1.0, 1.0)) * rng.uniform(1.0, 2.0),
    )


def reading(d, t):
    return d["offset"] + d["amplitude"] * math.exp(-d["damping"] * t) * math.sin(
        2 * math.pi * d["frequency"] * t
    )


def write_devices(folder, n, rows, rng):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        d = device(rng)
        with open(os.path.join(folder, f"device-{i:03d}.csv"), "w") as f:
            f.write("t,y\n")
            for _ in range(rows):
                t = rng.uniform(0.0, 5.0)
                f.write(f"{t:.5f},{reading(d, t) + rng.gauss(0.0, 0.05):.5f}\n")


def linear(name, fan_in, fan_out, rng):
    """nn.Linear's default initialisation: weight and bias U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
    b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
    return [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]


def init_onnx(path, seed):
    rng = np.random.default_rng(seed)
    widths = [1, 64, 64, 1]
    nodes, inits, x = [], [], "input"
    for k in range(3):
        name = f"layers.{2 * k}"
        inits += linear(name, widths[k], widths[k + 1], rng)
        y = f"{name}.out"
        nodes.append(helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [y], transB=1))
        x = y
        if k < 2:
            y = f"layers.{2 * k + 1}.out"
            nodes.append(helper.make_node("Tanh", [x], [y]))
            x = y
    nodes.append(helper.make_node("Identity", [x], ["output"]))
    graph = helper.make_graph(
        nodes,
        "damped",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=200, help="training devices")
    ap.add_argument("--eval", type=int, default=50, help="held-out devices")
    ap.add_argument("--rows", type=int, default=60, help="readings per device")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    write_devices(os.path.join(a.out, "train"), a.train, a.rows, rng)
    write_devices(os.path.join(a.out, "eval"), a.eval, a.rows, rng)
    init_onnx(os.path.join(a.out, "init.onnx"), a.seed)
    print(f"wrote {a.train} training and {a.eval} held-out devices of {a.rows} rows, and init.onnx, to {a.out}")


if __name__ == "__main__":
    main()

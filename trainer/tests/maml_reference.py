#!/usr/bin/env python3
"""The exact second-order MAML meta-gradient of a dense tanh network with the mean squared error,
by automatic differentiation through the inner SGD steps (the `autograd` package: numpy-based,
exact higher-order derivatives, float64).

Usage: maml_reference.py DIR. DIR/cases.json, written by the Rust test `maml_autograd.rs`:
{"layers": [[outputs, inputs], ...] (dense layers, tanh between them), "params": [...] (each
layer's weights [outputs, inputs] row-major then its biases, layer after layer), "lr": α,
"cases": [{"minibatches": [{"x": [...], "y": [...]}, ...]}]}. Writes DIR/reference.json:
{"gradients": [[...], ...]}, one per case: the gradient with respect to the parameters of the
loss of the last minibatch after one SGD step at lr α on each minibatch before it, in order.

Installs autograd (and numpy) with pip when missing. Exit status: 0 written, 1 an error,
77 the packages are missing and pip is not available.
"""

import json
import pathlib
import sys

# The package installer of the ONNX check (tests/onnx_check.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from onnx_check import ensure_packages  # noqa: E402

PACKAGES = [("numpy", "numpy"), ("autograd", "autograd>=1.6")]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_packages(PACKAGES)
    import autograd.numpy as anp
    import numpy as np
    from autograd import grad

    d = pathlib.Path(sys.argv[1])
    spec = json.loads((d / "cases.json").read_text())
    layers = [tuple(l) for l in spec["layers"]]
    lr = float(spec["lr"])
    theta0 = np.asarray(spec["params"], dtype=np.float64)
    expected = sum(o * i + o for o, i in layers)
    if theta0.size != expected:
        print(f"cases.json: {theta0.size} parameters, the layers have {expected}", file=sys.stderr)
        return 1

    def forward(theta, x):
        h = x.reshape(-1, layers[0][1])
        off = 0
        for n, (o, i) in enumerate(layers):
            w = theta[off:off + o * i].reshape(o, i)
            b = theta[off + o * i:off + o * i + o]
            off += o * i + o
            h = anp.dot(h, w.T) + b
            if n + 1 < len(layers):
                h = anp.tanh(h)
        return h

    def loss(theta, x, y):
        return anp.mean((forward(theta, x) - y.reshape(-1, layers[-1][0])) ** 2)

    loss_grad = grad(loss)

    def maml_loss(theta, batches):
        for x, y in batches[:-1]:
            theta = theta - lr * loss_grad(theta, x, y)
        x, y = batches[-1]
        return loss(theta, x, y)

    meta_grad = grad(maml_loss)
    out = []
    for case in spec["cases"]:
        batches = [
            (np.asarray(b["x"], dtype=np.float64), np.asarray(b["y"], dtype=np.float64))
            for b in case["minibatches"]
        ]
        out.append([float(v) for v in meta_grad(theta0, batches)])
    (d / "reference.json").write_text(json.dumps({"gradients": out}))
    print(f"{len(out)} meta-gradients written")
    return 0


if __name__ == "__main__":
    sys.exit(main())

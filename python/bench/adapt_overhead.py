"""Overhead of `anole.Learner.adapt` from Python on the sine model (models/sine): the same
`reset()` + `adapt()` calls looped in Python and in Rust (inside the extension, no Python in
the loop), and the same SGD steps written in PyTorch if torch is importable.

Prints a markdown table: microseconds per adaptation (median of --runs timed runs), and the
ratios. Usage: python3 python/bench/adapt_overhead.py [--reps N] [--runs N]
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import anole
from anole import _anole

ROOT = Path(__file__).resolve().parents[2]


def python_loop(learner, x, y, steps, reps):
    t = time.perf_counter()
    for _ in range(reps):
        learner.reset()
        learner.adapt(x, y, steps)
    return (time.perf_counter() - t) / reps


def torch_loop(blob, x, y, steps, lr, reps):
    """The same adaptation in plain PyTorch: the sine MLP (1-64-64-1 tanh) from the blob's
    parameters, `steps` SGD steps on the 10 support samples, MSE."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    net = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    p0 = anole.Learner(blob).params
    init = []
    at = 0
    for p in net.parameters():  # blob order: each dense layer's weight [out, in], then bias
        init.append(torch.from_numpy(p0[at:at + p.numel()].reshape(p.shape).copy()))
        at += p.numel()
    assert at == p0.size
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.MSELoss()

    def once():
        with torch.no_grad():
            for p, v in zip(net.parameters(), init):
                p.copy_(v)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(xt), yt).backward()
            opt.step()

    once()
    t = time.perf_counter()
    for _ in range(reps):
        once()
    return (time.perf_counter() - t) / reps, torch.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000, help="adaptations per timed run")
    ap.add_argument("--runs", type=int, default=5, help="timed runs (the median is reported)")
    a = ap.parse_args()

    blob = anole.Blob.load(ROOT / "models" / "sine" / "init.postcard")
    steps, lr = blob.settings["steps"], blob.settings["lr"]
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, size=(10, 1)).astype(np.float32)
    y = (2.0 * np.sin(x + 0.5)).astype(np.float32)
    learner = anole.Learner(blob)
    python_loop(learner, x, y, steps, a.reps // 10)  # warm-up

    py, rs = [], []
    for _ in range(a.runs):  # interleaved, so both see the same machine load
        rs.append(_anole._time_adapt(learner, x, y, steps, a.reps))
        py.append(python_loop(learner, x, y, steps, a.reps))
    py_s, rs_s = statistics.median(py), statistics.median(rs)

    rows = [("Rust (the same calls, looped inside the extension)", rs_s),
            ("Python (`learner.reset(); learner.adapt(x, y)`)", py_s)]
    torch_note = "torch not importable: no PyTorch row"
    try:
        tt = [torch_loop(blob, x, y, steps, lr, max(a.reps // 10, 10)) for _ in range(a.runs)]
        torch_s = statistics.median(t for t, _ in tt)
        rows.append((f"PyTorch {tt[0][1].split('+')[0]} (same SGD steps, 1 thread)", torch_s))
        torch_note = f"PyTorch / anole from Python: {torch_s / py_s:.1f}×"
    except ImportError:
        torch_s = None

    print(f"sine model, {steps} SGD steps on 10 samples per adaptation; median of {a.runs} runs "
          f"of {a.reps}; {platform.machine()}, Python {platform.python_version()}\n")
    print("| adaptation loop | µs per adaptation |")
    print("|---|---:|")
    for name, s in rows:
        print(f"| {name} | {s * 1e6:.1f} |")
    print(f"\nPython overhead over Rust: {100 * (py_s / rs_s - 1):+.1f}%; {torch_note}")


if __name__ == "__main__":
    main()

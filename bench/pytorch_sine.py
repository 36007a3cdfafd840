"""Reptile on the sine family in plain single-threaded PyTorch: the reference the anole
trainer's sine meta-training is compared with (bench/run.sh).

The paper's recipe, as `anole train sine` runs it: one task per meta-iteration
(y = a sin(x + b), a ~ U[0.1, 5], b ~ U[0, 2pi], 50 points x ~ U[-5, 5]), the 1-64-64-1 tanh
MLP, 5 inner SGD steps at lr 0.02 on minibatches of 10 (one pass over the 50 points), then
phi <- phi + eps (W - phi) with eps = 0.1 annealed linearly to 0.

Prints one JSON object: meta-iterations per second (median of --runs timed runs after a
warm-up), the torch version and the thread count.
"""

import argparse
import json
import math
import sys
import time

import torch
from torch import nn


def model():
    return nn.Sequential(
        nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )


def train(net, iters, gen, shots=50, inner_steps=5, inner_batch=10, inner_lr=0.02,
          outer_lr=0.1):
    params = list(net.parameters())
    loss_fn = nn.MSELoss()
    for t in range(iters):
        a = 0.1 + 4.9 * torch.rand((), generator=gen)
        b = 2 * math.pi * torch.rand((), generator=gen)
        x = (torch.rand(shots, 1, generator=gen) * 10.0) - 5.0
        y = a * torch.sin(x + b)
        before = [p.detach().clone() for p in params]
        for s in range(inner_steps):
            lo = (s * inner_batch) % shots
            xb, yb = x[lo:lo + inner_batch], y[lo:lo + inner_batch]
            net.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= inner_lr * p.grad
        eps = outer_lr * (1.0 - t / iters)
        with torch.no_grad():
            for p, p0 in zip(params, before):
                p.copy_(p0 + eps * (p - p0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000, help="meta-iterations per timed run")
    ap.add_argument("--runs", type=int, default=3, help="timed runs (the median is reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = model()
    train(net, max(args.iters // 10, 1), gen)  # warm-up
    rates = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        train(net, args.iters, gen)
        rates.append(args.iters / (time.perf_counter() - t0))
        print(f"pytorch sine: {rates[-1]:.1f} meta-iterations/s", file=sys.stderr)
    rates.sort()
    print(json.dumps({
        "meta_iterations_per_s": rates[len(rates) // 2],
        "runs": rates,
        "iters": args.iters,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__.split("+")[0],
    }))


if __name__ == "__main__":
    main()

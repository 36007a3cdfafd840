"""Reptile on Omniglot-shaped 5-way tasks in PyTorch: the reference the anole trainer's
Omniglot meta-training is compared with (bench/run.sh).

The same CNN and recipe as `anole train omniglot --ways 5`: 4 x [conv 3x3, 64 channels,
stride 2, padding 1 -> batch norm (batch statistics) -> ReLU] -> flatten -> dense 256 -> 5;
per meta-iteration 5 tasks (meta-batch 5, run one after the other; PyTorch spreads each
operation over its intra-op threads, 2 on these machines by default), each 5 classes x 10
shots, 5 inner Adam steps (beta1 = 0, beta2 = 0.999, lr 1e-3, one optimizer whose state
is kept from task to task, as in the paper's reference code and `--inner-state keep`) on
minibatches of 10, then phi <- phi + eps mean_i (W_i - phi) with eps = 1 annealed to 0; every
8th meta-iteration one extra forward pass per task on its last minibatch (the accuracy the
anole trainer logs).

Inputs are synthetic 28x28 binary images (a fixed pool of random "characters", 20 drawings
each, in memory): data loading and augmentation are not what is measured, only the
meta-training arithmetic.

Prints one JSON object: meta-iterations per second over --iters timed iterations (fewer if
--max-seconds passes first) after a warm-up, the torch version and the thread count.
"""

import argparse
import json
import sys
import time

import torch
from torch import nn


def model(ways=5, filters=64):
    layers = []
    cin = 1
    for _ in range(4):
        layers += [
            nn.Conv2d(cin, filters, 3, stride=2, padding=1),
            nn.BatchNorm2d(filters, eps=1e-3),
            nn.ReLU(),
        ]
        cin = filters
    layers += [nn.Flatten(), nn.Linear(filters * 4, ways)]
    return nn.Sequential(*layers)


def sample_task(pool, gen, ways, shots):
    classes = torch.randperm(pool.shape[0], generator=gen)[:ways]
    x = torch.cat([pool[c, torch.randperm(pool.shape[1], generator=gen)[:shots]] for c in classes])
    y = torch.arange(ways).repeat_interleave(shots)
    order = torch.randperm(ways * shots, generator=gen)
    return x[order], y[order]


def train(net, pool, iters, gen, ways=5, shots=10, meta_batch=5, inner_steps=5,
          inner_batch=10, inner_lr=1e-3, outer_lr=1.0, accuracy_every=8, deadline=None):
    """Meta-train for `iters` iterations, or until `deadline` (time.perf_counter()) passes;
    returns the iterations done."""
    params = list(net.parameters())
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(params, lr=inner_lr, betas=(0.0, 0.999), eps=1e-8)
    net.train()
    for t in range(iters):
        if deadline is not None and t > 0 and time.perf_counter() > deadline:
            return t
        phi = [p.detach().clone() for p in params]
        delta = [torch.zeros_like(p) for p in params]
        for _ in range(meta_batch):
            x, y = sample_task(pool, gen, ways, shots)
            with torch.no_grad():
                for p, p0 in zip(params, phi):
                    p.copy_(p0)
            n = x.shape[0]
            for s in range(inner_steps):
                lo = (s * inner_batch) % n
                xb, yb = x[lo:lo + inner_batch], y[lo:lo + inner_batch]
                if s + 1 == inner_steps and t % accuracy_every == 0:
                    with torch.no_grad():
                        (net(xb).argmax(1) == yb).float().mean()
                opt.zero_grad()
                loss_fn(net(xb), yb).backward()
                opt.step()
            with torch.no_grad():
                for d, p, p0 in zip(delta, params, phi):
                    d += p - p0
        eps = outer_lr * (1.0 - t / iters) / meta_batch
        with torch.no_grad():
            for p, p0, d in zip(params, phi, delta):
                p.copy_(p0 + eps * d)
    return iters


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30, help="timed meta-iterations")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="stop the timed run early after this long (fewer iterations)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0: PyTorch's default, one per core)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    pool = (torch.rand(200, 20, 1, 28, 28, generator=gen) > 0.2).float()
    net = model()
    train(net, pool, 3, gen)  # warm-up
    t0 = time.perf_counter()
    done = train(net, pool, args.iters, gen, deadline=t0 + args.max_seconds)
    rate = done / (time.perf_counter() - t0)
    print(f"pytorch omniglot: {rate:.2f} meta-iterations/s", file=sys.stderr)
    print(json.dumps({
        "meta_iterations_per_s": rate,
        "iters": done,
        "threads": torch.get_num_threads(),
        "inputs": "synthetic 28x28",
        "torch": torch.__version__.split("+")[0],
    }))


if __name__ == "__main__":
    main()

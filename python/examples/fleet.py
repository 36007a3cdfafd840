"""A fleet of devices adapting one PyTorch model: the code of docs/python.md.

1. A small PyTorch classifier (8 sensor features -> 32 -> 4 classes) is trained on a
   "factory" dataset and exported to ONNX (`--export`, needs torch; the result is committed as
   python/examples/fleet.onnx so that the rest runs without torch).
2. `anole.import_onnx` turns it into a blob whose last layer adapts on a device.
3. 100 simulated devices, each seeing its own drifted version of the data (a per-device
   offset and gain on the features), adapt the head on 5 labelled samples per class with the
   runtime's SGD, in a thread pool (adapt and predict release the GIL); after every step each
   device measures accuracy and loss on 200 held-out samples of its own distribution.
4. Mean accuracy and loss against steps are plotted (`--plot`, needs matplotlib).

Usage:
  python3 python/examples/fleet.py --export python/examples/fleet.onnx   # with torch
  python3 python/examples/fleet.py [--onnx python/examples/fleet.onnx] [--plot fleet.png]
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import anole

HERE = Path(__file__).resolve().parent
FEATURES, CLASSES = 8, 4


def factory_data(rng, n, offset=0.0, gain=1.0):
    """n samples of 4 classes around fixed centres in 8-D, seen through a device's sensor
    drift (x * gain + offset)."""
    centres = np.random.default_rng(1234).normal(0.0, 1.5, size=(CLASSES, FEATURES))
    labels = rng.integers(0, CLASSES, size=n)
    x = centres[labels] + rng.normal(0.0, 0.7, size=(n, FEATURES))
    return (x * gain + offset).astype(np.float32), labels.astype(np.int64)


def export(path):
    """Train the classifier in PyTorch on undrifted data and export it to ONNX."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    x, y = factory_data(np.random.default_rng(0), 4000)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    acc = (net(xt).argmax(1) == yt).float().mean().item()
    print(f"PyTorch model: training accuracy {acc:.3f}")
    torch.onnx.export(net, (xt[:1],), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    print(f"wrote {path}")


def device(blob, seed, steps, shots):
    """One device: its drift, its support set, adaptation step by step; accuracy and loss on
    its query set after 0, 1, ..., steps steps."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, 2.0, size=FEATURES)
    gain = rng.uniform(0.5, 1.5, size=FEATURES)
    # The first `shots` samples of every class the device collects.
    x, y = factory_data(rng, 50 * shots, offset, gain)
    pick = np.concatenate([np.flatnonzero(y == c)[:shots] for c in range(CLASSES)])
    support_x, support_y = x[pick], y[pick]
    query_x, query_y = factory_data(rng, 200, offset, gain)

    learner = anole.Learner(blob, trainable="head")
    acc, loss = [], []
    for s in range(steps + 1):
        acc.append(float((learner.classify(query_x) == query_y).mean()))
        loss.append(learner.loss(query_x, query_y))
        if s < steps:
            learner.adapt(support_x, support_y, steps=1)
    return acc, loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, help="train the PyTorch model and write its ONNX here")
    ap.add_argument("--onnx", type=Path, default=HERE / "fleet.onnx")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--shots", type=int, default=5, help="support samples per class")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--plot", type=Path, help="write the accuracy/loss plot here (matplotlib)")
    a = ap.parse_args()
    if a.export:
        export(a.export)
        return

    blob = anole.import_onnx(a.onnx, loss="xent", lr=0.05, batch=a.shots * CLASSES,
                             adapt="head")
    print(blob)
    with ThreadPoolExecutor(a.threads) as pool:
        runs = list(pool.map(lambda d: device(blob, d, a.steps, a.shots), range(a.devices)))
    acc = np.array([r[0] for r in runs]).mean(axis=0)
    loss = np.array([r[1] for r in runs]).mean(axis=0)
    print("step  mean accuracy  mean loss")
    for s in sorted({0, 1, 2, 5, 10, 20, a.steps} & set(range(a.steps + 1))):
        print(f"{s:>4}  {acc[s]:>13.3f}  {loss[s]:>9.4f}")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (l, r) = plt.subplots(1, 2, figsize=(9, 3.2))
        l.plot(acc)
        l.set(xlabel="adaptation steps", ylabel="query accuracy", title=f"{a.devices} devices, mean")
        r.plot(loss, color="C1")
        r.set(xlabel="adaptation steps", ylabel="query loss (cross-entropy)")
        fig.tight_layout()
        fig.savefig(a.plot, dpi=110)
        print(f"wrote {a.plot}")
    # A fleet that does not learn is a failure of this example (CI runs it).
    if not acc[-1] > acc[0] + 0.05:
        raise SystemExit(f"adaptation did not help: accuracy {acc[0]:.3f} -> {acc[-1]:.3f}")


if __name__ == "__main__":
    main()

"""Writes the blobs models-m4 embeds: the reference models of python/tests/reference_models.py
(random weights, exported by PyTorch's default exporter, imported by the anole package), one
blob per case, with the case's storage type, adapting layers, learning rate and steps (SGD,
one sample per step). For each case it also runs the firmware's sample (the same xorshift
numbers) through the host's runtime in the device layout and writes the losses of the steps
to CASE.losses, which run.sh compares with the firmware's.

Usage: python3 make-blobs.py OUT_DIR [CASE ...]   (needs anole, torch, onnx and onnxruntime)
Prints one line per case: name, blob file, memory map (256k or 4m), what adapts (head, all or
none: predict only).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "tests"))

import anole  # noqa: E402
from reference_models import MODELS, export, randomized  # noqa: E402

STEPS = 5
LR = 0.01

# case, model, storage, adapt ("head", "all", or None: predict only), memory map
CASES = [
    ("ds-cnn-head", "ds-cnn", "f32", "head", "256k"),
    ("ds-cnn-all", "ds-cnn", "f32", "all", "4m"),
    ("imu-1d-cnn-head", "imu-1d-cnn", "f32", "head", "256k"),
    ("imu-1d-cnn-all", "imu-1d-cnn", "f32", "all", "256k"),
    ("autoencoder-f16-predict", "autoencoder", "f16", None, "256k"),
    ("autoencoder-f16-head", "autoencoder", "f16", "head", "4m"),
    ("autoencoder-f16-all", "autoencoder", "f16", "all", "4m"),
    ("autoencoder-f32-head", "autoencoder", "f32", "head", "4m"),
    ("resnet-8-predict", "resnet-8", "f32", None, "4m"),
    ("resnet-8-head", "resnet-8", "f32", "head", "4m"),
    ("resnet-8-all", "resnet-8", "f32", "all", "4m"),
    ("mobilenet-v1-f16-predict", "mobilenet-v1-0.25", "f16", None, "4m"),
    ("mobilenet-v1-f16-head", "mobilenet-v1-0.25", "f16", "head", "4m"),
]


def xorshift(seed: int):
    x = seed
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def firmware_sample(blob: anole.Blob, loss: str, n_in: int, n_out: int):
    """The firmware's sample (`anole_models_m4::sample`): inputs uniform in [-1, 1) from
    xorshift32 (`board::Rng`) seeded 0x2545f491; the target is the input for an autoencoder, else a class."""
    rng = xorshift(0x2545F491)
    # board::Rng::uniform(-1, 1): lo + (hi - lo) * u, u = 24 random bits / 2^24, in f32 (exact).
    u = [np.float32(next(rng) >> 8) * np.float32(1.0 / 16_777_216.0) for _ in range(n_in)]
    x = np.array([np.float32(-1) + np.float32(2) * v for v in u], dtype=np.float32)
    if loss == "xent":
        return x, np.array([next(rng) % n_out])
    assert n_out == n_in, "the firmware's MSE target is the input (an autoencoder)"
    return x, x.reshape(1, -1).copy()


def main() -> None:
    out = Path(sys.argv[1])
    wanted = set(sys.argv[2:])
    out.mkdir(parents=True, exist_ok=True)
    models = {name: (make, shape, loss) for name, make, shape, loss in MODELS}
    onnx = {}
    for case, model, dtype, adapt, mem in CASES:
        if wanted and case not in wanted:
            continue
        make, shape, loss = models[model]
        if model not in onnx:
            onnx[model] = export(randomized(make), shape, dynamo=True)
        blob = anole.import_onnx(onnx[model], loss=loss, batch=1, lr=LR, steps=STEPS, adapt=adapt or "head", dtype=dtype)
        path = out / f"{case}.postcard"
        path.write_bytes(blob.to_bytes())
        losses = []
        if adapt is not None:
            n_in = int(np.prod(shape))
            n_out = anole.Learner(blob, batch=1, mode="device").predict(np.zeros((1, *shape), np.float32)).shape[1]
            x, y = firmware_sample(blob, loss, n_in, n_out)
            learner = anole.Learner(blob, batch=1, mode="device")
            losses = [learner.step(x.reshape(1, *shape), y) for _ in range(STEPS)]
            if not (all(np.isfinite(losses)) and losses[-1] < losses[0]):
                sys.exit(f"{case}: the host's losses do not fall: {losses}")
        (out / f"{case}.losses").write_text(" ".join(str(np.float32(v)) for v in losses) + "\n")
        print(case, path, mem, adapt or "none")


if __name__ == "__main__":
    main()

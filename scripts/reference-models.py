"""The reference models of embedded ML through `anole import`: a markdown table of what each
becomes and what it needs on a device.

Usage: python3 scripts/reference-models.py
Needs the anole package (pip install ./python), torch, onnx and onnxruntime. The models are
those of python/tests/reference_models.py (random weights), exported by PyTorch's default
(torch.export-based) exporter. For each: the blob's layers, parameters, multiply-accumulates
per inference, flash (the f32 and the f16 blob), the arena a device needs (Mode::Device, f32)
to predict and to adapt (the head, or every layer, with SGD), one sample at a time, and the
largest difference from onnxruntime on 16 random inputs. A model the importer refuses gets
its one-line reason.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python" / "tests"))

import anole  # noqa: E402
from reference_models import MODELS, export, onnxruntime, randomized  # noqa: E402

# Models the importer refuses (none at present): name, model, input shape.
REFUSED = []


def kb(f32: int) -> str:
    return f"{4 * f32 / 1024:,.1f} KB"


def main() -> None:
    print("| model | input | layers | parameters | MACs / inference | flash f32 / f16 | RAM: predict | RAM: adapt head | RAM: adapt all | max diff vs onnxruntime |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name, make, shape, loss in MODELS:
        onnx = export(randomized(make), shape, dynamo=True)
        blob = anole.import_onnx(onnx, loss=loss, batch=1)
        half = anole.import_onnx(onnx, loss=loss, batch=1, dtype="f16")
        head = anole.import_onnx(onnx, loss=loss, batch=1, adapt="head")
        x = rng.uniform(-1, 1, size=(16, *shape)).astype(np.float32)
        diff = np.max(np.abs(anole.Learner(blob).predict(x) - onnxruntime(onnx, x).reshape(16, -1)))
        macs = sum(layer["macs"] for layer in blob.inspect()["layers"])
        print(
            f"| {name} | {list(shape)} | {len(blob.layers)} | {blob.param_count:,} | {macs:,} "
            f"| {blob.flash_bytes / 1024:,.1f} / {half.flash_bytes / 1024:,.1f} KB "
            f"| {kb(blob.arena_len(1, 'device', adapt=False))} "
            f"| {kb(head.arena_len(1, 'device'))} | {kb(blob.arena_len(1, 'device'))} | {diff:.1e} |"
        )
    for name, make, shape in REFUSED:
        try:
            anole.import_onnx(export(randomized(make), shape, dynamo=True))
            reason = "imported"
        except anole.OnnxError as e:
            reason = str(e).split(": ", 1)[-1]
        print(f"| {name} | {list(shape)} | refused: {reason} | | | | | | | |")


if __name__ == "__main__":
    main()

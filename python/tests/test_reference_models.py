"""The models people put on microcontrollers, built in PyTorch, exported to ONNX with both of
PyTorch's exporters, imported with `anole.import_onnx`, predicted against onnxruntime and
adapted on the host: MLPerf Tiny's DS-CNN (keyword spotting), ResNet-8 (image classification,
residual connections), fully connected autoencoder (anomaly detection) and MobileNetV1 (visual
wake words, width 0.25: 57 layers, which a host build holds, up to 64; a lean device build holds
32), and a 1-D CNN over six IMU channels.

Needs torch, onnx and onnxruntime (scripts/test.sh installs them with pip); without torch the
tests are skipped unless ANOLE_REQUIRE_TORCH=1, which CI sets.
"""

import os

import numpy as np
import pytest

import anole

if os.environ.get("ANOLE_REQUIRE_TORCH") == "1":
    import onnxruntime as ort
    import torch  # noqa: F401
else:
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")

from reference_models import MODELS, export, onnxruntime, randomized  # noqa: E402

# Largest difference allowed between anole's and onnxruntime's outputs.
TOLERANCE = 1e-5


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name,make,shape,loss", MODELS, ids=[m[0] for m in MODELS])
def test_imports_predicts_like_onnxruntime_and_adapts(name, make, shape, loss, dynamo):
    model = randomized(make)
    onnx = export(model, shape, dynamo)
    blob = anole.import_onnx(onnx, loss=loss, lr=0.01, steps=5, batch=4)
    assert blob.input_shape == shape
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(4, *shape)).astype(np.float32)
    learner = anole.Learner(blob)
    ours = learner.predict(x)
    theirs = onnxruntime(onnx, x)
    assert ours.shape == theirs.reshape(len(x), -1).shape
    diff = float(np.max(np.abs(ours - theirs.reshape(len(x), -1))))
    assert diff <= TOLERANCE, f"{name}: anole and onnxruntime differ by {diff}"
    # The blob's own ONNX export predicts the same.
    again = onnxruntime(blob.to_onnx(), x).reshape(len(x), -1)
    assert float(np.max(np.abs(ours - again))) <= TOLERANCE
    # A few SGD steps on the host lower the support loss (as the steps measure it: batch
    # statistics in the norm layers that adapt).
    if loss == "xent":
        y = np.arange(len(x)) % blob.output_shape[0]
    else:
        y = x.reshape(len(x), -1) * 0.5
    report = learner.adapt(x, y, steps=5)
    assert report.steps == 5
    assert report.last_loss < report.first_loss, f"{name}: support loss {report.first_loss} -> {report.last_loss}"
    assert np.all(np.isfinite(learner.predict(x)))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_mobilenet_v1_is_a_version_3_blob_of_57_layers(dynamo):
    # 27 convolutions, each with its ReLU6 (batch norm folded into them by both exporters),
    # global average pooling, flatten, the classifier: more than format version 2's 32 layers.
    model = randomized(MODELS[-1][1])
    blob = anole.import_onnx(export(model, (3, 96, 96), dynamo))
    assert len(blob.layers) == 57
    assert blob.to_bytes()[4] == 3
    assert blob.settings["head_scale"] == 1.0

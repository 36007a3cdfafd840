"""The models people put on microcontrollers, in PyTorch: MLPerf Tiny's DS-CNN (keyword
spotting), MobileNetV1 (visual wake words, width 0.25), fully connected autoencoder (anomaly
detection) and ResNet-8 (image classification), and a 1-D CNN over six IMU channels; with
random weights and batch-norm statistics, exported to ONNX by either of PyTorch's exporters.
Used by test_reference_models.py and scripts/reference-models.py.
"""

import io
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

def ds_cnn() -> nn.Module:
    """DS-CNN (MLPerf Tiny keyword spotting) on 49 x 10 MFCCs: Keras' "same" padding of the
    10 x 4 stride-2 first convolution as PyTorch writes it (ZeroPad2d, then Conv2d), four
    depthwise-separable blocks of 64 channels, average pooling over the 25 x 5 map, 12 classes."""
    layers = [nn.ZeroPad2d((1, 1, 4, 5)), nn.Conv2d(1, 64, (10, 4), stride=2), nn.BatchNorm2d(64), nn.ReLU()]
    for _ in range(4):
        layers += [
            nn.Conv2d(64, 64, 3, padding=1, groups=64),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        ]
    layers += [nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(64, 12)]
    return nn.Sequential(*layers)


def mobilenet_v1(width: float = 0.25, classes: int = 2) -> nn.Module:
    """MobileNetV1 (MLPerf Tiny visual wake words) on 96 x 96 RGB: a 3 x 3 stride-2 convolution,
    13 depthwise-separable blocks with ReLU6, global average pooling, a linear classifier."""

    def c(n: int) -> int:
        return max(8, int(n * width))

    def block(cin: int, cout: int, stride: int) -> list:
        return [
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(),
        ]

    spec = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
    spec += [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    layers = [nn.Conv2d(3, c(32), 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU6()]
    for cin, cout, stride in spec:
        layers += block(c(cin), c(cout), stride)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c(1024), classes)]
    return nn.Sequential(*layers)


def autoencoder() -> nn.Module:
    """The fully connected autoencoder of MLPerf Tiny's anomaly detection: 640 inputs (5 frames
    of 128 log-mel bins), 4 x [Linear 128, BatchNorm1d, ReLU], an 8-wide bottleneck, 4 more,
    640 outputs."""
    sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(128, 640))
    return nn.Sequential(*layers)


def imu_cnn() -> nn.Module:
    """A 1-D CNN over 128 samples of a 6-axis IMU (accelerometer and gyroscope), 6 activities:
    three convolutions (the last dilated), batch norm, max pooling, global average pooling."""
    return nn.Sequential(
        nn.Conv1d(6, 16, 5, padding=2),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(32, 64, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(64, 6),
    )


class Residual(nn.Module):
    """A ResNet-8 block: two 3 x 3 convolutions added to a 1 x 1 strided shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet8() -> nn.Module:
    """ResNet-8 (MLPerf Tiny image classification) on 32 x 32 RGB, 10 classes."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        Residual(16, 16, 1),
        Residual(16, 32, 2),
        Residual(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


# name, model, per-sample input shape, loss for adaptation
MODELS = [
    ("ds-cnn", ds_cnn, (1, 49, 10), "xent"),
    ("resnet-8", resnet8, (3, 32, 32), "xent"),
    ("autoencoder", autoencoder, (640,), "mse"),
    ("imu-1d-cnn", imu_cnn, (6, 128), "xent"),
    ("mobilenet-v1-0.25", mobilenet_v1, (3, 96, 96), "xent"),
]


def randomized(make) -> nn.Module:
    """The model in inference mode with fixed random weights and batch-norm statistics that are
    not the identity (so that the importer's handling of them is exercised)."""
    torch.manual_seed(0)
    m = make()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.8, 1.2)
                mod.bias.uniform_(-0.1, 0.1)
    return m.eval()


def export(model: nn.Module, shape: tuple, dynamo: bool) -> bytes:
    """ONNX bytes as `torch.onnx.export` writes them, with a variable batch: the TorchScript
    exporter at opset 13, or the torch.export-based one (PyTorch's default) at its opset."""
    x = torch.zeros(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=1024)
            program = torch.onnx.export(model, (x,), dynamo=True, input_names=["x"], output_names=["y"], dynamic_shapes=({0: batch},), verbose=False)
            return program.model_proto.SerializeToString()
        f = io.BytesIO()
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=13, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        return f.getvalue()


def onnxruntime(onnx: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]

"""anole from Python: the few-shot adaptation runtime and its model tools, bit-exact with the
device.

A `Blob` is a meta-learned initialization (``init.postcard``); a `Learner` adapts it on support
samples and predicts, running the same engine, in the same arithmetic, as ``anole adapt`` and
the firmware. `import_onnx` converts an ONNX model into a blob, `sign` and `verify` handle the
signed envelopes devices may require, and `train` meta-trains a built-in task family.

Arrays are numpy arrays: inputs ``x`` of shape ``(n, inputs)`` (or ``(n, *blob.input_shape)``),
targets ``y`` of shape ``(n, outputs)`` (``(n,)`` when one value), class labels as integers,
all float32 and C-contiguous. Every failure raises a subclass of `anole.Error`.
"""

import os
from typing import Tuple

from ._anole import (
    AdaptReport,
    Blob,
    Delta,
    Learner,
    delta_size,
    import_onnx,
    public_key,
    sign,
    train,
    verify,
)
from ._errors import (
    BlobError,
    DeltaError,
    DivergedError,
    DTypeError,
    Error,
    InputError,
    LayoutError,
    NonFiniteError,
    OnnxError,
    SampleError,
    SettingsError,
    ShapeError,
    SignatureError,
    TrainError,
)

__version__ = "0.1.0"


def keygen() -> Tuple[bytes, bytes]:
    """A new ed25519 key pair from the operating system's randomness: ``(secret, public)``, 32
    bytes each. Keep the secret key off devices; devices hold the public key."""
    secret = os.urandom(32)
    return secret, public_key(secret)


__all__ = [
    "AdaptReport",
    "Blob",
    "BlobError",
    "Delta",
    "DeltaError",
    "DivergedError",
    "DTypeError",
    "Error",
    "InputError",
    "LayoutError",
    "Learner",
    "NonFiniteError",
    "OnnxError",
    "SampleError",
    "SettingsError",
    "ShapeError",
    "SignatureError",
    "TrainError",
    "delta_size",
    "import_onnx",
    "keygen",
    "public_key",
    "sign",
    "train",
    "verify",
]

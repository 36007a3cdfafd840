"""The exceptions of the anole package.

Every failure of the runtime, the trainer or the bindings' own checks is raised as a subclass of
`anole.Error` whose message is the runtime's (what failed and where). Errors that come from the
runtime also carry its error variant in `kind` (e.g. ``"NonFiniteSample"``), else ``None``.
"""

from typing import Optional


class Error(Exception):
    """Base class of every anole error."""

    def __init__(self, message: str, kind: Optional[str] = None):
        super().__init__(message)
        #: The runtime's error variant (``"Truncated"``, ``"NonFiniteLoss"``, ...) or None.
        self.kind = kind


class BlobError(Error):
    """A blob that cannot be read or used: truncated, corrupted (CRC), of an unknown version,
    an invalid architecture or values, or a file that cannot be read."""


class SignatureError(BlobError):
    """A signed envelope that does not verify (unsigned, another key, an altered byte), or a
    bad key."""


class DeltaError(Error):
    """An update delta that cannot be read: truncated, corrupted (CRC), of an unknown version or
    encoding, or with sparse indices out of order or range."""


class InputError(Error, ValueError):
    """An argument array or value the learner cannot take."""


class DTypeError(InputError, TypeError):
    """An array of the wrong dtype (inputs and targets are float32; labels may be integers),
    or not a numpy array at all."""


class ShapeError(InputError):
    """An array of the wrong shape, or rows that do not match the model."""


class LayoutError(InputError):
    """An array that is not C-contiguous (pass ``numpy.ascontiguousarray(a)``)."""


class NonFiniteError(InputError):
    """A NaN or infinity in samples, parameters or optimizer state."""


class SampleError(InputError):
    """Samples the task cannot use: a label out of range, no samples, a class without any."""


class SettingsError(Error, ValueError):
    """A bad learner or import setting (learning rate, batch, mode, trainable layers)."""


class DivergedError(Error):
    """Adaptation produced a non-finite loss or parameter; the learner keeps the parameters of
    its last good step and still predicts."""


class OnnxError(Error):
    """An ONNX model that cannot be imported or exported."""


class TrainError(Error):
    """Training failed, or its options are invalid."""

"""Type stubs of the extension module `anole._anole` (re-exported by `anole`)."""

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, "os.PathLike[str]"]
_Trainable = Union[None, Literal["all", "head"], int, Sequence[int]]
_Mode = Literal["buffered", "device"]

class Blob:
    """A parsed anole blob: an initialization (or an adapted model, or an optimizer state)
    with its architecture, settings and provenance. Immutable; learners share its bytes."""

    @staticmethod
    def load(path: _Path, public_key: Optional[bytes] = None) -> "Blob":
        """Read and parse a blob file. With ``public_key`` (32 bytes) the file must be a signed
        envelope of that key, checked as a device checks it."""
    @staticmethod
    def from_bytes(data: bytes) -> "Blob":
        """Parse blob bytes (what `Learner.export` or `to_bytes` return)."""
    def to_bytes(self) -> bytes:
        """The blob's bytes, as on flash."""
    @property
    def fingerprint(self) -> int:
        """64-bit fingerprint (CRC-64/XZ) of the bytes: names a fleet round's model in deltas."""
    def to_onnx(self) -> bytes:
        """The model as ONNX bytes (what ``anole adapt --onnx`` writes)."""
    def inspect(self, batch: Optional[int] = None) -> Dict[str, Any]:
        """What ``anole inspect --json`` prints: layers and shapes, dtypes, parameter count,
        flash bytes, settings, provenance, arena sizes per mode and batch (also at ``batch``)."""
    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The input of one sample: ``(1,)`` for sine, ``(1, 28, 28)`` for Omniglot."""
    @property
    def output_shape(self) -> Tuple[int, ...]:
        """The output of one sample."""
    @property
    def target_len(self) -> int:
        """Values of one sample's target: the output length, or 1 (a class index)."""
    @property
    def param_count(self) -> int:
        """Number of parameters."""
    @property
    def flash_bytes(self) -> int:
        """Bytes of the blob (its size in flash)."""
    @property
    def layers(self) -> List[Dict[str, Any]]:
        """One dict per layer: index, layer, input, output, params, dtype, adapts, macs."""
    @property
    def dtypes(self) -> List[str]:
        """Storage dtypes of the tensors."""
    @property
    def settings(self) -> Dict[str, Any]:
        """Recommended adaptation: loss, optimizer, lr, steps, batch, trainable_layers,
        lr_scale."""
    @property
    def provenance(self) -> Dict[str, Any]:
        """algorithm, task, seed, meta_iterations."""
    def arena_len(self, batch: Optional[int] = None, mode: _Mode = "buffered", adapt: bool = True) -> int:
        """f32 values of a learner's arena at ``batch`` in ``mode`` (``adapt=False``: predict
        only)."""
    def __len__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...

class AdaptReport:
    """What `Learner.adapt` did."""

    steps: int
    first_loss: float
    last_loss: float

class Learner:
    """The runtime's engine with its own arena over a shared blob: what a device runs. One
    learner per simulated device; `adapt`, `predict` and `step` release the GIL."""

    def __init__(
        self,
        blob: Blob,
        batch: Optional[int] = None,
        lr: Optional[float] = None,
        trainable: _Trainable = None,
        mode: _Mode = "buffered",
    ) -> None:
        """Load ``blob``; batch, lr and trainable default to the blob's settings. ``trainable``:
        "all", "head", an int bit mask (bit i: layer i adapts) or a list of layer indices.
        ``mode="device"``: the microcontroller's arena layout."""
    @property
    def blob(self) -> Blob: ...
    @property
    def batch(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @lr.setter
    def lr(self, value: float) -> None: ...
    @property
    def trainable(self) -> int:
        """The adapting layers as a bit mask."""
    @property
    def mode(self) -> _Mode: ...
    @property
    def arena_len(self) -> int: ...
    @property
    def steps_taken(self) -> int: ...
    def adapt(self, x: npt.NDArray[np.float32], y: npt.ArrayLike, steps: Optional[int] = None) -> AdaptReport:
        """Adapt on support samples for ``steps`` steps (default: the blob's), exactly as
        ``anole adapt`` and the firmware do; a learner that has taken no step since its
        parameters were set first starts its head as the blob says (`start_head`). Raises
        `DivergedError` on divergence, keeping the last good step."""
    def step(self, x: npt.NDArray[np.float32], y: npt.ArrayLike, lr: Optional[float] = None) -> float:
        """One optimizer step on one minibatch; the loss before the update."""
    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Outputs for ``x``: shape (n, outputs)."""
    def classify(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """Predicted class of every row."""
    def loss(self, x: npt.NDArray[np.float32], y: npt.ArrayLike) -> float:
        """Mean loss over the samples (no update)."""
    def gradient(self, x: npt.NDArray[np.float32], y: npt.ArrayLike) -> Tuple[float, npt.NDArray[np.float32]]:
        """``(loss, gradient)`` of one minibatch in parameter order, without updating."""
    @property
    def params(self) -> npt.NDArray[np.float32]:
        """The parameters (a copy); setting them clears the optimizer state."""
    @params.setter
    def params(self, value: npt.NDArray[np.float32]) -> None: ...
    @property
    def optimizer_state(self) -> Tuple[int, npt.NDArray[np.float32]]:
        """``(steps taken, per-parameter state)``; empty under SGD."""
    def set_optimizer_state(self, steps: int, state: npt.NDArray[np.float32]) -> None: ...
    def load_optimizer_state(self, state: Blob) -> None:
        """Load an optimizer-state blob (``init.adam.postcard``)."""
    def export_optimizer_state(self) -> bytes: ...
    def init_prototypes(self, x: npt.NDArray[np.float32], labels: npt.ArrayLike) -> None:
        """Start the classifier head from class prototypes of feature vectors."""
    @property
    def head_start(self) -> Literal["meta", "prototypes"]:
        """Where the blob says adaptation starts the head."""
    def start_head(self, x: npt.NDArray[np.float32], labels: npt.ArrayLike) -> None:
        """Start the head as the blob says: under ``"prototypes"`` the last layer becomes the
        nearest-prototype classifier of the support samples' features."""
    def export(self) -> bytes:
        """The adapted model as blob bytes (what ``anole adapt --out`` writes)."""
    @property
    def delta_coordinates(self) -> int:
        """Values in an update delta: the parameters of the layers this learner adapts."""
    def delta(self, round: int, fingerprint: int, top_k: Optional[int] = None) -> bytes:
        """The adapting layers' current minus initial parameters as binary16 (all, or the
        `top_k` largest), headed by the fleet's round and the round blob's fingerprint."""
    def apply_delta(self, delta: npt.NDArray[np.float32], scale: float = 1.0) -> None:
        """Add ``scale * delta`` to the adapting layers' parameters (clears optimizer state)."""
    def reset(self) -> None:
        """Back to the blob's parameters; clears the optimizer state."""
    def clone(self) -> "Learner":
        """An independent copy sharing the blob."""
    def __copy__(self) -> "Learner": ...

def import_onnx(
    model: Union[bytes, _Path],
    *,
    lr: Optional[float] = None,
    steps: Optional[int] = None,
    batch: Optional[int] = None,
    loss: Optional[Literal["mse", "xent"]] = None,
    adapt: Optional[Literal["all", "head"]] = None,
    dtype: Optional[Literal["f32", "f16", "bf16"]] = None,
) -> Blob:
    """Convert an ONNX model into a blob (``anole import``)."""

def sign(blob: Union[Blob, bytes, _Path], secret_key: bytes) -> bytes:
    """The envelope of ``blob`` signed with a 32-byte secret key (``anole sign``)."""

def verify(envelope: Union[bytes, _Path], public_key: bytes) -> Blob:
    """Check a signed envelope against a 32-byte public key; the blob inside."""

def public_key(secret: bytes) -> bytes:
    """The public key of a 32-byte secret key."""

def train(family: str, out: _Path, **options: Any) -> Blob:
    """Meta-train a built-in task family in this process (``anole train FAMILY --out OUT``,
    keyword options as its flags); returns ``OUT/init.postcard``."""

def _time_adapt(learner: Learner, x: npt.NDArray[np.float32], y: npt.ArrayLike, steps: int, reps: int) -> float:
    """Seconds per ``reset()`` + ``adapt(x, y, steps)`` looped ``reps`` times in Rust (for
    python/bench/adapt_overhead.py)."""

class Delta:
    """An update delta (what `Learner.delta` writes and a device sends home), read back and
    checked: the round and model fingerprint it answers and its binary16 values."""

    @staticmethod
    def from_bytes(data: bytes) -> "Delta":
        """Read delta bytes; a damaged or inconsistent one raises `DeltaError`."""
    @property
    def round(self) -> int:
        """The fleet round it answers."""
    @property
    def fingerprint(self) -> int:
        """`Blob.fingerprint` of the blob it was adapted from."""
    @property
    def coordinates(self) -> int:
        """Values of the dense delta (the adapting layers' parameters)."""
    @property
    def entries(self) -> int:
        """Values stored (`coordinates` unless top-k sparse)."""
    @property
    def sparse(self) -> bool:
        """Whether only the top-k coordinates are stored."""
    def to_dense(self) -> npt.NDArray[np.float32]:
        """The delta as float32, zeros where a sparse delta stores none."""
    def to_bytes(self) -> bytes:
        """The delta's bytes."""
    def __len__(self) -> int: ...

def delta_size(coordinates: int, top_k: Optional[int] = None) -> int:
    """Bytes of a delta of `coordinates` values, dense or keeping the `top_k` largest."""

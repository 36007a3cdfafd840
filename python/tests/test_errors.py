"""Every bad input is an `anole.Error` subclass carrying the runtime's message, never a crash."""

import numpy as np
import pytest

import anole

F32 = np.float32


@pytest.fixture()
def learner(sine_path):
    return anole.Learner(anole.Blob.load(sine_path))


def x1(n=4):
    return np.linspace(-1, 1, n, dtype=F32).reshape(-1, 1)


def test_hierarchy():
    for cls in (anole.BlobError, anole.SignatureError, anole.InputError, anole.DTypeError,
                anole.ShapeError, anole.LayoutError, anole.NonFiniteError, anole.SampleError,
                anole.SettingsError, anole.DivergedError, anole.OnnxError, anole.TrainError):
        assert issubclass(cls, anole.Error)
    assert issubclass(anole.DTypeError, TypeError)
    assert issubclass(anole.ShapeError, ValueError)
    assert issubclass(anole.SignatureError, anole.BlobError)


@pytest.mark.parametrize("cut", [0, 3, 10, -5, -1])
def test_truncated_blob(sine_path, cut):
    data = sine_path.read_bytes()
    data = data[:cut] if cut >= 0 else data[:len(data) + cut]
    with pytest.raises(anole.BlobError) as e:
        anole.Blob.from_bytes(data)
    assert e.value.kind in ("Truncated", "CrcMismatch", "Malformed", "BadMagic")
    assert str(e.value).startswith(f"blob ({len(data)} bytes): ")


def test_corrupted_blob(sine_path, tmp_path):
    data = bytearray(sine_path.read_bytes())
    data[len(data) // 2] ^= 0x40
    with pytest.raises(anole.BlobError) as e:
        anole.Blob.from_bytes(bytes(data))
    assert e.value.kind == "CrcMismatch" and "CRC" in str(e.value)
    with pytest.raises(anole.BlobError) as e:
        anole.Blob.from_bytes(b"not a blob at all, no")
    assert e.value.kind == "BadMagic"
    with pytest.raises(anole.BlobError, match="cannot read"):
        anole.Blob.load(tmp_path / "missing.postcard")
    onnx = sine_path.parent / "init.onnx"
    with pytest.raises(anole.BlobError, match=str(onnx)):
        anole.Blob.load(onnx)


def test_wrong_dtype(learner):
    y = np.zeros((4, 1), F32)
    with pytest.raises(anole.DTypeError, match=r"x: expected dtype float32, found float64"):
        learner.adapt(x1().astype(np.float64), y)
    with pytest.raises(anole.DTypeError, match="y: expected dtype float32"):
        learner.adapt(x1(), y.astype(np.int64))  # regression targets are not labels
    with pytest.raises(anole.DTypeError, match="expected a numpy array.*list"):
        learner.predict([[0.5]])
    with pytest.raises(TypeError):  # DTypeError is a TypeError
        learner.predict(np.zeros((2, 1), np.float16))


def test_wrong_shape(learner):
    y = np.zeros((4, 1), F32)
    with pytest.raises(anole.ShapeError, match=r"x: expected shape \(n,\) or \(n, 1\), found \(4, 2\)"):
        learner.adapt(np.zeros((4, 2), F32), y)
    with pytest.raises(anole.ShapeError, match="x has 4 rows but y has 3"):
        learner.adapt(x1(), y[:3])
    with pytest.raises(anole.ShapeError):
        learner.predict(np.zeros((), F32))
    with pytest.raises(anole.ShapeError) as e:  # more rows than a minibatch
        learner.step(x1(11), np.zeros((11, 1), F32))
    assert e.value.kind == "BatchTooLarge"
    with pytest.raises(anole.ShapeError) as e:
        learner.params = np.zeros(3, F32)
    assert e.value.kind == "ParamCount"
    with pytest.raises(anole.ShapeError) as e:
        learner.set_optimizer_state(0, np.zeros(2, F32))
    assert e.value.kind == "OptimizerStateLen"


def test_non_finite(learner):
    x, y = x1(), np.zeros((4, 1), F32)
    x[2, 0] = np.nan
    with pytest.raises(anole.NonFiniteError) as e:
        learner.adapt(x, y)
    assert e.value.kind == "NonFiniteSample" and "sample 2" in str(e.value)
    with pytest.raises(anole.NonFiniteError, match="sample 2"):
        learner.predict(x)
    with pytest.raises(anole.NonFiniteError):
        learner.loss(x1(), np.full((4, 1), np.inf, F32))
    p = learner.params
    p[5] = np.nan
    with pytest.raises(anole.NonFiniteError):
        learner.params = p
    assert np.isfinite(learner.params).all(), "nothing changed"


def test_non_contiguous(learner):
    x = np.zeros((8, 1), F32)[::2]
    with pytest.raises(anole.LayoutError, match="not C-contiguous"):
        learner.predict(x)
    with pytest.raises(anole.LayoutError):
        learner.adapt(x, np.zeros((8, 1), F32)[::2])
    assert learner.predict(np.ascontiguousarray(x)).shape == (4, 1)


def test_divergence_keeps_the_last_good_step(learner):
    x, y = x1(10), (100 * x1(10)).astype(F32)
    learner.lr = 1e6
    with pytest.raises(anole.DivergedError) as e:
        learner.adapt(x, y, steps=50)
    assert e.value.kind in ("NonFiniteLoss", "NonFiniteParameter")
    assert np.isfinite(learner.params).all()
    assert np.isfinite(learner.predict(x)).all()


def test_bad_settings(sine_path):
    blob = anole.Blob.load(sine_path)
    with pytest.raises(anole.SettingsError, match="mode"):
        anole.Learner(blob, mode="fast")
    with pytest.raises(anole.SettingsError, match="trainable"):
        anole.Learner(blob, trainable="body")
    with pytest.raises(anole.SettingsError, match="layer 9 does not exist"):
        anole.Learner(blob, trainable=[9])
    with pytest.raises(anole.SettingsError) as e:
        anole.Learner(blob, trainable=1 << 20)  # the model has 5 layers
    assert e.value.kind == "BadTrainableMask"
    with pytest.raises(anole.SettingsError, match="learning rate"):
        anole.Learner(blob, lr=float("nan"))
    with pytest.raises(anole.SettingsError):
        anole.Learner(blob, batch=0)
    with pytest.raises(anole.SettingsError, match="learning rate"):
        anole.Learner(blob).step(x1(), np.zeros((4, 1), F32), lr=-0.1)
    with pytest.raises(anole.SettingsError, match="mode"):
        blob.arena_len(mode="gpu")


def test_bad_labels_and_prototypes(sine_path):
    learner = anole.Learner(anole.Blob.load(sine_path))
    with pytest.raises(anole.SettingsError) as e:  # sine's first layer is not a classifier head
        learner.init_prototypes(x1(2), np.array([[0.0], [1.0]], F32))
    assert e.value.kind == "NotAHead"
    with pytest.raises(anole.SampleError) as e:
        learner.adapt(np.zeros((0, 1), F32), np.zeros((0, 1), F32))
    assert e.value.kind == "NoSamples"

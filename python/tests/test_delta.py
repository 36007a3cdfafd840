"""Update deltas from Python: a learner's delta reads back as adapted minus initial in f16,
applying it moves another learner there, top-k keeps the largest, and bad deltas or arguments
raise their anole error classes."""

import numpy as np
import pytest

import anole


def adapted(sine_path, sine_task, trainable=None):
    blob = anole.Blob.load(sine_path)
    learner = anole.Learner(blob, trainable=trainable)
    x, y = sine_task[0], sine_task[1]
    learner.adapt(x, y)
    return blob, learner


def test_delta_is_adapted_minus_initial(sine_path, sine_task):
    blob, learner = adapted(sine_path, sine_task)
    initial = anole.Learner(blob).params
    raw = learner.delta(4, blob.fingerprint)
    assert len(raw) == anole.delta_size(learner.delta_coordinates)
    d = anole.Delta.from_bytes(raw)
    assert (d.round, d.fingerprint, d.sparse) == (4, blob.fingerprint, False)
    assert d.coordinates == d.entries == blob.param_count  # every sine layer adapts
    want = (learner.params - initial).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(d.to_dense(), want)
    assert np.abs(want).max() > 0

    server = anole.Learner(blob)
    server.apply_delta(d.to_dense())
    np.testing.assert_allclose(server.params, learner.params, rtol=0, atol=1e-3)
    server.apply_delta(d.to_dense(), scale=-1.0)
    np.testing.assert_allclose(server.params, initial, rtol=0, atol=1e-6)


def test_head_only_delta_and_top_k(sine_path, sine_task):
    blob, learner = adapted(sine_path, sine_task, trainable="head")
    assert learner.delta_coordinates == 65
    dense = anole.Delta.from_bytes(learner.delta(0, 1)).to_dense()
    d = anole.Delta.from_bytes(learner.delta(0, 1, top_k=5))
    assert d.sparse and d.entries == 5 and len(d) == anole.delta_size(65, top_k=5)
    kept = d.to_dense()
    assert np.count_nonzero(kept) == 5
    assert np.sort(np.abs(kept[kept != 0])).min() == np.sort(np.abs(dense))[-5]


def test_bad_deltas_and_arguments(sine_path, sine_task):
    blob, learner = adapted(sine_path, sine_task)
    raw = bytearray(learner.delta(1, blob.fingerprint))
    with pytest.raises(anole.DeltaError, match="CRC"):
        anole.Delta.from_bytes(bytes(raw[:-5]) + bytes(raw[-4:]) + b"\0")
    raw[40] ^= 1
    with pytest.raises(anole.DeltaError, match="CRC") as e:
        anole.Delta.from_bytes(bytes(raw))
    assert e.value.kind == "Crc"
    with pytest.raises(anole.DeltaError, match="magic"):
        anole.Delta.from_bytes(blob.to_bytes())
    with pytest.raises(anole.SettingsError):
        learner.delta(1, 2, top_k=0)
    with pytest.raises(anole.ShapeError):
        learner.apply_delta(np.zeros(3, np.float32))
    huge = np.full(learner.delta_coordinates, 3e38, np.float32)
    before = learner.params
    with pytest.raises(anole.NonFiniteError):
        learner.apply_delta(huge, scale=10.0)
    np.testing.assert_array_equal(learner.params, before)
    with pytest.raises(anole.DTypeError):
        learner.apply_delta(np.zeros(learner.delta_coordinates))  # float64

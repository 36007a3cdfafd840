"""The aggregates and the norm bound on known numbers."""

import numpy as np
import pytest

from anole_fleet import robust


def test_aggregates():
    u = [np.array([1.0, 10.0], np.float32), np.array([2.0, -10.0], np.float32),
         np.array([3.0, 1000.0], np.float32), np.array([4.0, 0.0], np.float32),
         np.array([100.0, 1.0], np.float32)]
    np.testing.assert_allclose(robust.aggregate(u, "mean"), [22.0, 200.2], rtol=1e-6)
    np.testing.assert_array_equal(robust.aggregate(u, "median"), [3.0, 1.0])
    # trim 0.2 of 5: drop the lowest and the highest value of each coordinate.
    np.testing.assert_allclose(robust.aggregate(u, "trimmed-mean", 0.2), [3.0, 11 / 3])
    with pytest.raises(ValueError, match="unknown aggregator"):
        robust.aggregate(u, "krum")
    with pytest.raises(ValueError, match="no update"):
        robust.aggregate([], "mean")
    with pytest.raises(ValueError, match="trim"):
        robust.aggregate(u, "trimmed-mean", 0.5)


def test_norm_filter():
    u = [np.full(4, v, np.float32) for v in (1.0, 1.1, 0.9, 1.0, 50.0)]
    keep, refused = robust.norm_filter(u, 3.0, None)
    assert keep == [0, 1, 2, 3] and refused[0][0] == 4 and "above the bound" in refused[0][1]
    keep, refused = robust.norm_filter(u, 0.0, 2.05)
    assert keep == [0, 2, 3]
    assert robust.norm_filter([], 3.0, None) == ([], [])

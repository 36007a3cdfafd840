"""Checking and combining the devices' updates.

`check` turns one reply's delta bytes into a dense update or a reason to refuse it; `aggregate`
combines the accepted updates with the mean, the coordinate-wise median or a coordinate-wise
trimmed mean. A norm bound relative to the round's median update norm refuses updates far
larger than the honest ones; the median and the trimmed mean bound what the remaining
(sign-flipped, or subtly scaled) ones can do.
"""

from typing import List, Optional, Tuple, Union

import numpy as np

import anole

AGGREGATORS = ("mean", "median", "trimmed-mean")


def check(raw, round_: int, fingerprint: int, coordinates: int) -> Union[np.ndarray, str]:
    """The dense float32 update in ``raw`` (delta bytes), or why it is refused: unreadable
    (damaged, NaN or infinite values), another round, another model, another shape."""
    if not isinstance(raw, (bytes, bytearray)):
        return f"no delta in the reply (found {type(raw).__name__})"
    try:
        delta = anole.Delta.from_bytes(bytes(raw))
    except anole.Error as e:
        return f"unreadable delta: {e}"
    if delta.round != round_:
        return f"stale: answers round {delta.round}, this is round {round_}"
    if delta.fingerprint != fingerprint:
        return (
            f"wrong model: fingerprint {delta.fingerprint:#018x}, "
            f"this round's blob is {fingerprint:#018x}"
        )
    if delta.coordinates != coordinates:
        return f"wrong shape: {delta.coordinates} coordinates, the model has {coordinates}"
    dense = delta.to_dense()
    if not np.all(np.isfinite(dense)):  # Delta refuses these already; kept as a second guard
        return "non-finite values"
    return dense


def norm_filter(
    updates: List[np.ndarray], factor: float, max_norm: Optional[float]
) -> Tuple[List[int], List[Tuple[int, str]]]:
    """Indices of updates within the norm bound, and (index, reason) of the others. The bound
    is ``factor`` times the median norm of the round's updates, and at most ``max_norm``."""
    if not updates:
        return [], []
    norms = np.array([float(np.linalg.norm(u)) for u in updates])
    bound = factor * float(np.median(norms)) if factor > 0 else np.inf
    if max_norm is not None:
        bound = min(bound, max_norm)
    keep, refused = [], []
    for i, n in enumerate(norms):
        if n <= bound:
            keep.append(i)
        else:
            refused.append((i, f"norm {n:.4g} above the bound {bound:.4g}"))
    return keep, refused


def aggregate(updates: List[np.ndarray], how: str, trim: float = 0.2) -> np.ndarray:
    """Combine equal-length updates: ``mean``, coordinate-wise ``median``, or ``trimmed-mean``
    (per coordinate, drop the ``trim`` fraction of lowest and of highest values, average the
    rest)."""
    if not updates:
        raise ValueError("no update to aggregate")
    u = np.stack(updates).astype(np.float64)
    if how == "mean":
        out = u.mean(axis=0)
    elif how == "median":
        out = np.median(u, axis=0)
    elif how == "trimmed-mean":
        if not 0.0 <= trim < 0.5:
            raise ValueError(f"trim fraction {trim} must be in [0, 0.5)")
        k = int(np.floor(trim * len(updates)))
        s = np.sort(u, axis=0)
        out = s[k : len(updates) - k].mean(axis=0)
    else:
        raise ValueError(f"unknown aggregator {how!r}: one of {', '.join(AGGREGATORS)}")
    return out.astype(np.float32)

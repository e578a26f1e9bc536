"""Learning-curve compression: one number per (partial) learning curve.

Notation (shared by the whole ``_model`` package):

* ``t_lo``, ``t_hi``: the smallest and largest step of the budget (``min_resource`` and
  ``max_resource``).
* A curve is a pair ``(steps, values)``, sorted by step, already oriented so that higher is better
  and affinely normalised (see :func:`normalise_curves`).
* Steps are mapped onto BOIL's fixed grid over the *full* budget by their value,
  ``z = -6 + 12 * (step - t_lo) / (t_hi - t_lo)``, so a short curve is weighted by where it sits in
  the full budget, sparse reporting (every k steps) lands on the same grid points as dense
  reporting, and steps may start at 0 or at 1.
* Logistic weights ``w(z) = 1 / (1 + exp(-g0 * (z - m0)))`` with midpoint ``m0`` and growth ``g0``.

The compression is the late-weighted average ``sum_i w_i r_i / sum_i w_i``: it keeps BOIL's
logistic preference for late, stable progress but, unlike the published score (which drops a
burn-in and averages ``w_i r_i``), does not vanish for short runs. :func:`compress` works on
padded batches and is differentiable in ``m0`` and ``g0``; a curve of more than
``MAX_POINTS`` reports is represented by ``MAX_POINTS`` of them, evenly spread over its steps
(the last one kept), so a batch never grows with the length of training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


M0_BOUNDS = (-2.0, 3.0)
G0_BOUNDS = (0.5, 2.0)
DEFAULT_M0 = 0.0
DEFAULT_G0 = 1.0
MAX_POINTS = 256
# Finite values are clipped to +-_HUGE, so that the difference of any two (the range) is finite.
_HUGE = 1e307


def step_to_grid(steps: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
    """Map step values onto BOIL's logistic grid ``[-6, 6]`` over the full budget."""
    span = t_hi - t_lo
    if span <= 0:
        return np.full(np.shape(steps), 6.0)
    return -6.0 + 12.0 * (np.asarray(steps, dtype=np.float64) - t_lo) / span


def logistic_weights(z: np.ndarray, m0: float, g0: float) -> np.ndarray:
    """Logistic weights ``1 / (1 + exp(-g0 (z - m0)))``."""
    return 1.0 / (1.0 + np.exp(-g0 * (np.asarray(z, dtype=np.float64) - m0)))


def score(
    steps: np.ndarray,
    values: np.ndarray,
    t_lo: float,
    t_hi: float,
    m0: float = DEFAULT_M0,
    g0: float = DEFAULT_G0,
) -> float:
    """Reference (numpy, unbatched) compression of one whole curve; see the module docstring."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("Cannot compress an empty curve.")
    w = logistic_weights(step_to_grid(steps, t_lo, t_hi), m0, g0)
    return float(np.sum(w * values) / np.sum(w))


def thin(length: int) -> np.ndarray:
    """Indices of the points that represent a curve prefix of ``length`` points: all of them, or
    ``MAX_POINTS`` evenly spread ones with the first and the last."""
    if length <= MAX_POINTS:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, MAX_POINTS).round().astype(np.int64))


class PaddedCurves:
    """Prefixes of curves as padded tensors, ready for batched compression.

    Row ``p`` holds the first ``lengths[p]`` points of one curve (or the ``MAX_POINTS`` of them
    that :func:`thin` keeps): values and grid positions, the rest padding with ``mask == False``.
    """

    def __init__(
        self,
        curves: Sequence[tuple[np.ndarray, np.ndarray]],
        lengths: Sequence[int],
        t_lo: float,
        t_hi: float,
    ) -> None:
        n = len(lengths)
        kept = [thin(length) for length in lengths]
        width = max((k.size for k in kept), default=1)
        values = np.zeros((n, width))
        z = np.zeros((n, width))
        mask = np.zeros((n, width), dtype=bool)
        for p, ((steps, vals), idx) in enumerate(zip(curves, kept, strict=True)):
            values[p, : idx.size] = vals[idx]
            z[p, : idx.size] = step_to_grid(steps[idx], t_lo, t_hi)
            mask[p, : idx.size] = True
        self.values = torch.from_numpy(values)
        self.z = torch.from_numpy(z)
        self.mask = torch.from_numpy(mask)
        self.lengths = torch.as_tensor(np.asarray(lengths, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


def compress(curves: PaddedCurves, m0: torch.Tensor, g0: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable compression of every row of ``curves``; returns shape ``(P,)``."""
    w = torch.sigmoid(g0 * (curves.z - m0)) * curves.mask
    return (w * curves.values).sum(-1) / w.sum(-1).clamp_min(1e-300)


def normalise_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], float, float]:
    """Affinely map all curve values to ``[0, 1]`` by the observed finite range.

    Values must already be oriented (higher is better). Non-finite values follow the package's
    policy: ``-inf`` and ``NaN`` become the worst finite value observed (0 after scaling) and
    ``+inf`` the best (1). Finite values beyond ``+-1e307`` are clipped to it, so the range
    ``high - low`` is finite (at most ``2e307``) and nothing here can overflow; no value is
    squared before it is in ``[0, 1]``. The map is monotone: a larger value never maps below a
    smaller one. Returns the scaled curves, the ``low`` end and the ``span`` of the range used
    (the metric is ``low + scaled * span``).
    """
    clipped = [
        (s, np.where(np.isfinite(v), np.clip(v, -_HUGE, _HUGE), v))
        for s, v in ((s, np.asarray(v, dtype=np.float64)) for s, v in curves)
    ]
    finite = [v[np.isfinite(v)] for _, v in clipped]
    all_finite = np.concatenate(finite) if finite else np.zeros(0)
    if all_finite.size == 0:
        low, high = 0.0, 1.0
    else:
        low, high = float(all_finite.min()), float(all_finite.max())
    span = high - low if high > low else 1.0
    out = []
    for steps, values in clipped:
        v = np.where(np.isnan(values), low, values)
        v = np.clip(v, low, high)
        # |v - low| <= 2e307 (finite); the quotient lies in [0, 1] up to rounding: clip it there.
        out.append((steps, np.clip((v - low) / span, 0.0, 1.0)))
    return out, low, span

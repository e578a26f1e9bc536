"""Optuna distributions <-> the unit cube.

Every numerical parameter becomes one coordinate in ``[0, 1]`` (in log space when ``log=True``).
Integer and stepped parameters are widened by half a step on each side, so that every grid point
owns a cell of equal width, and are rounded back to the grid when decoded. A categorical parameter
becomes one coordinate holding its choice index; the GP kernel treats it by equality (Hamming), so
choices are never ordered.

This module is the only one of ``_model`` that knows Optuna's distribution classes; it takes and
returns plain dictionaries and arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


class SearchSpace:
    """Encoder of a fixed set of Optuna distributions.

    Args:
        distributions:
            Parameter name to distribution. Names are kept in sorted order.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.names = sorted(distributions)
        self.distributions = [distributions[n] for n in self.names]
        d = len(self.names)
        self.is_categorical = np.zeros(d, dtype=bool)
        self.n_choices = np.zeros(d, dtype=np.int64)
        self._low = np.zeros(d)
        self._high = np.ones(d)
        self._step = np.zeros(d)
        self._log = np.zeros(d, dtype=bool)
        for i, dist in enumerate(self.distributions):
            if isinstance(dist, CategoricalDistribution):
                self.is_categorical[i] = True
                self.n_choices[i] = len(dist.choices)
            elif isinstance(dist, (FloatDistribution, IntDistribution)):
                self._log[i] = dist.log
                step = dist.step if dist.step is not None else 0.0
                self._step[i] = float(step)
                low, high = float(dist.low), float(dist.high)
                if dist.log:
                    pad = 0.5 if isinstance(dist, IntDistribution) else 0.0
                    low, high = math.log(low - pad), math.log(high + pad)
                else:
                    low, high = low - 0.5 * step, high + 0.5 * step
                self._low[i], self._high[i] = low, high
            else:
                raise ValueError(
                    f"Unsupported distribution {dist!r} for parameter {self.names[i]!r}."
                )

    @property
    def dim(self) -> int:
        return len(self.names)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encode one parameter dictionary as a vector of length :attr:`dim`."""
        x = np.empty(self.dim)
        for i, (name, dist) in enumerate(zip(self.names, self.distributions, strict=False)):
            value = params[name]
            if self.is_categorical[i]:
                assert isinstance(dist, CategoricalDistribution)
                x[i] = dist.to_internal_repr(value)
                continue
            v = math.log(value) if self._log[i] else float(value)
            span = self._high[i] - self._low[i]
            x[i] = (v - self._low[i]) / span if span > 0 else 0.5
        return x

    def encode_many(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([self.encode(p) for p in params]).reshape(len(params), self.dim)

    def round(self, x: np.ndarray) -> np.ndarray:
        """Snap encoded vectors (shape ``(..., dim)``) onto the values they decode to."""
        out = np.array(x, dtype=np.float64, copy=True)
        for i in range(self.dim):
            if self.is_categorical[i]:
                out[..., i] = np.clip(np.round(out[..., i]), 0, self.n_choices[i] - 1)
                continue
            span = self._high[i] - self._low[i]
            if span <= 0:
                out[..., i] = 0.5
                continue
            raw = self._low[i] + np.clip(out[..., i], 0.0, 1.0) * span
            if self._log[i]:
                raw = np.exp(raw)
            raw = self._snap(i, raw)
            v = np.log(raw) if self._log[i] else raw
            out[..., i] = (v - self._low[i]) / span
        return out

    def _snap(self, i: int, raw: np.ndarray) -> np.ndarray:
        dist = self.distributions[i]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        if isinstance(dist, IntDistribution) or self._step[i] > 0:
            step = self._step[i] if self._step[i] > 0 else 1.0
            raw = dist.low + np.round((raw - dist.low) / step) * step
        return np.clip(raw, dist.low, dist.high)

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """Decode one encoded vector into a parameter dictionary of valid values."""
        params: dict[str, Any] = {}
        for i, (name, dist) in enumerate(zip(self.names, self.distributions, strict=False)):
            if self.is_categorical[i]:
                assert isinstance(dist, CategoricalDistribution)
                idx = int(np.clip(round(float(x[i])), 0, self.n_choices[i] - 1))
                params[name] = dist.to_external_repr(idx)
                continue
            span = self._high[i] - self._low[i]
            raw = self._low[i] + float(np.clip(x[i], 0.0, 1.0)) * span
            if self._log[i]:
                raw = math.exp(raw)
            snapped = float(self._snap(i, np.asarray(raw)))
            params[name] = int(round(snapped)) if isinstance(dist, IntDistribution) else snapped
        return params

    def sample(self, n: int, rng: np.random.RandomState) -> np.ndarray:
        """``n`` uniform draws in the encoded space (categoricals as random indices)."""
        x = rng.uniform(size=(n, self.dim))
        for i in np.flatnonzero(self.is_categorical):
            x[:, i] = rng.randint(self.n_choices[i], size=n)
        return x

    def same(self, X: np.ndarray, x: np.ndarray) -> np.ndarray:  # TEMPORARY
        return np.max(np.abs(np.asarray(X).reshape(-1, self.dim) - x), axis=1) <= 1e-9

    def neighbours(self, x: np.ndarray) -> np.ndarray:  # TEMPORARY
        return np.zeros((0, self.dim))

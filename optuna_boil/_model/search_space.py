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


SAME_FLOAT = 1e-3  # Continuous floats closer than this (unit cube) are one configuration.


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
        # Integer and stepped coordinates: whether one is a grid, and its number of grid points.
        self._is_grid = np.zeros(d, dtype=bool)
        self._n_grid = np.zeros(d, dtype=np.int64)
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
                if isinstance(dist, IntDistribution) or step > 0:
                    self._is_grid[i] = True
                    self._n_grid[i] = int(round((float(dist.high) - float(dist.low)) / step)) + 1
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
            out[..., i] = self._to_unit(i, self._snap(i, self._to_raw(i, out[..., i])))
        return out

    def _to_raw(self, i: int, u: np.ndarray) -> np.ndarray:
        """Unit-cube coordinate ``i`` (clipped to ``[0, 1]``) to the parameter's scale."""
        raw = self._low[i] + np.clip(u, 0.0, 1.0) * (self._high[i] - self._low[i])
        return np.exp(raw) if self._log[i] else raw

    def _to_unit(self, i: int, raw: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_to_raw` for a numerical coordinate with a positive span."""
        v = np.log(raw) if self._log[i] else raw
        return (v - self._low[i]) / (self._high[i] - self._low[i])

    def _grid_index(self, i: int, u: np.ndarray) -> np.ndarray:
        """Index of the grid point that unit-cube coordinate ``i`` decodes to (as float)."""
        dist = self.distributions[i]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        step = self._step[i] if self._step[i] > 0 else 1.0
        k = np.round((self._to_raw(i, u) - dist.low) / step)
        return np.clip(k, 0, self._n_grid[i] - 1)

    def _grid_unit(self, i: int, k: np.ndarray) -> np.ndarray:
        """Unit-cube value that :meth:`round` gives grid point(s) ``k`` of coordinate ``i``."""
        dist = self.distributions[i]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        step = self._step[i] if self._step[i] > 0 else 1.0
        # The same operations as :meth:`_snap`, so the values are bit for bit those of round().
        raw = np.clip(dist.low + np.asarray(k, dtype=np.float64) * step, dist.low, dist.high)
        return self._to_unit(i, raw)

    def same(self, X: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Which rows of ``X`` are the same configuration as ``x``.

        Categorical coordinates match on their (rounded) choice index, integer and stepped ones on
        their grid point (neighbouring grid points never match, however wide the range),
        continuous floats within ``SAME_FLOAT`` (a thousandth of the range, in the unit cube):
        runs that close are the same training for any practical purpose, and parallel workers
        must not spend two runs on them.

        Args:
            X: Encoded vectors, shape ``(n, dim)`` (``n`` may be 0).
            x: One encoded vector, shape ``(dim,)``.

        Returns:
            Boolean mask of shape ``(n,)``.
        """
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        x = np.asarray(x, dtype=np.float64).reshape(self.dim)
        mask = np.ones(len(X), dtype=bool)
        for i in range(self.dim):
            if self.is_categorical[i]:
                top = self.n_choices[i] - 1
                mask &= np.clip(np.round(X[:, i]), 0, top) == np.clip(np.round(x[i]), 0, top)
            elif self._high[i] - self._low[i] <= 0:
                continue  # A single value: every vector decodes to it.
            elif self._is_grid[i]:
                mask &= self._grid_index(i, X[:, i]) == self._grid_index(i, x[i : i + 1])
            else:
                mask &= np.abs(X[:, i] - x[i]) <= SAME_FLOAT
        return mask

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Encoded vectors that differ from ``x`` in exactly one discrete coordinate.

        For every integer or stepped coordinate, the grid points one step below and one step
        above the one ``x`` decodes to (those inside the range); for every categorical one, each
        other choice. Continuous floats contribute none. The changed coordinate holds exactly the
        value :meth:`round` gives that grid point or choice; the others are copied from ``x``.

        Args:
            x: One encoded vector, shape ``(dim,)``.

        Returns:
            Array of shape ``(k, dim)``; ``(0, dim)`` when there are no discrete coordinates.
        """
        x = np.asarray(x, dtype=np.float64).reshape(self.dim)
        rows: list[np.ndarray] = []
        for i in range(self.dim):
            if self.is_categorical[i]:
                current = np.clip(np.round(x[i]), 0, self.n_choices[i] - 1)
                values = np.arange(self.n_choices[i], dtype=np.float64)
                values = values[values != current]
            elif self._is_grid[i]:
                k = float(self._grid_index(i, x[i : i + 1])[0])
                ks = np.array([k - 1.0, k + 1.0])
                ks = ks[(ks >= 0) & (ks <= self._n_grid[i] - 1)]
                values = self._grid_unit(i, ks)
            else:
                continue
            block = np.tile(x, (len(values), 1))
            block[:, i] = values
            rows.append(block)
        if not rows:
            return np.empty((0, self.dim))
        return np.vstack(rows)

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

"""Cost of training a configuration to a step.

``cost(x, t) = rate(x) * t + overhead`` with a log-linear per-step rate
``rate(x) = exp(theta_0 + theta . f(x))`` (``f``: the numerical coordinates and a one-hot of each
categorical) and a non-negative fixed overhead. Continuing a run from ``t0`` to ``t1`` costs only
``rate(x) * (t1 - t0)``.

When cost is counted in steps (the default of the package) the model is exact and not fitted:
``rate = 1`` and ``overhead = 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.optimize
import torch


_FLOOR = 0.5  # Half a step: no run is free.


class CostModel:
    """Per-step cost as a function of x plus a fixed overhead.

    Args:
        is_categorical:
            Which encoded coordinates are categorical indices.
        n_choices:
            Number of choices of each categorical coordinate.
    """

    def __init__(self, is_categorical: np.ndarray, n_choices: np.ndarray) -> None:
        self.is_categorical = is_categorical
        self.n_choices = n_choices
        n_features = int((~is_categorical).sum() + n_choices[is_categorical].sum())
        self.theta = np.zeros(1 + n_features)
        self.overhead = 0.0

    def _features(self, x: np.ndarray) -> np.ndarray:
        cols = [np.ones((x.shape[0], 1))]
        for i in range(x.shape[1]):
            if self.is_categorical[i]:
                idx = np.clip(np.round(x[:, i]).astype(int), 0, self.n_choices[i] - 1)
                cols.append(np.eye(int(self.n_choices[i]))[idx])
            else:
                cols.append(x[:, i : i + 1])
        return np.hstack(cols)

    def fit(self, x: np.ndarray, t: np.ndarray, cost: np.ndarray, ridge: float = 1e-2) -> None:
        """Fit from trials' cumulative ``cost`` at their last step ``t`` (``x`` encoded).

        Rows with a non-finite or non-positive cost or step are ignored. With fewer than two
        usable rows the rate is the median cost per step and the overhead zero.
        """
        ok = np.isfinite(cost) & (cost > 0) & np.isfinite(t) & (t > 0)
        x, t, cost = x[ok], t[ok], cost[ok]
        self.theta = np.zeros_like(self.theta)
        self.overhead = 0.0
        if cost.size == 0:
            return
        self.theta[0] = float(np.log(np.median(cost / t)))
        if cost.size < 3:
            return
        F = self._features(x)
        log_cost = np.log(cost)

        def residuals(p: np.ndarray) -> np.ndarray:
            pred = np.exp(F @ p[:-1]) * t + np.exp(p[-1])
            return np.concatenate([np.log(pred) - log_cost, np.sqrt(ridge) * p[1:-1]])

        start = np.concatenate([self.theta, [np.log(1e-3 * float(np.median(cost)))]])
        res = scipy.optimize.least_squares(residuals, start, method="trf", max_nfev=200)
        # A failed least-squares fit keeps the median per-step rate (a valid, simpler model).
        if res.success and np.all(np.isfinite(res.x)) and np.isfinite(res.cost):
            self.theta, self.overhead = res.x[:-1], float(np.exp(res.x[-1]))

    def rate(self, x: np.ndarray) -> np.ndarray:
        """Per-step cost at encoded ``x`` (shape ``(n, d)``)."""
        return np.exp(self._features(x) @ self.theta)

    def rate_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable :meth:`rate` (categorical coordinates are treated as fixed)."""
        theta = torch.from_numpy(self.theta)
        out = theta[0] * torch.ones(x.shape[:-1], dtype=x.dtype)
        j = 1
        for i in range(x.shape[-1]):
            if self.is_categorical[i]:
                k = int(self.n_choices[i])
                idx = x[..., i].detach().round().clamp(0, k - 1).long()
                out = out + theta[j : j + k][idx]
                j += k
            else:
                out = out + theta[j] * x[..., i]
                j += 1
        return out.exp()


class TrainingCost:
    """Cost of training ``x`` to the step of each encoded row, in steps of a full run.

    With cost in steps this is the number of steps (from ``start`` when a run continues). With a
    fitted :class:`CostModel` (wall clock, or costs the user reported) it is
    ``t_full * c(x, t) / c(x, t_full)``: the cost model decides how long to train (the overhead
    of starting a run against its per-step cost), never *which* configuration, so
    configurations that are cheap per step but worse do not win on cost. Half a step is the
    least any run costs.

    Args:
        steps_of: The step of each row's step coordinate (differentiable, unrounded).
        t_full: The full budget, counted in steps trained.
        offset: 1 when steps start at 0 (step ``s`` means ``s + 1`` steps trained), else 0.
        model: The fitted cost model, or :obj:`None` to count steps.
        start: The step a continued run starts from (only the rest costs), or :obj:`None`.
        aware: :obj:`False` makes every run cost the same (1).
    """

    def __init__(
        self,
        steps_of: Callable[[torch.Tensor], torch.Tensor],
        t_full: float,
        offset: float,
        model: CostModel | None,
        start: float | None = None,
        aware: bool = True,
    ) -> None:
        self.steps_of = steps_of
        self.t_full = float(t_full)
        self.offset = float(offset)
        self.model = model
        self.start = start
        self.aware = aware

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if not self.aware:
            return torch.ones(X.shape[0], dtype=X.dtype)
        t = self.steps_of(X[:, -1]) + self.offset
        done = 0.0 if self.start is None else self.start + self.offset
        if self.model is None:
            return (t - done).clamp_min(_FLOOR)
        rate = self.model.rate_torch(X[:, :-1])
        full = rate * self.t_full + self.model.overhead
        c = rate * (t - done) + (self.model.overhead if self.start is None else 0.0)
        return (self.t_full * c / full).clamp_min(_FLOOR)

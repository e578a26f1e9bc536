"""A fitted BOIL model: the numbers behind every decision, in numpy.

:class:`FittedModel` holds the data, the GP posterior (with pending runs as fantasies) and the
cost model, and answers numeric questions: predictions, the value per unit of cost of a new run
of ``x`` to ``t`` (:meth:`FittedModel.acquisition`, :meth:`FittedModel.search`) and of having
``x`` fully trained (:meth:`FittedModel.delivery`). What to do with those numbers (new run,
retrain, deliver, continue, stop) is the policy's (:mod:`optuna_boil._policy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import scipy.special
import torch

from optuna_boil._model import optim as _optim
from optuna_boil._model.acquisition import AugmentedLogEI
from optuna_boil._model.acquisition import CostAware
from optuna_boil._model.acquisition import LogEIAtFull
from optuna_boil._model.cost import CostModel
from optuna_boil._model.cost import TrainingCost
from optuna_boil._model.gp import JointGP


if TYPE_CHECKING:
    from optuna_boil._model.model import BOILModel
    from optuna_boil._model.model import CurveData


class FittedModel:
    """A fitted BOIL model.

    Args:
        model: The model that was fitted (budget range, search space, settings).
        data: The curve data it was fitted to.
        gp: The fitted GP.
        points: The GP's points as ``(index into data, curve prefix length)``, real ones first.
        cost: The cost model (used when cost is not counted in steps).
        low: The oriented metric's value at score 0.
        span: The oriented metric's range (score 1 is ``low + span``).
    """

    def __init__(
        self,
        model: BOILModel,
        data: CurveData,
        gp: JointGP,
        points: list[tuple[int, int]],
        cost: CostModel,
        low: float,
        span: float,
    ) -> None:
        self.model = model
        self.data = data
        self.gp = gp
        self.points = points
        self.cost = cost
        self.low = low
        self.span = span
        self.offset = model._step_offset(data)
        self.n_real = len({i for i, _ in points})
        self.n_augmented = len(points) - self.n_real
        self.posterior = gp.posterior()
        with torch.no_grad():
            # The incumbent of the acquisition: the best posterior mean at t_hi among the
            # configurations observed so far.
            X_real = self.posterior.X[: self.n_real]
            self.best = float(self.posterior.predict_pair(X_real, 1.0)[0].max())
        self.delivered = self._delivered_incumbent()
        self.extra_pending: list[tuple[np.ndarray, float]] = []
        self._calibration: tuple[float, float] | None = None
        self._unconditioned = self.posterior
        self._pending: dict[int, np.ndarray] = {}  # running runs' fantasies, by index
        self._add_fantasies()

    def _delivered_incumbent(self) -> float:
        """Best posterior mean at ``t_hi`` (GP units) of the fully trained configurations; the
        worst of all observed configurations while none is fully trained."""
        full = self.fully_trained()
        observed = full if full.size else np.flatnonzero([s.size > 0 for s in self.data.steps])
        X = torch.from_numpy(np.column_stack([self.data.x[observed], np.ones(observed.size)]))
        with torch.no_grad():
            mean = self.posterior.predict(X)[0].numpy()
        return float(mean.max() if full.size else mean.min())

    def _add_fantasies(self) -> None:
        """Condition on pending runs at their budgets (posterior-mean fantasies)."""
        d = self.data
        for i in np.flatnonzero(d.running & np.isfinite(d.budgets)):
            last = d.steps[i][-1] if d.steps[i].size else -np.inf
            if d.budgets[i] > last:
                self._pending[int(i)] = np.append(d.x[i], self.model.scale_t(d.budgets[i]))
        self._condition_on(list(self._pending.values()))

    def drop_pending(self, index: int) -> None:
        """Forget run ``index``'s fantasy: deciding whether a running run trains on, the rest of
        its budget is what is being decided, not a pending observation."""
        if self._pending.pop(index, None) is None:
            return
        rows = list(self._pending.values())
        rows += [np.append(x, self.model.scale_t(b)) for x, b in self.extra_pending]
        self.posterior = self._unconditioned
        self._condition_on(rows)

    def add_pending(self, x: np.ndarray, budget: float) -> None:
        """Treat one more run of ``x`` to ``budget`` as pending (e.g. a worker's fresh choice)."""
        self.extra_pending.append((np.asarray(x, dtype=np.float64), float(budget)))
        self._condition_on([np.append(x, self.model.scale_t(budget))])

    def _condition_on(self, rows: list[np.ndarray]) -> None:
        if rows:
            self.posterior = self.posterior.conditioned(torch.from_numpy(np.array(rows)))

    def hyperparameters(self) -> dict[str, Any]:
        return self.gp.hyperparameters()

    def fully_trained(self) -> np.ndarray:
        """Indices of the runs trained fully (:meth:`~.model.BOILModel.fully_trained`)."""
        return self.model.fully_trained(self.data)

    # Predictions -------------------------------------------------------------------------------

    def predict(self, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of the compressed score at ``(x, t)``.

        The values are in the ``[0, 1]``-scaled "higher is better" units of the curves (see
        :meth:`to_metric`).
        """
        X = torch.from_numpy(np.column_stack([np.atleast_2d(x), self.model.scale_t(t)]))
        with torch.no_grad():
            mean, var = self.posterior.predict(X)
        y_std = self.gp.y_std
        return (mean.numpy() * y_std + self.gp.y_mean), var.sqrt().numpy() * y_std

    def to_metric(self, score: np.ndarray | float) -> np.ndarray:
        """Scaled score back to the oriented metric's units."""
        return self.low + np.asarray(score) * self.span

    def final_value(self, score: np.ndarray | float) -> np.ndarray:
        """Predicted compressed scores at ``t_hi`` (scaled units) as values at ``t_hi``, in the
        oriented metric's units, within the range of the values observed.

        A compressed score is a late-weighted average of a curve, so it lies below the final
        value of a curve that still rises. The map is the least-squares line from the
        compressed scores of the GP's fully trained runs to their final values (from every
        run's score and last value while fewer than 3 are fully trained), with a slope of at
        least 0 (a higher score never means a lower value); the identity while there are fewer
        than 3 runs or their scores do not differ.
        """
        if self._calibration is None:
            self._calibration = self._fit_calibration()
        a, b = self._calibration
        scaled = np.clip(a + b * np.asarray(score, dtype=np.float64), 0.0, 1.0)
        return self.to_metric(scaled)

    def _fit_calibration(self) -> tuple[float, float]:
        """Intercept and slope of :meth:`final_value`'s line, in scaled units."""
        with torch.no_grad():
            scores = self.gp.compression(self.gp.curves)[: self.n_real].numpy()
        runs = np.array([i for i, _ in self.points[: self.n_real]], dtype=np.int64)
        last = np.array([self._scaled_last(int(i)) for i in runs])
        full = np.isin(runs, self.fully_trained())
        use = full if full.sum() >= 3 else np.ones(runs.size, dtype=bool)
        s, v = scores[use], last[use]
        if s.size < 3 or np.ptp(s) <= 1e-12:
            return 0.0, 1.0
        b = max(float(np.polyfit(s, v, 1)[0]), 0.0)
        return float(v.mean() - b * s.mean()), b

    def _scaled_last(self, index: int) -> float:
        """Run ``index``'s last value in ``[0, 1]``-scaled units (the curves' non-finite policy:
        ``NaN`` and ``-inf`` are the worst value, ``+inf`` the best)."""
        value = float(self.data.values[index][-1])
        if np.isnan(value):
            return 0.0
        return float(np.clip((value - self.low) / self.span, 0.0, 1.0))

    def log_beats_delivered(self, X: np.ndarray) -> np.ndarray:
        """Log probability that each row of ``X``, fully trained, beats the best fully trained
        configuration (posterior means at ``t_hi``; the worst observed configuration while none
        is fully trained)."""
        X = np.atleast_2d(X)
        rows = torch.from_numpy(np.column_stack([X, np.ones(len(X))]))
        with torch.no_grad():
            mean, var = self.posterior.predict(rows)
        z = (mean - self.delivered) / var.clamp_min(1e-12).sqrt()
        return scipy.special.log_ndtr(z.numpy())

    # Values per unit of cost -------------------------------------------------------------------

    def _cost(self, start: float | None = None) -> TrainingCost:
        m = self.model
        return TrainingCost(
            m.unscale_t_torch,
            m.t_hi + self.offset,
            self.offset,
            None if m.cost_in_steps else self.cost,
            start,
            aware=m.config.cost_aware,
        )

    def _new_run(self) -> CostAware:
        return CostAware(AugmentedLogEI(self.posterior, self.best), self._cost())

    def acquisition(self, x: np.ndarray, t: float) -> float:
        """Log value of a new run of ``x`` to step ``t`` per unit of cost: the expected
        improvement of the score at the full budget, weighted by how much the run tells about
        it (:class:`~.acquisition.AugmentedLogEI`)."""
        row = torch.from_numpy(np.append(x, self.model.scale_t(t))[None])
        with torch.no_grad():
            return float(self._new_run()(row)[0])

    def delivery(self, X: np.ndarray, start: float | None = None) -> np.ndarray:
        """Log expected improvement of *having* each row of ``X`` trained to ``t_hi``, per unit
        of cost.

        The incumbent is the best fully trained configuration (posterior mean at ``t_hi``), the
        result a user of the study gets; while there is none, the worst observed configuration.
        ``start`` is where a continued run starts (only the rest of the training costs).
        """
        X = np.atleast_2d(X)
        rows = torch.from_numpy(np.column_stack([X, np.ones(len(X))]))
        acqf = CostAware(LogEIAtFull(self.posterior, self.delivered), self._cost(start))
        with torch.no_grad():
            return acqf(rows).numpy()

    def search(
        self,
        rng: np.random.RandomState,
        fixed_t: int | None = None,
        fixed_x: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maximise :meth:`acquisition` over ``(x, t)`` (or ``x`` at ``fixed_t``, or ``t`` for
        ``fixed_x``).

        Returns:
            Every candidate the search saw, best first: configurations ``(m, d)``, steps
            ``(m,)`` (reported steps within ``[t_new_lo, t_hi]``) and log values ``(m,)``.
        """
        m, cfg = self.model, self.model.config
        space, dim = m.space, m.space.dim

        def sample(n: int, r: np.random.RandomState) -> np.ndarray:
            x = space.sample(n, r) if fixed_x is None else np.tile(fixed_x, (n, 1))
            u = r.uniform(size=(n, 1)) if fixed_t is None else np.full((n, 1), m.scale_t(fixed_t))
            return np.hstack([x, u])

        def round_fn(X: np.ndarray) -> np.ndarray:
            out = X.copy()
            out[:, :dim] = space.round(X[:, :dim]) if fixed_x is None else fixed_x
            t = m.unscale_t(X[:, dim]) if fixed_t is None else np.full(len(X), fixed_t)
            out[:, dim] = m.scale_t(t)
            return out

        def neighbours(row: np.ndarray) -> np.ndarray:
            near = space.neighbours(row[:dim])
            return np.column_stack([near, np.full(len(near), row[dim])])

        continuous = np.append(~space.is_categorical, fixed_t is None)
        if fixed_x is not None:
            continuous[:dim] = False
        X, f = _optim.maximise(
            self._new_run(),
            sample,
            round_fn,
            continuous,
            rng,
            cfg.n_samples if fixed_x is None else min(cfg.n_samples, 64),
            cfg.n_local,
            neighbours=neighbours if fixed_x is None else None,
        )
        return X[:, :dim], m.unscale_t(X[:, dim]).astype(np.int64), f

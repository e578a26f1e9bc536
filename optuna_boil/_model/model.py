"""The BOIL model: from the study's curves to a fitted model.

One call to :meth:`BOILModel.fit` goes from curves to a :class:`~.fitted.FittedModel`:
curves -> orientation-free scaling -> (optional) subsampling to the GP size cap -> selective
augmentation -> joint fit of the GP and the compression -> fantasies for pending runs -> cost
model. Inputs are numpy arrays in the encoded space of :mod:`.search_space`; no Optuna object is
seen here.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import torch

from optuna_boil._model import augment as _augment
from optuna_boil._model import curve as _curve
from optuna_boil._model import fidelity as _fidelity
from optuna_boil._model.cost import CostModel
from optuna_boil._model.fitted import FittedModel
from optuna_boil._model.gp import JointGP
from optuna_boil._model.gp import kernel
from optuna_boil._model.search_space import SearchSpace


CANDIDATES_PER_CURVE = 6


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the model and of the policy that uses it.

    The switches that are on by default exist for ablations (see ``benchmarks/README.md``):

    Attributes:
        learn_compression: Fit the curve weighting ``(m0, g0)`` with the GP (else BOIL's
            fixed one).
        augmentation: Add selected earlier points of each curve to the GP.
        cost_aware: Value runs per unit of cost.
        max_gp_points: Most trials in the GP (the rest are subsampled).
        max_augmented: Most augmented points.
        max_log_cond: Log condition number the augmentation may reach.
        n_samples: Preliminary points of the acquisition search.
        n_local: Starts refined by the local search.
        n_random_restarts: Random restarts of a GP fit without a warm start.
        deliver_new: Train a new configuration to the full budget from the start when having
            it fully trained is worth more per unit of cost than the budget the acquisition
            chose.
        deliver_best: The observed configuration whose full training is worth most competes
            with the acquisition's choice (it is trained again from the start).
        first_full: While nothing is fully trained (or being trained to the full budget), the
            next new run is a full one, so ``study.best_trial`` exists early.
        random_fraction: Share of the new configurations drawn at random instead of by the
            acquisition (random interleaving, as in SMAC), each with the budget the policy
            gives that configuration: a model that settled on one region still sees others.
    """

    learn_compression: bool = True
    augmentation: bool = True
    cost_aware: bool = True
    max_gp_points: int = 200
    max_augmented: int = 64
    max_log_cond: float = 15.0
    n_samples: int = 512
    n_local: int = 8
    n_random_restarts: int = 2
    deliver_new: bool = True
    deliver_best: bool = True
    first_full: bool = True
    random_fraction: float = 0.2


@dataclass
class CurveData:
    """What the storage holds, per trial, in the model's terms.

    Attributes:
        x: Encoded parameters, ``(n, d)``.
        steps: Sorted step values of each trial's reports (possibly empty).
        values: The matching values, oriented so that higher is better (NaN/inf allowed).
        costs: Cumulative cost at the last step, ``(n,)`` (NaN when unknown).
        running: Whether each trial is still running.
        budgets: The step budget each trial currently has, ``(n,)`` (NaN when none).
        numbers: The trials' numbers, ``(n,)`` (may be empty when unknown).
        failed: Whether each trial ended FAIL, ``(n,)`` (empty: none failed). A failed run is
            never fully trained, whatever step it reached.
    """

    x: np.ndarray
    steps: list[np.ndarray]
    values: list[np.ndarray]
    costs: np.ndarray
    running: np.ndarray
    budgets: np.ndarray
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    failed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.x.shape[0])


class BOILModel:
    """Fits the BOIL model to curve data.

    Args:
        space: Encoder of the search space.
        t_lo: Smallest budget (step value).
        t_hi: Largest budget (step value).
        config: Model settings.
        cost_in_steps: Count cost in steps (exact, not fitted) instead of using ``costs``.
        t_new_lo: Smallest budget proposed for a new configuration (defaults to ``t_lo``).
    """

    def __init__(
        self,
        space: SearchSpace,
        t_lo: int,
        t_hi: int,
        config: ModelConfig = ModelConfig(),
        cost_in_steps: bool = True,
        t_new_lo: int | None = None,
    ) -> None:
        if t_hi < t_lo:
            raise ValueError(f"t_hi={t_hi} must not be smaller than t_lo={t_lo}.")
        self.space = space
        self.t_lo = int(t_lo)
        self.t_hi = int(t_hi)
        self.config = config
        self.cost_in_steps = cost_in_steps
        self._t_new_lo = int(min(max(t_new_lo, t_lo), t_hi)) if t_new_lo is not None else t_lo
        self.t_new_lo = self._t_new_lo
        self.step_interval = 1
        self.belief = _fidelity.Belief([])

    def scale_t(self, t: np.ndarray | float) -> np.ndarray:
        """Steps to the GP's step coordinate: ``log(1 + t - t_lo) / log(1 + t_hi - t_lo)``.

        Learning curves change fastest early on; on a log scale of the steps they are close to
        stationary, which is what a squared-exponential kernel over ``t`` assumes.
        """
        span = self.t_hi - self.t_lo
        t = np.asarray(t, dtype=np.float64)
        if span <= 0:
            return np.zeros_like(t)
        return np.log1p(np.maximum(t - self.t_lo, -0.5)) / np.log1p(span)

    def unscale_t(self, u: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`scale_t`, snapped to a reported step within ``[t_new_lo, t_hi]``."""
        t = self.t_lo + np.expm1(np.asarray(u) * np.log1p(self.t_hi - self.t_lo))
        return self.snap(np.clip(np.round(t), self.t_new_lo, self.t_hi))

    def snap(self, t: np.ndarray) -> np.ndarray:
        """Round budgets up to the steps that are actually reported (every ``step_interval``).

        A trial stops at its first report at or after its budget, so a budget between two
        reports would cost (and be modelled as) less training than it really gets.
        """
        k = np.ceil(np.asarray(t, dtype=np.float64) / self.step_interval)
        return np.minimum(np.maximum(k, 0) * self.step_interval, self.t_hi)

    def learn_step_grid(self, steps: list[np.ndarray]) -> None:
        """Infer the report grid from observed curves: every ``step_interval`` steps.

        The interval is the greatest common divisor of the gaps within curves *and* of the
        reported step values themselves, so it is right from a trial's first report (a trial
        stopped at its first report of step 10 shows no gap, but its step says "every 10").
        Steps counted from 0 or with a phase (5, 15, 25, ...) give a finer grid that still
        contains every reported step.
        """
        ints = [s.astype(np.int64) for s in steps if s.size and np.all(s == np.round(s))]
        if not ints:
            self.step_interval = 1
            return
        gaps = np.concatenate([np.diff(s) for s in ints] + [np.concatenate(ints)])
        gaps = np.abs(gaps[gaps != 0])
        self.step_interval = max(int(np.gcd.reduce(gaps)) if gaps.size else 1, 1)

    def fully_trained(self, data: CurveData) -> np.ndarray:
        """Indices of the runs that reached the last reported step of a full run (``t_hi``, or
        the last step of the report grid before it: 49 for reports every 7 steps up to 52) and
        did not fail."""
        last = self.t_hi - self.t_hi % self.step_interval
        failed = data.failed if data.failed.size == len(data) else np.zeros(len(data), dtype=bool)
        reached = np.array([s.size > 0 and s[-1] >= last for s in data.steps], dtype=bool)
        return np.flatnonzero(reached & ~failed)

    def learn_belief(self, data: CurveData) -> None:
        """How far looks are believed in this study (:mod:`.fidelity`), and with it the
        shortest budget of a new run: at least the first believed step."""
        self.belief = _fidelity.belief(
            data,
            self.fully_trained(data),
            self.t_lo,
            self.t_hi,
            # Snapped to a reported step: the start-up runs stop at their first report past it.
            int(self.snap(np.array(self._t_new_lo))),
        )
        look = int(self.snap(np.array(self.belief.look(self.t_lo, self.t_hi))))
        self.t_new_lo = max(self._t_new_lo, min(look, self.t_hi))

    def unscale_t_torch(self, u: torch.Tensor) -> torch.Tensor:
        """Differentiable, unrounded :meth:`unscale_t`."""
        return self.t_lo + torch.expm1(u * float(np.log1p(self.t_hi - self.t_lo)))

    def fit(
        self,
        data: CurveData,
        rng: np.random.RandomState,
        warm_start: dict[str, Any] | None = None,
    ) -> FittedModel:
        """Fit the model, warm-started from a previous :meth:`FittedModel.hyperparameters`."""
        cfg = self.config
        self.learn_step_grid(data.steps)
        self.learn_belief(data)
        has_data = np.array([s.size > 0 for s in data.steps], dtype=bool)
        if not has_data.any():
            raise ValueError("The model needs at least one trial with a reported value.")
        real = np.flatnonzero(has_data)
        scaled, low, span = _curve.normalise_curves(
            [(data.steps[i], data.values[i]) for i in real]
        )
        curves = {int(i): c for i, c in zip(real, scaled, strict=False)}
        real = self._subsample(real, curves, data, cfg.max_gp_points)
        # Real points: every kept trial at its last reported step.
        points = [(int(i), curves[int(i)][0].size) for i in real]
        gp = self._build_gp(data, curves, points)
        if warm_start is not None:
            try:
                gp.load_hyperparameters(warm_start)
            except (KeyError, TypeError, ValueError):
                warm_start = None
        if cfg.augmentation:
            extra = self._augment(gp, data, curves, points)
            if extra:
                points = points + extra
                gp.set_points(*self._gp_data(data, curves, points))
        # A warm start alone (the default start is the fallback inside ``fit`` if it fails);
        # without one, the default start plus a few random restarts. From the previous
        # decision's fit, 12 iterations end within 0.1 nats of the log posterior reached with
        # 25 (speed benchmark, 100 trials) at two thirds of the time.
        starts: list[dict[str, Any] | None] = [warm_start]
        n_random = 0 if warm_start is not None else cfg.n_random_restarts
        gp.fit(starts, rng, n_random, maxiter=12 if warm_start is not None else 100)
        cost = CostModel(self.space.is_categorical, self.space.n_choices)
        if not self.cost_in_steps:
            t_last = np.array([s[-1] if s.size else np.nan for s in data.steps])
            cost.fit(data.x, t_last + self._step_offset(data), data.costs)
        return FittedModel(self, data, gp, points, cost, low, span)

    @staticmethod
    def _step_offset(data: CurveData) -> float:
        """1 when steps start at 0 (step s means s + 1 steps trained), else 0."""
        firsts = [float(s[0]) for s in data.steps if s.size]
        return 1.0 if firsts and min(firsts) <= 0 else 0.0

    def _subsample(
        self,
        real: np.ndarray,
        curves: dict[int, Any],
        data: CurveData,
        cap: int,
    ) -> np.ndarray:
        """Keep at most ``cap`` trials: all running ones, the best third, then evenly spread."""
        if real.size <= cap:
            return real
        last = np.array([curves[int(i)][1][-1] for i in real])
        keep = set(int(i) for i in real[data.running[real]])
        for j in np.argsort(-last, kind="stable")[: cap // 3]:
            keep.add(int(real[j]))
        rest = [int(i) for i in real if int(i) not in keep]
        room = cap - len(keep)
        if room > 0 and rest:
            picks = np.unique(np.linspace(0, len(rest) - 1, room).round().astype(int))
            keep.update(rest[k] for k in picks)
        return np.array(sorted(keep))[:cap] if len(keep) > cap else np.array(sorted(keep))

    def _inputs(
        self, data: CurveData, curves: dict[int, Any], points: list[tuple[int, int]]
    ) -> np.ndarray:
        x = np.array([data.x[i] for i, _ in points]).reshape(len(points), self.space.dim)
        t = np.array([curves[i][0][length - 1] for i, length in points], dtype=np.float64)
        return np.column_stack([x, self.scale_t(t)])

    def _gp_data(
        self, data: CurveData, curves: dict[int, Any], points: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, _curve.PaddedCurves]:
        X = torch.from_numpy(self._inputs(data, curves, points))
        padded = _curve.PaddedCurves(
            [curves[i] for i, _ in points], [length for _, length in points], self.t_lo, self.t_hi
        )
        return X, padded

    def _build_gp(
        self, data: CurveData, curves: dict[int, Any], points: list[tuple[int, int]]
    ) -> JointGP:
        return JointGP(
            *self._gp_data(data, curves, points),
            self.space.is_categorical,
            self.config.learn_compression,
            float(np.log1p(max(self.t_hi - self.t_lo, 0))),
        )

    def _augment(
        self,
        gp: JointGP,
        data: CurveData,
        curves: dict[int, Any],
        points: list[tuple[int, int]],
    ) -> list[tuple[int, int]]:
        room = min(self.config.max_gp_points - len(points), self.config.max_augmented)
        if room <= 0:
            return []
        cand: list[tuple[int, int]] = []
        owner: list[int] = []
        caps = np.zeros(len(points), dtype=np.int64)
        for k, (i, length) in enumerate(points):
            steps = curves[i][0]
            frac = (steps[length - 1] - self.t_lo) / max(self.t_hi - self.t_lo, 1)
            caps[k] = _augment.per_curve_cap(float(frac))
            if caps[k] == 0 or length < 2:
                continue
            # A handful of earlier prefixes per curve, evenly spread on the GP's (log) step axis,
            # are the candidates; more barely changes the choice and costs O(candidates^2).
            n_cand = min(CANDIDATES_PER_CURVE, length - 1)
            lengths = np.unique(np.geomspace(1, length - 1, n_cand).round().astype(int))
            for ell in lengths:
                cand.append((i, int(ell)))
                owner.append(k)
        if not cand:
            return []
        Xp = torch.from_numpy(self._inputs(data, curves, points))
        Xc = torch.from_numpy(self._inputs(data, curves, cand))
        # One matrix product for all candidate pairs is cheaper here than a kernel call per
        # chosen column (m is at most CANDIDATES_PER_CURVE * max_gp_points).
        with torch.no_grad():
            params = gp.covar_module.params().detach()
            K_cc = kernel(Xc, Xc, params).numpy()
            K_xx = kernel(Xp, Xp, params).numpy()
            K_xc = kernel(Xp, Xc, params).numpy()
            prior_var = kernel(Xc, Xc, params, diag=True).numpy()
        chosen = _augment.select(
            K_xx,
            K_xc,
            lambda idx: K_cc[:, idx],
            prior_var,
            float(gp.noise),
            np.asarray(owner),
            caps,
            room,
            self.config.max_log_cond,
        )
        return [cand[j] for j in chosen]

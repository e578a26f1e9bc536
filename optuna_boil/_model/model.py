"""The BOIL model facade shared by the sampler and the pruner.

One call to :meth:`BOILModel.fit` goes from curves to a fitted model:
curves -> orientation-free scaling -> (optional) subsampling to the GP size cap -> selective
augmentation -> joint fit of the GP and the compression -> fantasies for pending runs -> cost
model. The :class:`FittedModel` then answers the questions of the sampler (which ``(x, t)`` next),
the pruner (continue this run, and until when) and the user (which configuration is best).

Inputs and outputs are numpy arrays in the encoded space of :mod:`.search_space`; no Optuna object
is seen here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import torch

from optuna_boil._model import acquisition as _acq
from optuna_boil._model import augment as _augment
from optuna_boil._model import curve as _curve
from optuna_boil._model.cost import CostModel
from optuna_boil._model.gp import JointGP
from optuna_boil._model.search_space import SearchSpace


ACQUISITIONS = ("final", "budget")
DELIVERY_CANDIDATES = ("observed", "any")
_SAME_X_TOL = 1e-3  # Configurations this close (max-norm, unit cube) count as the same.
CANDIDATES_PER_CURVE = 6
_DISTINCT = 0.05  # Candidates closer than this (max-norm in the unit cube) count as one.


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the model (see :class:`~optuna_boil.BOILSampler` for their meaning)."""

    target: str = "logistic"
    acquisition: str = "final"
    learn_compression: bool = True
    augmentation: bool = True
    cost_aware: bool = True
    max_gp_points: int = 200
    max_augmented: int = 64
    max_log_cond: float = 15.0
    # Sobol points before the local search: 512 instead of 1024 changed the best log value by
    # 0.003 nats on the speed benchmark's model (100 trials) and saves ~25 ms per decision.
    n_samples: int = 512
    n_local: int = 8
    n_random_restarts: int = 2
    # A new configuration is trained to t_hi from the start when having it fully trained
    # (delivery, see FittedModel.log_delivery) is worth more per cost than the budget the
    # acquisition chose for it. On the 24 LCBench tasks (3 seeds) this lowered the regret of the
    # best COMPLETE trial at 100 epochs from 0.47 to 0.27 and was ahead at every checkpoint.
    deliver_new: bool = True
    # Delivery is also chosen on its own: the configuration whose full training is worth most
    # per unit of cost (its expected improvement at t_hi over the best fully trained one)
    # competes with the acquisition's choice, so what gets trained to the end is the model's
    # best guess, not only its most informative point. ``delivery_candidates`` says where that
    # configuration is searched for: "observed" (the configurations seen so far, trained again
    # from the start), or "any" (the whole space, where the search favoured the corners of the
    # box while the model knew little). With the dimension-scaled lengthscale prior, "observed"
    # was ahead of "any" on CartPole and boosting and level on digits and LCBench (see the
    # README's benchmark section).
    deliver_best: bool = True
    delivery_candidates: str = "observed"
    # While no configuration is fully trained (or being trained to t_hi by a running trial),
    # the next new run is a full one, so that ``study.best_trial`` exists right after the
    # start-up and one full training. A decision point still compares continuing with the
    # acquisition's own choice: forcing a full run there too made the last random start-up
    # trial the first one trained fully (digits, 3 of 10 runs). On the 24 LCBench tasks (3
    # seeds) level with the rule without it; on digits it removed the runs without a COMPLETE
    # trial at a quarter of the budget.
    first_full: bool = True
    # At a decision point a run stops or goes on to t_hi (delivery); with r >= 1 it may also go
    # on for what a longer look tells: to any reported step of at least r times the step reached
    # (the acquisition of that step, only the remaining steps cost). Off by default: on the 24
    # LCBench tasks (10 seeds) r = 2 was worse early (best COMPLETE trial +0.025 +- 0.010 at 100
    # epochs, +0.006 +- 0.002 at 250, paired) and ahead only within noise at 1000 (-0.006 +-
    # 0.005); on the real tasks it was ahead within noise. r = 1 decides at every report.
    continue_inform: float = 0.0
    # Run-to-run noise (see JointKernel): ``run_noise`` adds a late part of the score that
    # belongs to one run, ``lengthscale_floor`` a prior of ``-b / l^2`` nats on each x
    # lengthscale. Off by default: with both (b = 0.01) the 24 LCBench tasks (119 paired runs)
    # and the three real tasks (10 seeds) were level with the default within noise.
    lengthscale_floor: float = 0.0
    run_noise: bool = False
    # Prior of the x lengthscales (see JointKernel): "dim_lognormal" (BoTorch's, favours smooth
    # functions, more so in more dimensions) or "gamma" (the previous Gamma(3, 6), mode 1/3,
    # which let noisy single runs pull lengthscales towards zero).
    lengthscale_prior: str = "dim_lognormal"

    def __post_init__(self) -> None:
        if self.delivery_candidates not in DELIVERY_CANDIDATES:
            raise ValueError(
                f"Unknown delivery_candidates {self.delivery_candidates!r}; expected one of "
                f"{DELIVERY_CANDIDATES}."
            )


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


@dataclass(frozen=True)
class Continuation:
    """The pruner's decision for a run that reached its budget.

    Attributes:
        extend_to: The new budget, or :obj:`None` to stop the run.
        log_value: Log value of the best way to continue, per unit of cost.
        log_new: Log value of the best new run, per unit of cost.
        reason: Why, in words (stored as the trial's ``boil_stop``/``boil_continue``).
    """

    extend_to: int | None
    log_value: float
    log_new: float
    reason: str


@dataclass
class Decision:
    """A proposed ``(x, t)`` with what the model expects of it.

    ``retrain_of``: the number of the longest observed run of configuration ``x``, when the
    decision trains a configuration seen before again from the start (and the data has trial
    numbers).
    """

    x: np.ndarray
    t: int
    log_acq: float
    predicted_score: float
    predicted_final: float
    hyperparameters: dict[str, Any]
    retrain_of: int | None = None


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
        self.t_new_lo = int(min(max(t_new_lo, t_lo), t_hi)) if t_new_lo is not None else self.t_lo
        self.step_interval = 1
        self.step_phase = 0

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
        k = np.ceil((np.asarray(t, dtype=np.float64) - self.step_phase) / self.step_interval)
        return np.minimum(self.step_phase + np.maximum(k, 0) * self.step_interval, self.t_hi)

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
            self.step_interval, self.step_phase = 1, 0
            return
        gaps = np.concatenate([np.diff(s) for s in ints] + [np.concatenate(ints)])
        gaps = np.abs(gaps[gaps != 0])
        self.step_interval = max(int(np.gcd.reduce(gaps)) if gaps.size else 1, 1)
        self.step_phase = 0

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
            self.config.target,
            self.config.learn_compression,
            float(np.log1p(max(self.t_hi - self.t_lo, 0))),
            self.config.lengthscale_floor,
            self.config.run_noise,
            self.config.lengthscale_prior,
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
        K_cc = gp.covariance(Xc).numpy()
        chosen = _augment.select(
            gp.covariance(Xp).numpy(),
            gp.covariance(Xp, Xc).numpy(),
            lambda idx: K_cc[:, idx],
            gp.prior_variance(Xc).numpy(),
            float(gp.noise),
            np.asarray(owner),
            caps,
            room,
            self.config.max_log_cond,
        )
        return [cand[j] for j in chosen]


class FittedModel:
    """A fitted BOIL model: decisions for the sampler, the pruner and the user."""

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
        with torch.no_grad():
            X_real = gp.train_inputs[0][: self.n_real]
            if model.config.acquisition == "final":
                # The incumbent of the final budget: the best posterior mean at t_hi among the
                # configurations observed so far.
                mean = gp.predict_pair(X_real, 1.0)[0]
            else:
                mean = gp.predict(X_real)[0]
        self.best = float(mean.max())
        self.delivered = self._delivered_incumbent()
        self.extra_pending: list[tuple[np.ndarray, float]] = []
        # Half a step: no run is free.
        self._cost_floor = 0.5
        self._add_fantasies()

    def _delivered_incumbent(self) -> float:
        """Best posterior mean at ``t_hi`` (GP units) of the fully trained configurations; the
        worst of all observed configurations while none is fully trained."""
        full = self.fully_trained()
        observed = full if full.size else np.flatnonzero([s.size > 0 for s in self.data.steps])
        X = torch.from_numpy(np.column_stack([self.data.x[observed], np.ones(observed.size)]))
        with torch.no_grad():
            mean = self.gp.predict(X)[0].numpy()
        return float(mean.max() if full.size else mean.min())

    def _add_fantasies(self) -> None:
        """Condition on pending runs at their budgets (posterior-mean fantasies)."""
        d = self.data
        rows = []
        for i in np.flatnonzero(d.running & np.isfinite(d.budgets)):
            last = d.steps[i][-1] if d.steps[i].size else -np.inf
            if d.budgets[i] > last:
                rows.append(np.append(d.x[i], self.model.scale_t(d.budgets[i])))
        self._condition_on(rows)

    def add_pending(self, x: np.ndarray, budget: float) -> None:
        """Treat one more run of ``x`` to ``budget`` as pending (e.g. a worker's fresh choice)."""
        self.extra_pending.append((np.asarray(x, dtype=np.float64), float(budget)))
        self._condition_on([np.append(x, self.model.scale_t(budget))])

    def _condition_on(self, rows: list[np.ndarray]) -> None:
        if not rows:
            return
        Xf = torch.from_numpy(np.array(rows))
        with torch.no_grad():
            yf, _ = self.gp.predict(Xf)
            X = torch.cat([self.gp.train_inputs[0], Xf])
            y = torch.cat([self.gp.train_targets, yf])
            self.gp.set_train_data(X, y, strict=False)
            self.gp.refactorise()

    def hyperparameters(self) -> dict[str, Any]:
        return self.gp.hyperparameters()

    # Predictions -------------------------------------------------------------------------------

    def predict(self, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of the compressed score at ``(x, t)`` in metric-scaled units.

        The returned values are in ``[0, 1]``-scaled "higher is better" units of the curves
        (multiply by ``span`` and add ``low`` for the oriented metric).
        """
        X = torch.from_numpy(np.column_stack([np.atleast_2d(x), self.model.scale_t(t)]))
        with torch.no_grad():
            mean, var = self.gp.predict(X)
        y_std = self.gp.y_std
        return (mean.numpy() * y_std + self.gp.y_mean), var.sqrt().numpy() * y_std

    def to_metric(self, score: np.ndarray | float) -> np.ndarray:
        """Scaled score back to the oriented metric's units."""
        return self.low + np.asarray(score) * self.span

    # Acquisition -------------------------------------------------------------------------------

    def _cost(self, X: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Cost of training ``x`` to ``t`` (from ``start`` if given), in steps of a full run.

        With cost in steps this is the number of steps. With a fitted cost (wall clock, or
        costs the user reported) it is ``t_hi * c(x, t) / c(x, t_hi)``: the cost model decides
        how long to train (the overhead of starting a run against its per-step cost), never
        *which* configuration, so configurations that are cheap per step but worse do not win
        on cost.
        """
        if not self.model.config.cost_aware:
            return torch.ones(X.shape[0], dtype=X.dtype)
        t = self.model.unscale_t_torch(X[:, -1]) + self.offset
        t_full = float(self.model.t_hi) + self.offset
        if self.model.cost_in_steps:
            c = t if start is None else t - start - self.offset
            return c.clamp_min(self._cost_floor)
        rate = self.cost.rate_torch(X[:, :-1])
        full = rate * t_full + self.cost.overhead
        if start is None:
            c = rate * t + self.cost.overhead
        else:
            c = rate * (t - start - self.offset)
        return (t_full * c / full).clamp_min(self._cost_floor)

    def log_acq(self, X: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Log acquisition value per unit cost at encoded ``(x, t)`` rows.

        ``acquisition="final"``: the expected improvement of the score at the full budget,
        weighted by how much a run of ``x`` to ``t`` tells about it (Huang et al., 2006,
        "augmented EI"): ``EI_T(x) * |corr(f(x, t), f(x, T))| * (1 - s_n / sqrt(s^2(x, t) +
        s_n^2)) / cost(x, t)``. The second factor is the posterior correlation of the two
        budgets, the third discounts runs whose outcome the noise would hide. ``"budget"``:
        BOIL's ``EI(x, t) / cost(x, t)`` of the score at ``t`` itself. ``start`` gives the cost
        of continuing a run from that step instead of a fresh run.
        """
        if self.model.config.acquisition == "budget":
            mean, var = self.gp.predict(X)
            value = _acq.log_ei(mean, var, self.best)
        else:
            mean_f, var_f, var, cov = self.gp.predict_pair(X, 1.0)
            value = (
                _acq.log_ei(mean_f, var_f, self.best)
                + 0.5 * (cov.pow(2) / (var * var_f)).clamp(1e-300, 1.0).log()
                + _acq.log_information(var, self.gp.noise)
            )
        value = value - self._cost(X, start).log()
        # A numerically broken point is never chosen (rather than crashing a decision).
        return torch.where(torch.isnan(value), torch.full_like(value, -np.inf), value)

    def _same(self, x: np.ndarray) -> np.ndarray:
        """Mask of the runs whose configuration equals ``x``."""
        return np.max(np.abs(self.data.x - x), axis=1) <= _SAME_X_TOL

    def _observed_until(self, x: np.ndarray, exclude: int | None = None) -> float:
        """Largest step observed or budgeted for configurations equal to ``x`` (or -inf),
        leaving out the run at index ``exclude``."""
        d = self.data
        same = self._same(x)
        if exclude is not None:
            same[exclude] = False
        until = -np.inf
        for i in np.flatnonzero(same):
            if d.steps[i].size:
                until = max(until, float(d.steps[i][-1]))
            if d.running[i] and np.isfinite(d.budgets[i]):
                until = max(until, float(d.budgets[i]))
        for px, budget in self.extra_pending:
            if np.all(np.abs(px - x) <= _SAME_X_TOL):
                until = max(until, budget)
        return until

    def _search(
        self,
        rng: np.random.RandomState,
        fixed_t: int | None = None,
        fixed_x: np.ndarray | None = None,
        acqf: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        space = self.model.space
        cfg = self.model.config
        dim = space.dim

        def sample(n: int, r: np.random.RandomState) -> np.ndarray:
            x = space.sample(n, r) if fixed_x is None else np.tile(fixed_x, (n, 1))
            u = (
                r.uniform(size=(n, 1))
                if fixed_t is None
                else np.full((n, 1), self.model.scale_t(fixed_t))
            )
            return np.hstack([x, u])

        def round_fn(X: np.ndarray) -> np.ndarray:
            out = X.copy()
            out[:, :dim] = space.round(X[:, :dim]) if fixed_x is None else fixed_x
            t = self.model.unscale_t(X[:, dim]) if fixed_t is None else np.full(len(X), fixed_t)
            out[:, dim] = self.model.scale_t(t)
            return out

        continuous = np.append(~space.is_categorical, fixed_t is None)
        if fixed_x is not None:
            continuous[:dim] = False
        n_samples = cfg.n_samples if fixed_x is None else min(cfg.n_samples, 64)
        return _acq.maximise(
            self.log_acq if acqf is None else acqf,
            sample,
            round_fn,
            continuous,
            rng,
            n_samples,
            cfg.n_local,
        )

    def suggest(
        self,
        rng: np.random.RandomState,
        fixed_t: int | None = None,
        skip: int = 0,
        comparison: bool = False,
    ) -> Decision:
        """The next ``(x, t)``: the acquisition maximiser that repeats no observed run.

        With ``deliver_new`` (the default) the chosen ``x`` is trained to ``t_hi`` from the
        start when having it fully trained (:meth:`log_delivery`) is worth more per unit of
        cost than the budget the acquisition chose for it; with ``deliver_best`` (the default)
        the configuration whose full training is worth most (:meth:`_best_delivery`) replaces
        it when that is worth more still.

        Args:
            rng: Random state for the maximiser.
            fixed_t: Choose only ``x``, at this step budget.
            skip: Leave out the ``skip`` best mutually distinct candidates (those are taken by
                workers that are deciding at the same moment and cannot be seen yet).
            comparison: The best new run is only compared with continuing a run (a decision
                point): ``first_full`` does not apply.
        """
        X, f = self._search(rng, fixed_t=fixed_t)
        dim = self.model.space.dim
        chosen = None
        taken: list[np.ndarray] = []
        for row, value in zip(X, f, strict=False):
            t = float(self.model.unscale_t(row[dim]))
            if t <= self._observed_until(row[:dim]):
                continue
            if any(np.max(np.abs(row - other)) < _DISTINCT for other in taken):
                continue
            if len(taken) < skip:
                taken.append(row)
                continue
            chosen = (row, value)
            break
        if chosen is None:  # Every candidate was observed: try fresh random points.
            t_new = self.model.scale_t(self.model.t_hi if fixed_t is None else fixed_t)
            draws = self.model.space.round(self.model.space.sample(64, rng))
            x = draws[0]
            for x in draws:
                if float(self.model.unscale_t(t_new)) > self._observed_until(x):
                    break
            row = np.append(x, t_new)
            with torch.no_grad():
                value = float(self.log_acq(torch.from_numpy(row[None]))[0])
            chosen = (row, value)
        row, value = chosen[0], float(chosen[1])
        if self.model.config.deliver_new and fixed_t is None:
            delivery = self.log_delivery(row[:dim])
            if delivery > value or (not comparison and self._needs_full_run()):
                row = row.copy()
                row[dim], value = 1.0, delivery
            if self.model.config.deliver_best:
                best = self._best_delivery(rng, skip)
                if best is not None and best[1] > value:
                    row, value = best
        return self._decision(row, value, self._earlier_run(row[:dim]))

    def _needs_full_run(self) -> bool:
        """Whether the next new run must be a full one (``first_full``): no configuration is
        fully trained, and no running or pending run has ``t_hi`` as its budget."""
        if not self.model.config.first_full or self.fully_trained().size:
            return False
        d, t_hi = self.data, float(self.model.t_hi)
        if np.any(d.running.astype(bool) & (np.nan_to_num(d.budgets) >= t_hi)):
            return False
        return not any(budget >= t_hi for _, budget in self.extra_pending)

    def _earlier_run(self, x: np.ndarray) -> int | None:
        """Number of the longest observed run of configuration ``x`` (:obj:`None` if there is
        none, or the data has no trial numbers)."""
        if len(self.data.numbers) != len(self.data):
            return None
        same = self._same(x)
        lengths = [s.size if ok else -1 for s, ok in zip(self.data.steps, same, strict=True)]
        i = int(np.argmax(lengths))
        return int(self.data.numbers[i]) if lengths[i] > 0 else None

    def _best_delivery(
        self, rng: np.random.RandomState, skip: int = 0
    ) -> tuple[np.ndarray, float] | None:
        """The new full run worth most per unit of cost (:meth:`log_delivery` maximised over
        ``x``: over the configurations observed so far or over the whole space, as
        ``delivery_candidates`` says) that repeats no full run, after the ``skip`` best mutually
        distinct ones (taken by workers deciding at the same moment); :obj:`None` if there is
        none."""
        dim = self.model.space.dim
        t_hi = float(self.model.t_hi)
        if self.model.config.delivery_candidates == "observed":
            seen = [s.size > 0 for s in self.data.steps]
            X = np.unique(self.data.x[np.asarray(seen, dtype=bool)], axis=0)
            X = np.column_stack([X, np.ones(len(X))])
            with torch.no_grad():
                f = self._log_delivery_rows(torch.from_numpy(X)).numpy()
            order = np.argsort(-f, kind="stable")
            X, f = X[order], f[order]
        else:
            X, f = self._search(rng, fixed_t=self.model.t_hi, acqf=self._log_delivery_rows)
        running = self.data.running.astype(bool)
        taken: list[np.ndarray] = []
        for row, value in zip(X, f, strict=False):
            if t_hi <= self._observed_until(row[:dim]):
                continue
            # A configuration with a running trial is left to that trial's own decision point,
            # where training it on costs less than starting again.
            if np.any(self._same(row[:dim]) & running):
                continue
            if any(np.max(np.abs(row - other)) < _DISTINCT for other in taken):
                continue
            if len(taken) < skip:
                taken.append(row)
                continue
            return row, float(value)
        return None

    def _decision(
        self, row: np.ndarray, log_acq: float, retrain_of: int | None = None
    ) -> Decision:
        dim = self.model.space.dim
        t = int(self.model.unscale_t(row[dim]))
        mean, _ = self.predict(row[None, :dim], np.array([t]))
        final, _ = self.predict(row[None, :dim], np.array([self.model.t_hi]))
        return Decision(
            x=row[:dim].copy(),
            t=t,
            log_acq=log_acq,
            predicted_score=float(mean[0]),
            predicted_final=float(final[0]),
            hyperparameters=self.hyperparameters(),
            retrain_of=retrain_of,
        )

    def budget_for(self, x: np.ndarray, rng: np.random.RandomState) -> Decision:
        """Best budget ``t`` for a given configuration ``x`` (for runs of other samplers)."""
        X, f = self._search(rng, fixed_x=x)
        return self._decision(X[0], float(f[0]))

    def log_delivery(self, x: np.ndarray, step: float | None = None) -> float:
        """Log expected improvement of *having* ``x`` trained to ``t_hi``, per unit of cost.

        The incumbent is the best fully trained configuration (posterior mean at ``t_hi``), the
        result a user of the study gets; while there is none, the worst observed configuration.
        ``step`` is where a continued run starts (only the rest of the training costs).
        """
        X = torch.from_numpy(np.append(x, 1.0)[None])
        start = None if step is None else torch.tensor(float(step), dtype=torch.float64)
        with torch.no_grad():
            return float(self._log_delivery_rows(X, start)[0])

    def _log_delivery_rows(
        self, X: torch.Tensor, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Batched, differentiable :meth:`log_delivery` at encoded rows (last column: step)."""
        mean, var = self.gp.predict(X)
        value = _acq.log_ei(mean, var, self.delivered) - self._cost(X, start).log()
        return torch.where(torch.isnan(value), torch.full_like(value, -np.inf), value)

    def continuation(self, index: int, step: float, rng: np.random.RandomState) -> Continuation:
        """Whether to train trial ``index`` on from ``step``, and until which step.

        Continuing costs only the remaining steps, and its value is that of *having* the
        configuration fully trained (:meth:`log_delivery`): the expected improvement of its
        score at ``t_hi`` over the best fully trained configuration, per unit of cost. With
        ``continue_inform`` a run may also go on to a later step short of ``t_hi`` for what that
        step tells (:meth:`_best_extension`). The best of these is compared with the best *new*
        run under the same (current) posterior. Nothing else in the acquisition values having
        the winner trained, only knowing about it; this is what makes the best configurations
        end COMPLETE.
        """
        t_hi = self.model.t_hi
        if step >= t_hi:
            return Continuation(None, -np.inf, np.inf, "fully trained")
        x = self.data.x[index]
        if self._observed_until(x, exclude=index) >= t_hi:
            return Continuation(
                None, -np.inf, -np.inf, "another trial trains this configuration fully"
            )
        value, until, how = self.log_delivery(x, step), t_hi, "train to the full budget"
        if self.model.config.continue_inform >= 1.0:
            t_info, v_info = self._best_extension(x, step, self.model.config.continue_inform)
            if v_info > value:
                value, until, how = v_info, t_info, f"train on to step {t_info} to learn more"
        new = self.suggest(rng, comparison=True).log_acq
        if value < new:
            return Continuation(None, value, new, "a new run is worth more")
        return Continuation(int(until), value, new, how)

    def _best_extension(self, x: np.ndarray, step: float, growth: float) -> tuple[int, float]:
        """The reported step after ``step`` (and at least ``growth * step``, or ``t_hi``) whose
        acquisition for a run of ``x`` continued from ``step`` (only the remaining steps cost) is
        highest, and that log value."""
        m = self.model
        # Snapping rounds up, so every candidate is a reported step >= lo, and t_hi is one.
        lo = min(max(np.floor(step) + 1.0, np.ceil(growth * step)), m.t_hi)
        steps = np.unique(m.snap(np.arange(lo, m.t_hi + 1.0)))
        X = torch.from_numpy(np.column_stack([np.tile(x, (steps.size, 1)), m.scale_t(steps)]))
        with torch.no_grad():
            values = self.log_acq(X, torch.tensor(float(step), dtype=torch.float64)).numpy()
        k = int(np.argmax(values))
        return int(steps[k]), float(values[k])

    def recommend(self) -> tuple[int, float, float]:
        """The observed configuration with the best lower confidence bound at ``t_hi``.

        Configurations trained to ``t_hi`` are preferred: only when there is none are the others
        considered. The predicted value is clipped to the range of values observed.

        Returns:
            ``(index into data, predicted score, its standard deviation)``, in the oriented
            metric's units.
        """
        idx = np.array(sorted({i for i, _ in self.points}))
        full = self.fully_trained()
        if np.isin(idx, full).any():
            idx = idx[np.isin(idx, full)]
        mean, std = self.predict(self.data.x[idx], np.full(len(idx), self.model.t_hi))
        # A conservative choice: the best lower confidence bound, so that a configuration seen
        # only briefly does not win on an optimistic extrapolation.
        k = int(np.argmax(mean - std))
        value = float(np.clip(self.to_metric(mean[k]), self.low, self.low + self.span))
        return int(idx[k]), value, float(std[k] * self.span)

    def fully_trained(self) -> np.ndarray:
        """Indices of the configurations whose curve reached the last reported step of a full
        run (``t_hi``, or the last step of the report grid before it: 49 for reports every 7
        steps up to 52)."""
        d, m = self.data, self.model
        last = m.t_hi - (m.t_hi - m.step_phase) % m.step_interval
        failed = d.failed if d.failed.size == len(d) else np.zeros(len(d), dtype=bool)
        return np.array(
            [
                i
                for i in range(len(d))
                if d.steps[i].size and d.steps[i][-1] >= last and not failed[i]
            ],
            dtype=np.int64,
        )

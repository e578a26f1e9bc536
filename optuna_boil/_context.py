"""One decision's world, resolved once: trials, search space, budget range, settings, model fit.

The sampler (a new trial's ``(x, t)``) and the pruner (a trial that reached its budget: stop, or
continue until which step) both decide through a :class:`Context`. A context reads the study's
trials once, resolves the budget range from the study (stored once in its system attributes, so
every process, :func:`~optuna_boil.recommend` and the dashboard agree), and fits the model at most
once. A decision uses one context, except the pruner's on a trial from another sampler that
reaches its budget at the report that assigns it: two contexts, so two fits (its budget, then its
continuation). Neither the sampler nor the pruner imports the other: they meet here, through two
small mixins (:class:`SettingsHolder` for the sampler's settings, :class:`ResourceHolder` for the
pruner's budget range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import hashlib
import math
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import threadpoolctl
import torch

from optuna_boil import _observations
from optuna_boil import _storage
from optuna_boil._logging import get_logger
from optuna_boil._logging import warn_once
from optuna_boil._model import fidelity as _fidelity
from optuna_boil._model.fitted import FittedModel
from optuna_boil._model.gp import FitError
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace


# GPyTorch settings and torch's thread count are process-global: one fit at a time.
FIT_LOCK = threading.Lock()
COST_MODES = ("steps", "wallclock")
_TRIALS_WITH_SPACE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# The failures a model fit is expected to have; a decision then falls back to random sampling.
_NUMERICAL_FAILURES: tuple[type[Exception], ...] = (
    FitError,
    getattr(torch.linalg, "LinAlgError"),  # noqa: B009 - not in torch's stubs
    np.linalg.LinAlgError,
)


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from the given parts (stable across processes and platforms)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def random_seed() -> int:
    """A fresh random seed."""
    return int(np.random.SeedSequence().generate_state(1)[0] % 2**31)


class limit_threads:
    """Run torch, OpenMP and BLAS with one thread, on the CPU, while deciding.

    Small GPs and SciPy's L-BFGS-B get slower, not faster, with several threads (thread
    start-up and oversubscription dominate); the same limit as Optuna's GPSampler. The user's
    script may change torch's default device (``torch.set_default_device("cuda")``): inside,
    the default device of this thread is the CPU. The model's tensors are float64 by explicit
    dtype, so torch's process-wide default dtype (which the user's training in other threads
    sees) is left alone.
    """

    def __enter__(self) -> None:
        self._n = torch.get_num_threads()
        torch.set_num_threads(1)
        self._blas = threadpoolctl.threadpool_limits(limits=1)
        # A device context intercepts every torch call (it doubled the decision time), so it
        # is entered only when the user moved the default device off the CPU.
        self._device = torch.device("cpu") if torch.get_default_device().type != "cpu" else None
        if self._device is not None:
            self._device.__enter__()

    def __exit__(self, *args: object) -> None:
        if self._device is not None:
            self._device.__exit__(None, None, None)
        self._blas.restore_original_limits()
        torch.set_num_threads(self._n)


@dataclass(frozen=True)
class Settings:
    """Everything a decision depends on besides the storage's contents.

    The public constructor of :class:`~optuna_boil.BOILSampler` sets the first fields; ``model``
    and ``cash_in`` are ablation switches for the benchmarks (``BOILSampler._configure``).
    """

    seed: int = 0
    n_startup_trials: int = 8
    startup_budget: int | None = None
    cost: str = "steps"
    stale_after: float | None = 3600.0
    model: ModelConfig = field(default_factory=ModelConfig)
    # Continue a trial that reached its budget when that is worth more per unit of cost than a
    # new configuration, valuing a fully trained configuration (see Policy.continuation).
    cash_in: bool = True


class SettingsHolder:
    """Mixin of :class:`~optuna_boil.BOILSampler`: the settings every decision uses."""

    def boil_settings(self) -> Settings:
        raise NotImplementedError


class ResourceHolder:
    """Mixin of :class:`~optuna_boil.BOILPruner`: the budget range it enforces."""

    def boil_resources(self) -> tuple[int, int | str]:
        """``(min_resource, max_resource or "auto")``."""
        raise NotImplementedError


def settings_of(study: Study) -> Settings:
    """The study's sampler's settings, or the defaults (seed 0) for another sampler."""
    sampler = study.sampler
    return sampler.boil_settings() if isinstance(sampler, SettingsHolder) else Settings()


@dataclass(frozen=True)
class BudgetRange:
    """The resolved budget range of a study.

    Attributes:
        t_lo: The smallest budget: ``min_resource``, raised to the smallest first step the
            study's trials report (a budget before any report means nothing) and lowered to
            ``t_full``.
        t_full: The step at which a run is fully trained (``max_resource``, or
            ``max_resource - 1`` for a loop that reports steps ``0 .. max_resource - 1``), or
            :obj:`None` while ``"auto"`` is unresolved.
        enforced: Whether a :class:`~optuna_boil.BOILPruner` enforces budgets.
    """

    t_lo: int
    t_full: int | None
    enforced: bool


def zero_based(trials: Sequence[FrozenTrial]) -> bool:
    """Whether the study's reports start at step 0 (Optuna's pruning callbacks do)."""
    return any(t.intermediate_values and min(t.intermediate_values) == 0 for t in trials)


def first_step(trials: Sequence[FrozenTrial]) -> int | None:
    """The smallest step any trial reported, or :obj:`None` without reports."""
    firsts = [min(t.intermediate_values) for t in trials if t.intermediate_values]
    return int(min(firsts)) if firsts else None


def full_step(max_resource: int, from_zero: bool, reported_max: int | None = None) -> int:
    """The step at which a run of ``max_resource`` steps is complete.

    A loop ``for step in range(max_resource)`` reports ``0 .. max_resource - 1``; one that
    reports ``max_resource`` itself (e.g. steps ``0 .. max_resource`` inclusive) is complete there.
    """
    if from_zero and (reported_max is None or reported_max < max_resource):
        return max(max_resource - 1, 0)
    return max_resource


def resolve_auto(trials: Sequence[FrozenTrial]) -> int | None:
    """``max_resource="auto"``: the largest step reported in the study, once a trial ended
    without being pruned (COMPLETE with reports); :obj:`None` before."""
    if not any(t.state == TrialState.COMPLETE and t.intermediate_values for t in trials):
        return None
    return max(t.last_step for t in trials if t.last_step is not None)


def _effective(lo: int, t_full: int | None, first: int | None, enforced: bool) -> BudgetRange:
    if first is not None:
        lo = max(lo, first)
    if t_full is not None:
        lo = min(lo, t_full)
    return BudgetRange(lo, t_full, enforced)


def _explicit_full_step(
    study: Study, lo: int, hi: int, trials: Sequence[FrozenTrial], reported: int | None
) -> int:
    """The full step of an explicit ``max_resource``, stored when the study has reports (so the
    pruner, between decision points, reads the study's value rather than a trial's own)."""
    t_full = full_step(hi, zero_based(trials), reported)
    if reported is not None and _storage.get_full_step(study, lo, hi) != t_full:
        _storage.set_full_step(study, lo, hi, t_full)
    return t_full


def budget_range(study: Study, trials: Sequence[FrozenTrial]) -> BudgetRange:
    """Resolve the study's budget range once, and store it in the study's system attributes.

    An explicit ``max_resource`` of the study's :class:`~optuna_boil.BOILPruner` wins (a change
    is stored, with a warning); ``"auto"`` takes the stored value, else resolves it from the
    trials. Without a BOILPruner the stored range is used (budgets are then not enforced), and
    without one either the range of the reported steps.
    """
    stored = _storage.get_resources(study)
    pruner = study.pruner
    reported = max((t.last_step for t in trials if t.last_step is not None), default=None)
    first = first_step(trials)
    if isinstance(pruner, ResourceHolder):
        lo, hi = pruner.boil_resources()
        if hi == "auto":
            if stored is not None and stored[0] == lo and stored[2]:
                return _effective(lo, stored[1], first, True)
            resolved = resolve_auto(trials)
            if resolved is None:
                return _effective(lo, None, first, True)
            _storage.set_resources(study, lo, resolved, auto=True)
            return _effective(lo, resolved, first, True)
        assert isinstance(hi, int)
        if stored is None or stored[:2] != (lo, hi) or stored[2]:
            if stored is not None:
                warn_once(
                    (study.study_name, "range", stored, lo, hi),
                    f"The study's stored budget range {stored[:2]} differs from "
                    f"BOILPruner(min_resource={lo}, max_resource={hi}); using and storing the "
                    "pruner's.",
                )
            _storage.set_resources(study, lo, hi, auto=False)
        return _effective(lo, _explicit_full_step(study, lo, hi, trials, reported), first, True)
    if stored is not None:
        lo, hi, auto = stored
        t_full = hi if auto else _explicit_full_step(study, lo, hi, trials, reported)
        return _effective(lo, t_full, first, False)
    if reported is None or first is None:  # No reports: plain GP-based optimisation.
        return BudgetRange(0, 0, False)
    return BudgetRange(first, int(reported), False)


def _union(a: BaseDistribution, b: BaseDistribution) -> BaseDistribution | None:
    """The smallest distribution holding both, when they differ only in their range (numeric, of
    one kind, same ``log`` and ``step``, on one step grid); :obj:`None` otherwise."""
    if a == b:
        return a
    if type(a) is not type(b) or not isinstance(a, (FloatDistribution, IntDistribution)):
        return None
    assert isinstance(b, (FloatDistribution, IntDistribution))
    if a.log != b.log or a.step != b.step:
        return None
    low, high = min(a.low, b.low), max(a.high, b.high)
    if a.step is not None:
        offset = (a.low - b.low) / a.step
        if abs(offset - round(offset)) > 1e-8:
            return None
        # The grid of the lower start, up to the last grid point within both highs.
        high = low + math.floor((high - low) / a.step + 1e-8) * a.step
    if isinstance(a, IntDistribution):
        return IntDistribution(int(low), int(high), log=a.log, step=int(a.step))
    return FloatDistribution(float(low), float(high), log=a.log, step=a.step)


def search_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """The intersection search space of the trials with data (COMPLETE, PRUNED, and FAIL trials
    that reported), without single-value distributions, sorted by name as in Optuna.

    A numeric parameter whose range changed between trials (a widened range, or one that depends
    on the trial) is kept with the union of its ranges, which holds every value tried.
    """
    space: dict[str, BaseDistribution] | None = None
    for t in trials:
        if t.state not in _TRIALS_WITH_SPACE:
            continue
        if t.state == TrialState.FAIL and not t.intermediate_values:
            continue
        if space is None:
            space = dict(t.distributions)
            continue
        merged: dict[str, BaseDistribution] = {}
        for k, d in space.items():
            other = t.distributions.get(k)
            union = _union(d, other) if other is not None else None
            if union is not None:
                merged[k] = union
        space = merged
    return {k: d for k, d in sorted((space or {}).items()) if not d.single()}


def n_with_data(trials: Sequence[FrozenTrial], exclude: int | None) -> int:
    """Trials that give the model data (a curve, or a final value), ``exclude`` left out."""
    return sum(
        1
        for t in trials
        if t.number != exclude
        and t.state in _observations.USED_STATES
        and (t.intermediate_values or t.state == TrialState.COMPLETE)
    )


class Context:
    """One decision: the trials as read once, the study's settings and budget range.

    Args:
        study: The study.
        trials: The study's trials, read once by the caller (or by :meth:`read`).
        settings: The sampler's settings.
    """

    def __init__(self, study: Study, trials: Sequence[FrozenTrial], settings: Settings) -> None:
        self.study = study
        self.trials = list(trials)
        self.settings = settings
        self.range = budget_range(study, self.trials)

    @classmethod
    def read(cls, study: Study) -> Context:
        """Read the study's trials (once) and resolve the context."""
        return cls(study, read_trials(study), settings_of(study))

    def in_startup(self, exclude: int | None) -> bool:
        """Whether fewer than ``n_startup_trials`` trials have data (``exclude`` left out)."""
        return n_with_data(self.trials, exclude) < self.settings.n_startup_trials

    def startup_budget(self) -> int | None:
        """Budget of a random start-up trial (and the least for any new configuration)."""
        t_lo, t_full = self.range.t_lo, self.range.t_full
        if t_full is None:
            return None
        if self.settings.startup_budget is not None:
            return int(min(max(self.settings.startup_budget, t_lo), t_full))
        return int(min(t_lo + max((t_full - t_lo) // 16, 0), t_full))

    def space(self) -> SearchSpace | None:
        dists = search_space(self.trials)
        return SearchSpace(dists) if dists else None

    def fit(self, space: SearchSpace, exclude: int | None) -> tuple[FittedModel | None, str]:
        """Fit the model once. Returns the fit, or :obj:`None` and the reason it failed.

        The newest stored fit warm-starts the GP; if fitting from it fails, the fit is retried
        from the defaults, with a warning, as Optuna's GPSampler does. Only numerical failures
        (:class:`~optuna_boil._model.gp.FitError`, torch's and NumPy's ``LinAlgError``) are
        caught; any other exception is a bug and propagates.
        """
        t_lo, t_full = self.range.t_lo, self.range.t_full
        if t_full is None:
            return None, "max_resource is not known yet"
        s = self.settings
        data = _observations.build(
            self.trials,
            space,
            self.study.direction,
            t_full,
            s.cost,
            exclude_number=exclude,
            stale_after=s.stale_after,
        )
        if not any(steps.size for steps in data.steps):
            return None, "no trial has reported a value"
        user_costs = _storage.uses_reported_costs(self.trials)
        model = BOILModel(
            space,
            t_lo,
            t_full,
            s.model,
            cost_in_steps=s.cost == "steps" and not user_costs,
            t_new_lo=self.startup_budget(),
        )
        warm = _storage.latest_fit(self.trials)
        if warm is not None and len(warm.get("x_lengthscale", [])) != space.dim:
            warm = None
        starts = [warm, None] if warm is not None else [None]
        reason = ""
        for start in starts:
            rng = np.random.RandomState(derive_seed(s.seed, "fit", exclude, len(data)))
            try:
                with FIT_LOCK, limit_threads():
                    return model.fit(data, rng, warm_start=start), ""
            except _NUMERICAL_FAILURES as e:  # anything else is a bug, and raises
                reason = f"{type(e).__name__}: {e}"
                what = "the stored warm start" if start is not None else "the defaults"
                get_logger().warning(f"The BOIL model could not be fitted from {what} ({reason}).")
        return None, f"model fit failed ({reason})"


def read_trials(study: Study) -> list[FrozenTrial]:
    """All of the study's trials, read once from the storage (no copies)."""
    return study._get_trials(deepcopy=False, states=None, use_cache=False)


def publish_decision(
    study: Study, trial: FrozenTrial, fitted: FittedModel, decision: Any, initial: bool
) -> None:
    """Write a model decision's figures as the trial's dashboard attributes."""
    tid = trial._trial_id
    _storage.set_system(study, tid, _storage.FIT, decision.hyperparameters)
    _set_prediction(study, tid, fitted, decision.predicted_final)
    if initial:
        _storage.set_user(study, tid, _storage.USER_LOG_ACQ, float(decision.log_acq))


def publish_prediction(study: Study, trial: FrozenTrial, fitted: FittedModel, index: int) -> None:
    """Update the trial's ``boil_predicted_score`` from a fit that holds its curve so far (a
    decision point): the model's newest prediction of its value at the full budget."""
    x = fitted.data.x[index]
    mean, _ = fitted.predict(x[None], np.array([fitted.model.t_hi], dtype=np.float64))
    _set_prediction(study, trial._trial_id, fitted, float(mean[0]))


def _set_prediction(study: Study, tid: int, fitted: FittedModel, score: float) -> None:
    """Store a predicted compressed score at the full budget as the value there, in the
    metric's units (:meth:`~optuna_boil._model.fitted.FittedModel.final_value`)."""
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
    predicted = sign * float(fitted.final_value(score))
    _storage.set_user(study, tid, _storage.USER_PREDICTED_SCORE, predicted)


_trust_written: dict[tuple[int, int, str], tuple[int, int]] = {}


def publish_trust(study: Study, fitted: FittedModel) -> None:
    """Write the study's fidelity trust (:mod:`optuna_boil._model.fidelity`) as its
    ``boil_fidelity_trust`` user attribute, when the number of fully trained runs, or of runs in
    the start-up check, changed since this process last wrote it."""
    belief = fitted.model.belief
    key = (id(study._storage), study._study_id, study.study_name)
    counts = (fitted.fully_trained().size, belief.short.n if belief.short else 0)
    if _trust_written.get(key) == counts:
        return
    _trust_written[key] = counts
    study._storage.set_study_user_attr(
        study._study_id,
        _storage.USER_FIDELITY_TRUST,
        _fidelity.as_attribute(belief, fitted.model.t_new_lo),
    )

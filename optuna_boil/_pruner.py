from __future__ import annotations

import time

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _context
from optuna_boil import _storage
from optuna_boil._context import Context
from optuna_boil._logging import get_logger
from optuna_boil._logging import warn_once
from optuna_boil._policy import Policy


_ALIVE_EVERY = 30.0  # seconds between two liveness marks of a trial


class BOILPruner(BasePruner, _context.ResourceHolder):
    """Pruner that trains each trial for the budget BOIL chose, and the best ones to the end.

    A trial is never stopped before it reports a step of at least ``min_resource``, and never at
    or after ``max_resource``: it then ends COMPLETE when the objective returns, whatever it
    reports afterwards. In between, ``should_prune()`` compares the reported step with the
    trial's budget (``boil:budget``, chosen by :class:`~optuna_boil.BOILSampler`; see
    :func:`~optuna_boil.get_budget`) and reads nothing else from the storage. When the trial
    reaches its budget, the model decides, from the whole study, whether the trial continues
    and until which step: continuing costs only the extra steps, and a configuration that is
    expected to beat the best fully trained one is trained to ``max_resource``, so the study
    ends with its best configurations COMPLETE (``study.best_trial``). Trials stopped at their
    budget end PRUNED, with their last reported value (Optuna's convention); their curves are
    data for the sampler like any other.

    Every decision is a function of the storage's contents and the sampler's settings, so any
    worker (or a new process) makes the same decision.

    .. note::
        Steps may start at 0 or 1 and may be sparse (a report every k steps). For a loop that
        reports ``0 .. max_resource - 1`` (Optuna's pruning callbacks for LightGBM, XGBoost,
        ...), a trial is fully trained at step ``max_resource - 1``. Budgets are snapped to the
        steps that are reported.

    Args:
        min_resource:
            Smallest budget, in the step units of :meth:`~optuna.trial.Trial.report`. Defaults
            to 1.
        max_resource:
            The full training length (the number of epochs, rounds or episodes), or ``"auto"``
            for the largest step reported in the study once a trial has ended without being
            pruned (the first trial then trains fully). The resolved range is stored in the
            study, so every process agrees. Defaults to ``"auto"``.
    """

    def __init__(self, *, min_resource: int = 1, max_resource: int | str = "auto") -> None:
        if not isinstance(min_resource, int) or isinstance(min_resource, bool) or min_resource < 0:
            raise ValueError(
                f"`min_resource` must be a non-negative integer, got {min_resource!r}."
            )
        if max_resource != "auto" and (
            not isinstance(max_resource, int)
            or isinstance(max_resource, bool)
            or max_resource < min_resource
        ):
            raise ValueError(
                f"`max_resource` must be 'auto' or an integer >= min_resource ({min_resource}), "
                f"got {max_resource!r}."
            )
        if max_resource == min_resource:
            warn_once(
                ("min == max", min_resource),
                f"min_resource == max_resource == {min_resource}: every trial trains for the "
                "same budget, so BOIL cannot trade training length against information.",
            )
        self._min_resource = min_resource
        self._max_resource = max_resource
        # Caches: the study's full step (stored in the study, refreshed at decision points), and
        # the liveness mark's throttle.
        self._full: dict[int, int] = {}
        self._alive_written: dict[int, float] = {}

    def boil_resources(self) -> tuple[int, int | str]:
        return self._min_resource, self._max_resource

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        self._mark_alive(study, trial)
        step = trial.last_step
        if step is None:
            return False
        t_full = self._full_step(study)
        if t_full is None:  # "auto" before any trial finished: train fully.
            return False
        if step >= t_full:
            self._check_past_max(study, trial, step)
            return False
        if step < self._min_resource:
            return False
        budget = _storage.get_budget(trial)
        if budget is None:
            budget = self._assign_budget(study, trial)
        if step < budget:
            check = _storage.get_check(trial)
            if check is None or step < check:
                return False
        return self._decide(study, trial, step, budget)

    # Between decision points: the trial itself only --------------------------------------------

    def _full_step(self, study: Study) -> int | None:
        """The study's full step (as :func:`~optuna_boil._context.budget_range` resolves it for
        the sampler), cached per study and refreshed at each decision point; :obj:`None` while
        ``"auto"`` is unresolved."""
        sid = study._study_id
        if sid not in self._full:
            lo, hi = self._min_resource, self._max_resource
            stored: int | None = None
            if isinstance(hi, int):
                stored = _storage.get_full_step(study, lo, hi)
            else:
                resources = _storage.get_resources(study)
                if resources is not None and resources[2] and resources[0] == lo:
                    stored = resources[1]
            if stored is None:  # Not stored yet: resolve (and store) from the trials.
                stored = _context.budget_range(study, _context.read_trials(study)).t_full
                if stored is None:
                    return None
            self._full[sid] = stored
        return self._full[sid]

    def _remember(self, study: Study, ctx: Context) -> None:
        """Refresh the cached full step from a decision's context."""
        if ctx.range.t_full is not None:
            self._full[study._study_id] = ctx.range.t_full

    def _check_past_max(self, study: Study, trial: FrozenTrial, step: int) -> None:
        if isinstance(self._max_resource, int) and step > self._max_resource:
            warn_once(
                (study.study_name, "past max_resource"),
                f"Trial {trial.number} reports step {step}, past max_resource="
                f"{self._max_resource}: trials are complete at {self._max_resource} and never "
                f"pruned after it. If {step} or more is the full training length, use "
                f"BOILPruner(max_resource={step}) (or a larger value).",
            )

    def _mark_alive(self, study: Study, trial: FrozenTrial) -> None:
        """Record (at most every 30 s) that the trial is alive, for the stale-trial rule."""
        now = time.time()
        if now - self._alive_written.get(trial._trial_id, 0.0) >= _ALIVE_EVERY:
            self._alive_written[trial._trial_id] = now
            _storage.set_system(study, trial._trial_id, _storage.ALIVE, now)

    # Decision points: the whole study, one model fit ------------------------------------------

    def _decide(self, study: Study, trial: FrozenTrial, step: int, budget: int) -> bool:
        """A decision point (the trial reached its budget, or a check before it): stop the
        trial, or let it go on, to its budget or a new one, with its next check at twice its
        current step. Each decision is logged at INFO level under ``optuna.boil``, with why."""
        ctx = Context.read(study)
        self._remember(study, ctx)
        outcome, why = self._continuation(ctx, trial, step, budget)
        tid = trial._trial_id
        decisions = _storage.get_decisions(trial) + 1
        _storage.set_system(study, tid, _storage.DECISIONS, decisions)
        _storage.set_user(study, tid, _storage.USER_DECISIONS, decisions)
        if outcome is None:
            _storage.set_user(study, tid, _storage.USER_STOP, why)
            get_logger().info(f"Trial {trial.number} stops at step {step}: {why}.")
            return True
        if outcome == budget:
            get_logger().info(
                f"Trial {trial.number} continues from step {step} to its budget, step {budget}: "
                f"{why}."
            )
        else:
            get_logger().info(
                f"Trial {trial.number} continues from step {step} to step {outcome} (its budget "
                f"was step {budget}): {why}."
            )
            extensions = _storage.get_extensions(trial) + 1
            _storage.set_system(study, tid, _storage.BUDGET, outcome)
            _storage.set_system(study, tid, _storage.EXTENSIONS, extensions)
            _storage.set_user(study, tid, _storage.USER_BUDGET, outcome)
            _storage.set_user(study, tid, _storage.USER_EXTENSIONS, extensions)
        check = max(2 * step, step + 1)
        _storage.set_system(study, tid, _storage.CHECK, check if check < outcome else None)
        return False

    def _continuation(
        self, ctx: Context, trial: FrozenTrial, step: int, budget: int
    ) -> tuple[int | None, str]:
        """The trial's budget from here on (:obj:`None`: it stops), and why. Before its budget,
        a trial the model cannot judge goes on."""
        at_budget = step >= budget
        reached = f"{'budget reached' if at_budget else 'decision point'} at step {step}"
        if not ctx.settings.cash_in or ctx.in_startup(None) or ctx.range.t_full is None:
            if at_budget:
                return None, reached
            return budget, "a start-up trial, or no model decisions"
        space = ctx.space()
        if space is None:
            return self._without_model(ctx, trial, f"{reached}; no search space", budget)
        fitted, reason = ctx.fit(space, exclude=None)
        if fitted is None:
            _storage.set_user(ctx.study, trial._trial_id, _storage.USER_FALLBACK, reason)
            return self._without_model(ctx, trial, f"{reached}; {reason}", budget)
        _context.publish_trust(ctx.study, fitted)
        numbers = list(fitted.data.numbers)
        if trial.number not in numbers:
            return self._without_model(ctx, trial, f"{reached}; not in the search space", budget)
        seed = _context.derive_seed(ctx.settings.seed, "continue", trial.number, step)
        with _context.FIT_LOCK, _context.limit_threads():
            decision = Policy(fitted).continuation(
                numbers.index(trial.number),
                float(step),
                np.random.RandomState(seed),
                budget=None if at_budget else float(budget),
            )
            _context.publish_prediction(ctx.study, trial, fitted, numbers.index(trial.number))
        if decision.extend_to is None or decision.extend_to <= step:
            return None, f"{reached}; {decision.reason}"
        return int(decision.extend_to), decision.reason

    @staticmethod
    def _without_model(
        ctx: Context, trial: FrozenTrial, stop: str, budget: int
    ) -> tuple[int | None, str]:
        """Without a model, a trial before its budget goes on to it; at its budget it stops
        (``stop``), unless the study has no fully trained trial (COMPLETE at the full step) and
        no other running trial has the full budget: then it trains to the full step, so the
        study always ends with a fully trained trial."""
        t_full = ctx.range.t_full
        assert t_full is not None
        if trial.last_step is not None and trial.last_step < budget:
            return budget, f"{stop}: no model decision before the budget"
        for t in ctx.trials:
            if t.number == trial.number:
                continue
            held = _storage.get_budget(t)
            if t.state == TrialState.COMPLETE and (
                t.last_step is None or t.last_step >= t_full or (held or 0) >= t_full
            ):
                return None, stop
            if t.state == TrialState.RUNNING and held is not None and held >= t_full:
                return None, stop
        return t_full, f"{stop}: the study has no fully trained trial yet"

    def _assign_budget(self, study: Study, trial: FrozenTrial) -> int:
        """Budget of a trial whose parameters did not come from BOILSampler (another sampler,
        ``enqueue_trial``): the model's best budget for them, or the start-up budget."""
        ctx = Context.read(study)
        self._remember(study, ctx)
        budget = ctx.startup_budget() or ctx.range.t_full or self._min_resource
        check = None
        space = ctx.space()
        if space is not None and not ctx.in_startup(trial.number):
            try:
                x = space.encode(trial.params)
            except (KeyError, ValueError, TypeError):
                x = None
            fitted = ctx.fit(space, exclude=trial.number)[0] if x is not None else None
            if fitted is not None and x is not None:
                seed = _context.derive_seed(ctx.settings.seed, "budget", trial.number)
                with _context.FIT_LOCK, _context.limit_threads():
                    decision = Policy(fitted).budget_for(x, np.random.RandomState(seed))
                budget, check = decision.t, fitted.model.t_new_lo
        _storage.set_initial_budget(study, trial._trial_id, budget, check)
        return int(budget)

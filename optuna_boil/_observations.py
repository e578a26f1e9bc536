"""FrozenTrials -> the model's :class:`~optuna_boil._model.model.CurveData`.

Which trials contribute what:

* COMPLETE, PRUNED and FAIL trials contribute their learning curve (intermediate values sorted by
  step). A COMPLETE trial that reported nothing contributes its final value at the full budget.
  FAIL trials are marked (``CurveData.failed``): a failed run is never fully trained.
* RUNNING trials contribute their partial curve and are *pending*: the model conditions on their
  current budget so that parallel workers do not choose the same ``(x, t)``.
* A FAIL trial that was retried (Optuna's ``failed_trial`` system attribute on the retry) is left
  out when the retry inherited its curve, so the same curve is not counted twice.
* A trial that continues an earlier PRUNED trial's run from its checkpoint
  (:func:`~optuna_boil.resume_from`) is that run: its curve is the earlier trial's curve up to
  the step it resumed from, followed by its own reports, and the earlier trial is left out (one
  run, one curve, no step counted twice; its cost is the earlier trial's plus its own). Not
  when it FAILed (the earlier trial's run is still the one to continue) or when it reported a
  step it was meant to resume past (it trained from the start after all): then both curves
  are data, as they are.
* WAITING trials and trials whose parameters do not cover the search space are left out.

Every stored value (budget, published parameters, cost, alive mark, retry attributes) is read
through :mod:`optuna_boil._storage`'s validating accessors: a malformed value is ignored for its
trial (with one warning), so it can never stop a decision.

Values are oriented so that higher is better (minimised metrics are negated). Non-finite values
are kept here; :func:`~optuna_boil._model.curve.normalise_curves` applies the policy
(NaN and the bad infinity count as the worst finite value observed, the good infinity as the best).
"""

from __future__ import annotations

from collections.abc import Sequence
import datetime
import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _storage
from optuna_boil._model.model import CurveData
from optuna_boil._model.search_space import SearchSpace


USED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)


def curve_of(trial: FrozenTrial, t_hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(steps, values)`` of a trial (raw orientation)."""
    iv = trial.intermediate_values
    if iv:
        steps = np.array(sorted(iv), dtype=np.float64)
        values = np.array([iv[int(s)] for s in steps], dtype=np.float64)
        return steps, values
    if trial.state == TrialState.COMPLETE and trial.value is not None and t_hi is not None:
        return np.array([float(t_hi)]), np.array([float(trial.value)])
    return np.zeros(0), np.zeros(0)


def params_of(trial: FrozenTrial) -> dict[str, object]:
    """The trial's parameters, completed by those the sampler published (``boil:params``)."""
    params = dict(trial.params)
    for k, v in _storage.get_published_params(trial).items():
        params.setdefault(k, v)
    return params


def _aware(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` with a time zone: Optuna 5 stores UTC; older storages may hold naive local
    time, which is read as such (running or finished alike)."""
    return moment if moment.tzinfo is not None else moment.astimezone()


def _last_alive(trial: FrozenTrial) -> float:
    start = trial.datetime_start
    started = _aware(start).timestamp() if start is not None else 0.0
    alive = _storage.get_alive(trial)
    return max(started, alive) if alive is not None else started


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _superseded_failures(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of FAIL trials whose curve a retry inherited (so it must not count twice).

    Optuna's retry callback records the failed trial's *number* in ``failed_trial`` (and the
    chain in ``retry_history``), read through :func:`~optuna_boil._storage.retry_sources`. A
    failed trial is superseded only when the retry holds the same value at every step the failed
    trial reported; a retry that started from scratch re-reports new values, and then both curves
    are data.
    """
    by_number = {t.number: t for t in trials}
    out: set[int] = set()
    for t in trials:
        for number in _storage.retry_sources(t):
            failed = by_number.get(number)
            if failed is None or failed.state != TrialState.FAIL:
                continue
            iv = failed.intermediate_values
            if iv and all(
                s in t.intermediate_values and _same_value(v, t.intermediate_values[s])
                for s, v in iv.items()
            ):
                out.add(failed.number)
    return out


def _continued_runs(trials: Sequence[FrozenTrial]) -> dict[int, tuple[int, int]]:
    """``{number: (earlier number, step)}`` of the trials that continue an earlier run (see the
    module docstring for when they do)."""
    by_number = {t.number: t for t in trials}
    out: dict[int, tuple[int, int]] = {}
    for t in trials:
        resumed = _storage.get_resumed(t)
        if resumed is None or t.state == TrialState.FAIL:
            continue
        earlier = by_number.get(resumed[0])
        if earlier is None or earlier.state != TrialState.PRUNED:
            continue
        if any(step <= resumed[1] for step in t.intermediate_values):
            continue
        out[t.number] = resumed
    return out


def _merged_curves(
    trials: Sequence[FrozenTrial], t_hi: float | None, links: dict[int, tuple[int, int]]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every trial's curve, a continuing trial's preceded by its earlier run's (merged first,
    so a chain of continuations is one curve)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        steps, values = curve_of(t, t_hi)
        if t.number in links:
            number, step = links[t.number]
            before_steps, before_values = out.get(number, (np.zeros(0), np.zeros(0)))
            keep = before_steps <= step
            steps = np.concatenate([before_steps[keep], steps])
            values = np.concatenate([before_values[keep], values])
        out[t.number] = (steps, values)
    return out


def build(
    trials: Sequence[FrozenTrial],
    space: SearchSpace,
    direction: optuna.study.StudyDirection,
    t_hi: float | None,
    cost_mode: str,
    exclude_number: int | None = None,
    stale_after: float | None = None,
) -> CurveData:
    """Collect the curve data of ``trials`` (already read once from storage).

    A RUNNING trial whose last sign of life (its start, or the pruner's ``boil:alive`` mark) is
    older than ``stale_after`` seconds is not pending any more (a worker probably died without a
    heartbeat); its partial curve is still data.
    """
    links = _continued_runs(trials)
    curves = _merged_curves(trials, t_hi, links)
    skip = _superseded_failures(trials) | {number for number, _ in links.values()}
    by_number = {t.number: t for t in trials}
    sign = -1.0 if direction == optuna.study.StudyDirection.MINIMIZE else 1.0
    xs, steps, values, costs, running, budgets, numbers = [], [], [], [], [], [], []
    failed: list[bool] = []
    now = datetime.datetime.now(datetime.timezone.utc)
    user_costs = _storage.uses_reported_costs(trials)
    for t in trials:
        if t.state not in USED_STATES or t.number == exclude_number or t.number in skip:
            continue
        params = params_of(t)
        try:
            x = space.encode(params)
        except (KeyError, ValueError, TypeError, OverflowError):
            continue
        if not np.all(np.isfinite(x)):
            continue
        s, v = curves[t.number]
        if s.size == 0 and t.state != TrialState.RUNNING:
            continue
        xs.append(x)
        steps.append(s)
        values.append(sign * v)
        is_running = t.state == TrialState.RUNNING
        if is_running and stale_after is not None:
            is_running = now.timestamp() - _last_alive(t) <= stale_after
        running.append(is_running)
        budget = _storage.get_budget(t)
        budgets.append(float(budget) if budget is not None else np.nan)
        numbers.append(t.number)
        failed.append(t.state == TrialState.FAIL)
        if user_costs or cost_mode == "wallclock":
            cost, link = _own_cost(t, user_costs, now), links.get(t.number)
            while link is not None:  # a continued run's cost includes the runs it continues
                cost += _own_cost(by_number[link[0]], user_costs, now)
                link = links.get(link[0])
            costs.append(cost)
        else:
            costs.append(float(s[-1]) if s.size else np.nan)
    return CurveData(
        x=np.array(xs).reshape(len(xs), space.dim),
        steps=steps,
        values=values,
        costs=np.array(costs, dtype=np.float64),
        running=np.array(running, dtype=bool),
        budgets=np.array(budgets, dtype=np.float64),
        numbers=np.array(numbers, dtype=np.int64),
        failed=np.array(failed, dtype=bool),
    )


def _own_cost(trial: FrozenTrial, user_costs: bool, now: datetime.datetime) -> float:
    """A trial's own cost when cost is not counted in steps: its reported cost (NaN without
    one), or its duration."""
    if user_costs:
        reported = _storage.get_cost(trial)
        return reported[1] if reported is not None else math.nan
    if trial.datetime_start is None:
        return math.nan
    end = _aware(trial.datetime_complete) if trial.datetime_complete is not None else now
    return (end - _aware(trial.datetime_start)).total_seconds()

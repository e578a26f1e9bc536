"""Every storage key optuna-boil reads or writes, and its JSON shape, in one place.

Trial system attributes (internal state, written only while the trial is RUNNING, each by the one
worker that owns the trial, so there is no read-modify-write race):

* ``boil:budget`` (int): the step at which the trial is currently stopped.
* ``boil:params`` (dict): the parameters chosen by the model, published at once so that other
  workers treat the trial as pending before its ``suggest_*`` calls reach the storage.
* ``boil:fit`` (dict): the fitted model hyperparameters of the decision that started the trial;
  the newest one warm-starts the next fit (it never changes which data a decision uses).
* ``boil:cost`` (list ``[step, cost]``): cumulative cost reported with :func:`report_cost`.
* ``boil:extensions`` (int): how often the pruner extended the budget.
* ``boil:alive`` (float): UTC epoch seconds of the trial's latest pruner call (written at most
  every 30 s), for the stale-trial rule of :class:`~optuna_boil.BOILSampler`.

Trial user attributes (scalars, for optuna-dashboard's table and plots; ``boil_predicted_score``
is the model's prediction, when the trial started, of the configuration's compressed score at the
full budget, in the metric's units: with the default target, a late-weighted average of the
curve, so a little below the final value of a curve that is still rising):
``boil_budget``, ``boil_initial_budget``, ``boil_predicted_score``, ``boil_log_acq``,
``boil_extensions`` and ``boil_stop`` (why the pruner stopped the trial).
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial


BUDGET = "boil:budget"
PARAMS = "boil:params"
FIT = "boil:fit"
COST = "boil:cost"
EXTENSIONS = "boil:extensions"
ALIVE = "boil:alive"

USER_BUDGET = "boil_budget"
USER_INITIAL_BUDGET = "boil_initial_budget"
USER_PREDICTED_SCORE = "boil_predicted_score"
USER_LOG_ACQ = "boil_log_acq"
USER_EXTENSIONS = "boil_extensions"
USER_STOP = "boil_stop"


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (which JSON cannot hold portably) with ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def set_system(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    study._storage.set_trial_system_attr(trial_id, key, _json_safe(value))


def set_user(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    study._storage.set_trial_user_attr(trial_id, key, _json_safe(value))


def get_budget(trial: FrozenTrial) -> int | None:
    value = trial.system_attrs.get(BUDGET)
    return int(value) if value is not None else None


def latest_fit(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The model fit stored by the highest-numbered trial that has one."""
    for t in sorted(trials, key=lambda t: t.number, reverse=True):
        fit = t.system_attrs.get(FIT)
        if isinstance(fit, dict):
            return fit
    return None

"""Every storage key optuna-boil reads or writes, and its JSON shape, in one place.

Trial system attributes (internal state, written only while the trial is RUNNING, each by the one
worker that owns the trial, so there is no read-modify-write race):

* ``boil:budget`` (int): the step at which the trial is currently stopped.
* ``boil:check`` (int): the step of the trial's next decision point before its budget (absent:
  none), where the pruner decides again, from the whole study, whether the trial trains on.
* ``boil:params`` (dict): the parameters chosen by the model, published at once so that other
  workers treat the trial as pending before its ``suggest_*`` calls reach the storage.
* ``boil:fit`` (dict): the fitted model hyperparameters of the decision that started the trial;
  the newest one warm-starts the next fit (it never changes which data a decision uses).
* ``boil:cost`` (list ``[step, cost]``): cumulative cost reported with :func:`report_cost`.
* ``boil:extensions`` (int): how often the pruner extended the budget.
* ``boil:decisions`` (int): how many decision points (model fits) the pruner held for the trial.
* ``boil:alive`` (float): UTC epoch seconds of the trial's latest pruner call (written at most
  every 30 s), for the stale-trial rule of :class:`~optuna_boil.BOILSampler`.
* ``boil:resume_of`` (list ``[trial number, step]``): the sampler's proposal, in a study whose
  objective resumes runs, that this trial continue the run of an earlier PRUNED trial of its
  configuration from that trial's last reported step.
* ``boil:resume`` (list): written by :func:`~optuna_boil.resume_from` on every trial that calls
  it: ``[trial number, step]`` when the trial continues that run, ``[]`` when it trains from the
  start. A study in which any trial holds it resumes runs.

Trial user attributes (scalars, for optuna-dashboard's table and plots; ``boil_predicted_score``
is the model's prediction of the configuration's value at the full budget, in the metric's units,
made when the trial started and updated at each of its decision points):
``boil_budget``, ``boil_initial_budget``, ``boil_predicted_score``, ``boil_log_acq``,
``boil_extensions``, ``boil_decisions`` (how many decision points the pruner held for the
trial), ``boil_stop`` (why the pruner stopped the trial), ``boil_fallback`` (why
a decision fell back to random sampling, e.g. a failed model fit), ``boil_retrain_of`` (the
number of an earlier trial whose configuration this trial trains again from the start: the
model chose it to train longer, usually to the full budget) and ``boil_resumed_from`` (the
number of the earlier trial whose run this trial continues from its checkpoint).

Study system attribute:

* ``boil:resources`` (dict ``{"min_resource": int, "max_resource": int, "auto": bool}``): the
  study's budget range, stored once it is known (for ``"auto"``, once a trial has finished), so
  every process, :func:`~optuna_boil.recommend` and the dashboard agree.

Optuna's own system attributes read here: ``failed_trial`` (int) and ``retry_history`` (list of
int), written by :class:`~optuna.storages.RetryFailedTrialCallback` on a retried trial.

Validation policy: storage is input like any other (another version, a bug, a hand edit or a
hostile user may have written anything there), and a finished trial cannot be repaired through
Optuna, so no stored value may stop a study. Every value is therefore read through the typed
accessors below (``get_*``, :func:`retry_sources`, :func:`latest_fit`), never from
``system_attrs`` directly, and checked where it is read:

* A missing value, or ``None`` (what :func:`set_system` stores for a non-finite float), means "not
  set": the accessor returns ``None``, ``{}``, ``0`` or an empty set, silently.
* A value of the wrong type or shape, or a non-finite or out-of-range number, is ignored for that
  trial as if it were missing, with one warning per process (``_logging.warn_once``) that names
  the trial number, the key and the bad value. Numbers must be real numbers (``bool`` is not
  one); integers may be stored as integral floats (``5.0``).
* In a collection (``retry_history``, the published parameters) only the bad entries are dropped.
* :func:`latest_fit` skips a stored fit unless every value is present, finite and of the right
  type and shape, and falls back to the next newest valid fit, or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_boil._logging import warn_once


BUDGET = "boil:budget"
CHECK = "boil:check"
PARAMS = "boil:params"
FIT = "boil:fit"
COST = "boil:cost"
EXTENSIONS = "boil:extensions"
DECISIONS = "boil:decisions"
RESOURCES = "boil:resources"
FULL_STEP = "boil:full_step"
ALIVE = "boil:alive"
RESUME_OF = "boil:resume_of"
RESUME = "boil:resume"
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"

USER_BUDGET = "boil_budget"
USER_INITIAL_BUDGET = "boil_initial_budget"
USER_PREDICTED_SCORE = "boil_predicted_score"
USER_LOG_ACQ = "boil_log_acq"
USER_EXTENSIONS = "boil_extensions"
USER_DECISIONS = "boil_decisions"
USER_STOP = "boil_stop"
USER_FALLBACK = "boil_fallback"
USER_RETRAIN_OF = "boil_retrain_of"
USER_RANDOM = "boil_random"
USER_RESUMED_FROM = "boil_resumed_from"
USER_FIDELITY_TRUST = "boil_fidelity_trust"  # a study user attribute


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
    """Write a trial system attribute (non-finite floats are stored as ``None``)."""
    study._storage.set_trial_system_attr(trial_id, key, _json_safe(value))


def set_initial_budget(
    study: optuna.Study, trial_id: int, budget: int, check: int | None = None
) -> None:
    """Publish a trial's first budget (system attribute, and the dashboard's two columns) and
    its first decision point before it (``check``, if any)."""
    set_system(study, trial_id, BUDGET, int(budget))
    if check is not None and check < budget:
        set_system(study, trial_id, CHECK, int(check))
    set_user(study, trial_id, USER_BUDGET, int(budget))
    set_user(study, trial_id, USER_INITIAL_BUDGET, int(budget))


def set_user(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    """Write a trial user attribute (non-finite floats are stored as ``None``)."""
    study._storage.set_trial_user_attr(trial_id, key, _json_safe(value))


# Reading: validation helpers ------------------------------------------------------------------

_MISSING = object()


class _Bad(Exception):
    """A stored value that does not have the documented shape (the message says why)."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _warn_bad(trial: FrozenTrial, key: str, value: Any, why: str) -> None:
    shown = _show(value)
    warn_once(
        ("storage", trial._trial_id, trial.number, key, shown),
        f"Trial {trial.number}: ignoring the stored value of {key!r}, {shown} ({why}).",
    )


def _number(value: Any) -> float:
    """A finite real number (``bool`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"expected a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError as e:  # an int beyond the float range
        raise _Bad("out of the float range") from e
    if not math.isfinite(out):
        raise _Bad("not finite")
    return out


def _integer(value: Any) -> int:
    """An integer, possibly stored as an integral float."""
    out = _number(value)
    if out != math.floor(out):
        raise _Bad("not an integer")
    return int(value) if isinstance(value, int) else int(out)


def _non_negative(value: float) -> float:
    if value < 0:
        raise _Bad("negative")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise _Bad("not positive")
    return value


def _read(trial: FrozenTrial, key: str, parse: Callable[[Any], Any]) -> Any:
    """``parse(value)`` of ``trial``'s system attribute ``key``; ``None`` if missing or bad."""
    value = trial.system_attrs.get(key)
    if value is None:
        return None
    try:
        return parse(value)
    except _Bad as e:
        _warn_bad(trial, key, value, str(e))
        return None


# Reading: accessors ---------------------------------------------------------------------------


def get_budget(trial: FrozenTrial) -> int | None:
    """The trial's current budget (``boil:budget``, a non-negative integer), or ``None``."""
    return _read(trial, BUDGET, lambda v: int(_non_negative(_integer(v))))


def get_check(trial: FrozenTrial) -> int | None:
    """The trial's next decision point (``boil:check``, a non-negative integer), or ``None``."""
    return _read(trial, CHECK, lambda v: int(_non_negative(_integer(v))))


def get_cost(trial: FrozenTrial) -> tuple[int, float] | None:
    """The latest reported ``(step, cumulative cost)`` (``boil:cost``), or ``None``."""

    def parse(value: Any) -> tuple[int, float]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Bad("expected [step, cost]")
        return _integer(value[0]), _non_negative(_number(value[1]))

    return _read(trial, COST, parse)


def uses_reported_costs(trials: Iterable[FrozenTrial]) -> bool:
    """Whether any trial holds a valid reported cost (then the model uses reported costs)."""
    return any(get_cost(t) is not None for t in trials)


def get_alive(trial: FrozenTrial) -> float | None:
    """UTC epoch seconds of the pruner's latest sign of life (``boil:alive``), or ``None``."""
    return _read(trial, ALIVE, _number)


def _count(trial: FrozenTrial, key: str) -> int:
    out = _read(trial, key, lambda v: int(_non_negative(_integer(v))))
    return out if out is not None else 0


def get_extensions(trial: FrozenTrial) -> int:
    """How often the pruner extended the trial's budget (``boil:extensions``); 0 if unset."""
    return _count(trial, EXTENSIONS)


def get_decisions(trial: FrozenTrial) -> int:
    """How many decision points the pruner held for the trial (``boil:decisions``); 0 if
    unset."""
    return _count(trial, DECISIONS)


def get_published_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters the sampler published for the trial (``boil:params``); ``{}`` if unset.

    Entries whose name is not a string or whose value is not a JSON scalar (string, number,
    bool or null) are dropped.
    """

    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"expected a dict, got {type(value).__name__}")
        return value

    published = _read(trial, PARAMS, parse)
    if not published:
        return {}
    out = {
        k: v
        for k, v in published.items()
        if isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool)))
    }
    if len(out) != len(published):
        _warn_bad(trial, PARAMS, published, "entries that are not name: scalar were dropped")
    return out


def _run_point(trial: FrozenTrial) -> Callable[[Any], tuple[int, int]]:
    """Parser of ``[trial number, step]``: an earlier trial's number and a non-negative step."""

    def parse(value: Any) -> tuple[int, int]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Bad("expected [trial number, step]")
        number, step = _integer(value[0]), int(_non_negative(_integer(value[1])))
        if not 0 <= number < trial.number:
            raise _Bad("not the number of an earlier trial")
        return number, step

    return parse


def get_resume_of(trial: FrozenTrial) -> tuple[int, int] | None:
    """The sampler's proposal that ``trial`` continue an earlier run (``boil:resume_of``):
    ``(trial number, step)``, or ``None``."""
    return _read(trial, RESUME_OF, _run_point(trial))


def calls_resume(trial: FrozenTrial) -> bool:
    """Whether the trial's objective called :func:`~optuna_boil.resume_from` (``boil:resume``
    is set, whatever its value)."""
    return trial.system_attrs.get(RESUME) is not None


def get_resumed(trial: FrozenTrial) -> tuple[int, int] | None:
    """The run ``trial`` continues (``boil:resume``): ``(trial number, step)``, or ``None`` when
    it trains from the start (``[]``) or did not call :func:`~optuna_boil.resume_from`."""

    def parse(value: Any) -> tuple[int, int] | None:
        if isinstance(value, (list, tuple)) and not value:
            return None
        return _run_point(trial)(value)

    return _read(trial, RESUME, parse)


def held_run(trial: FrozenTrial) -> tuple[int, bool] | None:
    """The earlier trial whose run ``trial`` holds, and whether its objective has taken it: the
    run it continues (``boil:resume``) once it called :func:`~optuna_boil.resume_from`, else
    the run it was offered (``boil:resume_of``, ``answered`` False); ``None`` if neither."""
    if calls_resume(trial):
        resumed = get_resumed(trial)
        return (resumed[0], True) if resumed is not None else None
    offered = get_resume_of(trial)
    return (offered[0], False) if offered is not None else None


def retry_sources(trial: FrozenTrial) -> set[int]:
    """Numbers of the failed trials that ``trial`` retries (``failed_trial``, ``retry_history``).

    Only numbers of earlier trials (``0 <= n < trial.number``) count; anything else is ignored.
    """
    out: set[int] = set()

    def check(value: Any) -> int:
        n = _integer(value)
        if not 0 <= n < trial.number:
            raise _Bad("not the number of an earlier trial")
        return n

    failed = _read(trial, FAILED_TRIAL, check)
    if failed is not None:
        out.add(failed)
    history = trial.system_attrs.get(RETRY_HISTORY)
    if history is None:
        return out
    if not isinstance(history, (list, tuple)):
        _warn_bad(trial, RETRY_HISTORY, history, "expected a list of trial numbers")
        return out
    bad = False
    for entry in history:
        try:
            out.add(check(entry))
        except _Bad:
            bad = True
    if bad:
        _warn_bad(trial, RETRY_HISTORY, history, "entries that are not earlier trial numbers")
    return out


# The stored fit: required scalar keys (``True``: must be positive), optional ones and defaults.
_FIT_SCALARS = {
    "m0": False,
    "g0": False,
    "t_lengthscale": True,
    "outputscale": True,
    "noise": True,
    "mean": False,
}
_FIT_OPTIONAL = {"slope": False, "late": True, "run": False}


def check_fit(value: Any) -> dict[str, Any]:
    """A validated copy of a stored fit (``boil:fit``); raises ValueError naming the bad key.

    Every key of :meth:`~optuna_boil._model.gp.JointGP.hyperparameters` must be a finite number
    (lengthscales, output scale, noise and ``late`` positive) and ``x_lengthscale`` a non-empty
    list of them; ``slope``, ``late`` and ``run`` may be missing (older versions). Other keys are
    dropped.
    """
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    keys: Iterable[tuple[str, bool, bool]] = [
        *((k, pos, True) for k, pos in _FIT_SCALARS.items()),
        *((k, pos, False) for k, pos in _FIT_OPTIONAL.items()),
    ]
    for key, positive, required in keys:
        if key not in value:
            if required:
                raise ValueError(f"{key!r} is missing")
            continue
        try:
            number = _number(value[key])
            out[key] = _positive(number) if positive else number
        except _Bad as e:
            raise ValueError(f"{key!r} = {_show(value[key])}: {e}") from None
    xl = value.get("x_lengthscale", _MISSING)
    if xl is _MISSING:
        raise ValueError("'x_lengthscale' is missing")
    if not isinstance(xl, (list, tuple)) or len(xl) == 0:
        raise ValueError(f"'x_lengthscale' = {_show(xl)}: expected a non-empty list of numbers")
    try:
        out["x_lengthscale"] = [_positive(_number(v)) for v in xl]
    except _Bad as e:
        raise ValueError(f"'x_lengthscale' = {_show(xl)}: {e}") from None
    return out


def latest_fit(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The newest valid model fit (``boil:fit`` of the highest-numbered trial that has one).

    A fit that fails :func:`check_fit` is skipped with a warning naming the trial and the key,
    so the next newest valid fit is used, or ``None``.
    """
    for t in sorted(trials, key=lambda t: t.number, reverse=True):
        fit = t.system_attrs.get(FIT)
        if fit is None:
            continue
        try:
            return check_fit(fit)
        except ValueError as e:
            _warn_bad(t, FIT, fit, str(e))
    return None


# Study attributes -------------------------------------------------------------------------------


def get_resources(study: optuna.Study) -> tuple[int, int, bool] | None:
    """The study's stored ``(min_resource, max_resource, auto)``, or ``None`` (unset or bad)."""
    value = study._storage.get_study_system_attrs(study._study_id).get(RESOURCES)
    if value is None:
        return None
    lo = value.get("min_resource") if isinstance(value, dict) else None
    hi = value.get("max_resource") if isinstance(value, dict) else None
    auto = value.get("auto") if isinstance(value, dict) else None
    ok = (
        isinstance(lo, int)
        and isinstance(hi, int)
        and not isinstance(lo, bool)
        and not isinstance(hi, bool)
        and isinstance(auto, bool)
        and 0 <= lo <= hi
    )
    if not ok:
        warn_once(
            (study.study_name, RESOURCES, _show(value)),
            f"Ignoring the study's malformed {RESOURCES!r} attribute: {_show(value)}.",
        )
        return None
    assert isinstance(lo, int) and isinstance(hi, int) and isinstance(auto, bool)
    return lo, hi, auto


def set_resources(study: optuna.Study, lo: int, hi: int, auto: bool) -> None:
    """Store the study's budget range."""
    study._storage.set_study_system_attr(
        study._study_id, RESOURCES, {"min_resource": lo, "max_resource": hi, "auto": auto}
    )


def get_full_step(study: optuna.Study, lo: int, hi: int) -> int | None:
    """The study's stored full step for the range ``(lo, hi)``, or ``None`` (unset, another
    range, or malformed)."""
    value = study._storage.get_study_system_attrs(study._study_id).get(FULL_STEP)
    if not isinstance(value, dict) or value.get("range") != [lo, hi]:
        return None
    full = value.get("full_step")
    if isinstance(full, int) and not isinstance(full, bool) and 0 <= full <= hi:
        return full
    return None


def set_full_step(study: optuna.Study, lo: int, hi: int, full: int) -> None:
    """Store the step at which a run of the range ``(lo, hi)`` is fully trained."""
    study._storage.set_study_system_attr(
        study._study_id, FULL_STEP, {"range": [lo, hi], "full_step": full}
    )

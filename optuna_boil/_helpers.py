"""What a user's objective and script call: the trial's budget, reported costs, the
recommendation. They read what the sampler and the pruner stored; only :func:`recommend` (and
:func:`~optuna_boil.publish_to_dashboard`) fit a model, because the user asks for one."""

from __future__ import annotations

import math
from typing import NamedTuple

import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _context
from optuna_boil import _storage
from optuna_boil._model.fitted import FittedModel
from optuna_boil._policy import Policy


def get_budget(trial: optuna.trial.BaseTrial) -> int | None:
    """The step budget the trial is currently allowed.

    The budget is chosen when the trial's first ``suggest_*`` call runs, and grows when
    :class:`~optuna_boil.BOILPruner` lets the trial continue. An objective can use it to size a
    learning-rate schedule (which then has to stretch when the budget grows).

    Returns :obj:`None` when no budget applies: without :class:`~optuna_boil.BOILPruner`, with
    ``max_resource="auto"`` before any trial has finished (that trial trains fully), before the
    trial's first ``suggest_*`` call, and for a trial whose parameters came from another sampler
    or :meth:`~optuna.study.Study.enqueue_trial` until it reaches ``min_resource``. Treat
    :obj:`None` as "train to the full length".

    Args:
        trial: The trial given to the objective.
    """
    if isinstance(trial, optuna.Trial):
        frozen = trial.study._storage.get_trial(trial._trial_id)
    elif isinstance(trial, FrozenTrial):
        frozen = trial
    else:
        return None
    return _storage.get_budget(frozen)


def report_cost(trial: optuna.Trial, cost: float) -> None:
    """Report the trial's cumulative cost so far, in any unit (GPU seconds, tokens, ...).

    Without it, cost is counted in steps, the unit budgets are given in. Once any trial of the
    study reports a cost, the model uses reported costs (trials without one are left out of the
    cost model). The cost decides how long configurations train, never which configuration is
    tried. Call it after :meth:`~optuna.trial.Trial.report` with the cost up to that step.

    Args:
        trial: The trial given to the objective.
        cost: Cumulative cost, a finite non-negative number.
    """
    value = float(cost)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`cost` must be a finite non-negative number, got {cost!r}.")
    frozen = trial.study._storage.get_trial(trial._trial_id)
    step = frozen.last_step if frozen.last_step is not None else 0
    _storage.set_system(trial.study, trial._trial_id, _storage.COST, [int(step), value])


class Resume(NamedTuple):
    """Where a trial's training continues from (:func:`resume_from`).

    Attributes:
        trial_number: The earlier trial whose run this trial continues: load its checkpoint.
        step: The last step that run reported: report only the steps after it.
    """

    trial_number: int
    step: int


def resume_from(trial: optuna.Trial) -> Resume | None:
    """The earlier run this trial continues, if any: how an objective that keeps checkpoints
    lets optuna-boil continue stopped runs instead of training them again.

    Call it after the trial's ``suggest_*`` calls. When it returns a :class:`Resume`, load the
    checkpoint the objective saved for trial ``trial_number`` (a file per trial number, or
    :mod:`optuna.artifacts`), train on from there and report only the steps after ``step``; the
    trial has that trial's parameters. When it returns :obj:`None`, train from the start.

    Calling it is how an objective tells optuna-boil that it can resume: until some trial of
    the study has called it, decisions are made as if every run restarted from step 1.
    Afterwards, training a configuration that a PRUNED trial stopped early costs only its
    remaining steps, and the sampler weighs such continuations against new runs; the model
    treats the two trials as one run, one curve (see ``docs/resume.md``). A trial that continues
    a run and reaches ``max_resource`` ends COMPLETE, with the user attribute
    ``boil_resumed_from``. One run is never continued by two trials that did not fail (of two
    workers that were offered the same run at once, the lower trial number takes it). The call
    is cheap (one read of the study) and can be repeated: it returns the same answer.

    Args:
        trial: The trial given to the objective.

    Raises:
        ValueError: If the trial has no parameters yet (call it after ``suggest_*``).
    """
    storage, study = trial.study._storage, trial.study
    frozen = storage.get_trial(trial._trial_id)
    if _storage.calls_resume(frozen):
        return _as_resume(_storage.get_resumed(frozen))
    if not frozen.params:
        raise ValueError(
            f"resume_from(trial) was called before trial {frozen.number}'s suggest_* calls: "
            "the sampler chooses the run to continue there. Call it after them."
        )
    offer = _storage.get_resume_of(frozen)
    if offer is not None:
        for t in study._get_trials(deepcopy=False, states=None, use_cache=False):
            held = _storage.held_run(t)
            if t.number == frozen.number or t.state == TrialState.FAIL or held is None:
                continue
            if held[0] == offer[0] and (held[1] or t.number < frozen.number):
                offer = None  # another trial continues that run: train from the start
                break
    _storage.set_system(study, trial._trial_id, _storage.RESUME, list(offer or []))
    if offer is not None:
        _storage.set_user(study, trial._trial_id, _storage.USER_RESUMED_FROM, offer[0])
    return _as_resume(offer)


def _as_resume(point: tuple[int, int] | None) -> Resume | None:
    return Resume(*point) if point is not None else None


def fit_study(study: Study) -> FittedModel | None:
    """Fit the model to the whole study (no trial excluded); :obj:`None` without data."""
    ctx = _context.Context.read(study)
    space = ctx.space()
    if space is None:
        return None
    return ctx.fit(space, exclude=None)[0]


class Recommendation(NamedTuple):
    """The configuration the model expects to be best at the full budget.

    Attributes:
        trial: The recommended trial (its ``params`` are the configuration).
        value: The predicted value at ``max_resource``, in the metric's units, within the
            range of the values observed.
        std: The standard deviation of that prediction.
        fully_trained: Whether the trial was trained to ``max_resource``.
    """

    trial: FrozenTrial
    value: float
    std: float
    fully_trained: bool

    def __repr__(self) -> str:
        return (
            f"Recommendation(trial={self.trial.number}, params={self.trial.params}, "
            f"value={self.value:.6g}, std={self.std:.3g}, fully_trained={self.fully_trained})"
        )


def recommend(study: Study) -> Recommendation:
    """The configuration the model expects to be best at the full budget.

    The trials the model's GP holds (every trial with a curve, or a subsample of at most the
    model's ``max_gp_points`` of them in a larger study) are ranked by a lower confidence bound
    (mean minus one standard deviation) of the model's prediction of their compressed score at
    ``max_resource``, so a configuration seen only briefly does not win on an optimistic
    extrapolation. Trials trained to ``max_resource`` (and not FAILed) are preferred: the others
    are considered only when there is none (for a study that ended early). Without data it falls
    back to ``study.best_trial``.

    Returns:
        A :class:`Recommendation` ``(trial, value, std, fully_trained)``.
    """
    fitted = fit_study(study)
    if fitted is None:
        best = study.best_trial
        value = float(best.value) if best.value is not None else math.nan
        return Recommendation(best, value, math.nan, True)
    with _context.FIT_LOCK, _context.limit_threads():
        index, value, std = Policy(fitted).recommend()
    number = int(fitted.data.numbers[index])
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
    storage = study._storage
    trial = storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    )
    full = bool(index in set(fitted.fully_trained().tolist()))
    return Recommendation(trial, sign * value, std, full)

from __future__ import annotations

import math

import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_boil import _storage
from optuna_boil._model.model import FittedModel


def get_budget(trial: optuna.trial.BaseTrial) -> int | None:
    """The step budget the trial is currently allowed.

    The budget is chosen when the trial's first ``suggest_*`` call runs, and may grow later when
    :class:`~optuna_boil.BOILPruner` extends it. An objective can use it to size a learning-rate
    schedule or its training loop. Returns :obj:`None` when no budget applies (no
    :class:`~optuna_boil.BOILPruner`, or ``max_resource="auto"`` before any trial finished).

    Args:
        trial: The trial given to the objective.
    """
    from optuna_boil._pruner import BOILPruner

    if not isinstance(trial, optuna.Trial):
        budget = (
            trial.system_attrs.get(_storage.BUDGET) if hasattr(trial, "system_attrs") else None
        )
        return int(budget) if budget is not None else None
    study = trial.study
    attrs = study._storage.get_trial_system_attrs(trial._trial_id)
    if _storage.BUDGET in attrs:
        return int(attrs[_storage.BUDGET])
    if isinstance(study.pruner, BOILPruner):
        trials = study._get_trials(deepcopy=False, use_cache=False)
        t_hi = study.pruner._resolve_max(trials)
        if t_hi is not None:
            frozen = study._storage.get_trial(trial._trial_id)
            return study.pruner._assign_budget(study, frozen, trials, t_hi)
    return None


def report_cost(trial: optuna.Trial, cost: float) -> None:
    """Report the trial's cumulative cost so far, in any unit (GPU seconds, tokens, ...).

    Without it, cost is counted in steps, the unit budgets are given in. Once any trial of the
    study reports a cost, the model uses reported costs (trials without one are left out of the
    cost model). Call it after :meth:`~optuna.trial.Trial.report` with the cost up to that step.

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


def fit_study(study: Study) -> FittedModel | None:
    """Fit the model to the whole study (no trial excluded); :obj:`None` without data."""
    from optuna_boil._model.search_space import SearchSpace
    from optuna_boil._pruner import BOILPruner
    from optuna_boil._sampler import BOILSampler

    sampler = study.sampler if isinstance(study.sampler, BOILSampler) else BOILSampler(seed=0)
    trials = study._get_trials(deepcopy=False, use_cache=False)
    space_dict = optuna.search_space.intersection_search_space(trials, include_pruned=True)
    space_dict = {k: v for k, v in space_dict.items() if not v.single()}
    if isinstance(study.pruner, BOILPruner):
        t_lo, t_hi = study.pruner._min_resource, study.pruner._resolve_max(trials)
    else:
        t_lo, t_hi, _ = sampler._resources(study, trials)
    if not space_dict or t_hi is None:
        return None
    result = sampler.fit(study, trials, SearchSpace(space_dict), t_lo, t_hi, None)
    return result[0] if result is not None else None


def recommend(study: Study) -> tuple[FrozenTrial, float]:
    """The configuration the model expects to be best at the full budget.

    Unlike :attr:`optuna.study.Study.best_trial`, which only considers COMPLETE trials and compares
    their last values, this looks at every trial with a curve (PRUNED ones included) and ranks
    them by a lower confidence bound (mean minus one standard deviation) of the GP's prediction
    of the compressed score at ``max_resource``, so a configuration seen only briefly does not
    win on an optimistic extrapolation. Without data it falls back to ``study.best_trial``.

    Returns:
        The recommended trial and its predicted score at the full budget, in the metric's units.
    """
    from optuna_boil._sampler import _FIT_LOCK
    from optuna_boil._sampler import _limit_threads

    fitted = fit_study(study)
    if fitted is None:
        return study.best_trial, float(study.best_value)
    with _FIT_LOCK, _limit_threads():
        index, value = fitted.recommend()
    number = int(fitted.data.numbers[index])
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
    storage = study._storage
    trial = storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    )
    return trial, sign * value

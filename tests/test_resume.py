"""Freeze-thaw (issue 27): a trial continues a stopped run from its checkpoint."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import Resume
from optuna_boil import _storage
from optuna_boil import resume_from
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._observations import build
from tests._helpers import add_curve_trial


FULL = 20
DIST = {"x": FloatDistribution(0.0, 1.0)}


def _curve(x: float, steps: range) -> dict[int, float]:
    return {s: (1.0 - (x - 0.3) ** 2) * (1.0 - math.exp(-s / 6.0)) for s in steps}


def _add(study: optuna.Study, state: TrialState, x: float, steps: range, **attrs: object) -> None:
    add_curve_trial(study, x, _curve(x, steps), state, **attrs)


def _data(study: optuna.Study) -> dict[int, np.ndarray]:
    data = build(study.trials, SearchSpace(DIST), study.direction, FULL, "steps")
    return {int(n): s for n, s in zip(data.numbers, data.steps, strict=True)}


def test_a_continued_run_is_one_curve_and_the_earlier_trial_is_left_out() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.PRUNED, 0.2, range(1, 6))
    _add(study, TrialState.COMPLETE, 0.2, range(6, FULL + 1), **{_storage.RESUME: [0, 5]})
    _add(study, TrialState.PRUNED, 0.7, range(1, 4))
    steps = _data(study)
    assert sorted(steps) == [1, 2]
    np.testing.assert_array_equal(steps[1], np.arange(1, FULL + 1))  # no step counted twice
    np.testing.assert_array_equal(steps[2], np.arange(1, 4))


def test_a_chain_of_continuations_is_one_curve() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.PRUNED, 0.2, range(1, 4))
    _add(study, TrialState.PRUNED, 0.2, range(4, 9), **{_storage.RESUME: [0, 3]})
    _add(study, TrialState.RUNNING, 0.2, range(9, 11), **{_storage.RESUME: [1, 8]})
    steps = _data(study)
    assert list(steps) == [2]
    np.testing.assert_array_equal(steps[2], np.arange(1, 11))


@pytest.mark.parametrize(
    "state, own_steps",
    [
        (TrialState.FAIL, range(6, 9)),  # the earlier run is still the one to continue
        (TrialState.PRUNED, range(1, 9)),  # it trained from the start after all
    ],
)
def test_a_failed_or_restarted_continuation_leaves_both_curves(
    state: TrialState, own_steps: range
) -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.PRUNED, 0.2, range(1, 6))
    _add(study, state, 0.2, own_steps, **{_storage.RESUME: [0, 5]})
    steps = _data(study)
    assert sorted(steps) == [0, 1]
    np.testing.assert_array_equal(steps[0], np.arange(1, 6))
    np.testing.assert_array_equal(steps[1], np.array(own_steps))


def test_resume_from_before_suggest_is_an_error_naming_the_trial() -> None:
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match=f"trial {trial.number}"):
        resume_from(trial)


def test_two_trials_offered_one_run_do_not_both_continue_it() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.PRUNED, 0.2, range(1, 6))
    first, second = study.ask(), study.ask()
    for trial in (first, second):
        trial.suggest_float("x", 0.0, 1.0)
        _storage.set_system(study, trial._trial_id, _storage.RESUME_OF, [0, 5])
    # The later trial asks first: the earlier one was offered the same run and takes it.
    assert resume_from(second) is None
    assert resume_from(first) == Resume(0, 5)
    assert resume_from(first) == Resume(0, 5)  # the same answer when asked again
    resumed = study.trials[first.number]
    assert resumed.user_attrs[_storage.USER_RESUMED_FROM] == 0
    assert _storage.USER_RESUMED_FROM not in study.trials[second.number].user_attrs


def _study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(
        direction="maximize",
        sampler=BOILSampler(seed=seed, n_startup_trials=4),
        pruner=BOILPruner(min_resource=1, max_resource=FULL),
    )


def _objective(checkpoints: dict[int, int], trained: list[int], resume: bool):  # type: ignore[no-untyped-def]
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        start = 0
        if resume:
            point = resume_from(trial)
            if point is not None:
                earlier = trial.study.trials[point.trial_number]
                assert earlier.params == trial.params  # exactly the earlier configuration
                assert checkpoints[point.trial_number] == point.step
                start = point.step
        value = math.nan
        for step in range(start + 1, FULL + 1):
            trained.append(trial.number)
            value = (1.0 - (x - 0.3) ** 2 - 0.5 * (y - 0.6) ** 2) * (1.0 - math.exp(-step / 6))
            checkpoints[trial.number] = step
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def test_an_objective_that_resumes_continues_runs_and_nothing_is_trained_twice() -> None:
    checkpoints: dict[int, int] = {}
    trained: list[int] = []
    study = _study()
    study.optimize(_objective(checkpoints, trained, resume=True), n_trials=24)
    resumed = [t for t in study.trials if _storage.USER_RESUMED_FROM in t.user_attrs]
    assert resumed, "the study continued no run"
    sources = [t.user_attrs[_storage.USER_RESUMED_FROM] for t in resumed]
    assert len(sources) == len(set(sources))  # no run continued twice
    for t in resumed:
        earlier = study.trials[t.user_attrs[_storage.USER_RESUMED_FROM]]
        assert earlier.state == TrialState.PRUNED
        assert min(t.intermediate_values) > max(earlier.intermediate_values)
    # Every step of every run was trained once: the steps trained are the data's steps.
    data = build(study.trials, SearchSpace(study.trials[-1].distributions), study.direction,
                 FULL, "steps")  # fmt: skip
    assert len(trained) == sum(s.size for s in data.steps)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and study.best_trial.state == TrialState.COMPLETE


def test_without_resume_from_no_run_is_offered_for_continuation() -> None:
    # The same study as above, whose objective does not call resume_from: decisions as before.
    study = _study()
    study.optimize(_objective({}, [], resume=False), n_trials=24)
    assert not any(_storage.RESUME_OF in t.system_attrs for t in study.trials)
    assert not any(_storage.USER_RESUMED_FROM in t.user_attrs for t in study.trials)


@pytest.mark.parametrize(
    "other, offered",
    [
        ((TrialState.FAIL, _storage.RESUME, [0, 5]), True),  # a failed continuation: offer again
        ((TrialState.RUNNING, _storage.RESUME, [0, 5]), False),  # continued now
        ((TrialState.RUNNING, _storage.RESUME_OF, [0, 5]), False),  # offered, not answered yet
        ((TrialState.RUNNING, _storage.RESUME, []), True),  # offered, trains from the start
    ],
)
def test_a_run_is_offered_unless_a_trial_that_did_not_fail_holds_it(
    other: tuple[TrialState, str, list[int]], offered: bool
) -> None:
    from optuna_boil._context import Context
    from optuna_boil._sampler import _resume_source

    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.PRUNED, 0.2, range(1, 6))
    state, key, value = other
    _add(study, state, 0.2, range(6, 8), **{key: value})
    context = Context(study, study.trials, BOILSampler()._settings)
    source = _resume_source(context, 0, FULL)
    assert (source is not None and source.number == 0) == offered
    assert _resume_source(context, 0, 5) is None  # it reached that budget already


def test_parallel_workers_never_continue_one_run_twice() -> None:
    study = _study(seed=1)
    study.optimize(_objective({}, [], resume=True), n_trials=24, n_jobs=2)
    sources = [
        t.user_attrs[_storage.USER_RESUMED_FROM]
        for t in study.trials
        if _storage.USER_RESUMED_FROM in t.user_attrs and t.state != TrialState.FAIL
    ]
    assert len(sources) == len(set(sources))

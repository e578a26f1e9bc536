"""BOILPruner: budgets, step conventions, decision points and cashing in."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend
from tests._helpers import MAX
from tests._helpers import boil_study
from tests._helpers import make_objective


class CountingStorage(InMemoryStorage):
    """Counts reads of the whole trial list."""

    def __init__(self) -> None:
        super().__init__()
        self.full_reads = 0

    def get_all_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        states = kwargs.get("states")
        if states is None or len(states) > 1:
            self.full_reads += 1
        return super().get_all_trials(*args, **kwargs)


def test_should_prune_reads_the_study_only_at_decision_points() -> None:
    storage = CountingStorage()
    study = boil_study(storage)
    assert isinstance(study.sampler, BOILSampler)
    # New configurations at the acquisition's budget, so that this one has a decision point.
    study.sampler._configure(deliver_new=False)
    study.optimize(make_objective(), n_trials=6)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.suggest_int("n", 1, 4)
    trial.suggest_categorical("c", ["a", "b", "c"])
    budget = get_budget(trial)
    assert budget is not None and budget < MAX
    storage.full_reads = 0
    for step in range(1, budget):
        trial.report(0.5, step)
        assert not trial.should_prune()
    assert storage.full_reads == 0  # between decision points: the trial itself only
    trial.report(0.5, budget)
    trial.should_prune()
    assert storage.full_reads == 1  # the decision point reads the study once


def test_smooth_study_ends_with_fully_trained_best_configurations() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=20)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 2
    best = study.best_trial
    assert best.last_step == MAX
    rec = recommend(study)
    assert rec.fully_trained and rec.trial.state == TrialState.COMPLETE
    # The recommendation is the best trained configuration, or as good within 1%.
    assert rec.trial.value is not None and best.value is not None
    assert rec.trial.value >= best.value - 0.01 * abs(best.value)
    # The default fits the curve weighting with the GP: the stored fit moved off BOIL's (0, 1).
    fit = study.trials[-1].system_attrs["boil:fit"]
    assert (fit["m0"], fit["g0"]) != (0.0, 1.0)
    # Budget decisions are stored for the dashboard.
    assert any(t.user_attrs.get("boil_extensions") for t in complete)
    assert all("boil_stop" in t.user_attrs for t in study.trials if t.state == TrialState.PRUNED)


def test_a_decision_point_can_train_on_short_of_max_resource() -> None:
    """With ``continue_inform=2`` a run may also go on, for what a longer look tells, to at
    least twice the step it reached; by default it only stops or trains to the end."""
    study = boil_study()
    assert isinstance(study.sampler, BOILSampler)
    # New configurations at the acquisition's budget: more decision points in 20 trials.
    study.sampler._configure(continue_inform=2.0, deliver_new=False)
    study.optimize(make_objective(), n_trials=20)
    short = [
        t
        for t in study.trials
        if t.user_attrs.get("boil_extensions") == 1 and t.user_attrs["boil_budget"] < MAX
    ]
    assert short
    for t in short:
        assert t.user_attrs["boil_budget"] >= 2 * t.user_attrs["boil_initial_budget"]
        assert t.last_step == t.user_attrs["boil_budget"]  # trained to the new budget, no further
    off = boil_study()
    off.optimize(make_objective(), n_trials=20)
    extended = [t for t in off.trials if t.user_attrs.get("boil_extensions")]
    assert extended and all(t.user_attrs["boil_budget"] == MAX for t in extended)


def test_trials_are_never_pruned_at_or_after_max_resource() -> None:
    study = optuna.create_study(
        sampler=BOILSampler(seed=0, n_startup_trials=2),
        pruner=BOILPruner(min_resource=1, max_resource=5),
    )

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        get_budget(trial)
        for step in range(1, 9):  # reports past max_resource
            trial.report(float(step), step)
            if step >= 5:
                assert not trial.should_prune()
            elif trial.should_prune():
                raise optuna.TrialPruned()
        return 8.0

    study.optimize(objective, n_trials=5)
    assert any(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("every", [1, 3, 7, 10, 15])
def test_sparse_reports_reach_complete(every: int) -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=4),
        pruner=BOILPruner(min_resource=1, max_resource=52),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        value = 0.0
        for step in range(every, 53, every):
            value = 1 - (x - 0.3) ** 2 - math.exp(-step / 10)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=14)
    assert any(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_trial.last_step == max(range(every, 53, every))


@pytest.mark.parametrize("max_resource", [20, "auto"])
def test_zero_based_loops_complete_at_their_last_round(max_resource: int | str) -> None:
    """Optuna's pruning callbacks report rounds 0 .. N-1; max_resource=N must just work."""
    study = boil_study(max_resource=max_resource)
    study.optimize(make_objective(steps=range(0, 20)), n_trials=12)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(t.last_step == 19 for t in complete)
    assert study.best_trial.last_step == 19


def test_auto_is_resolved_once_a_trial_finished_and_stored_in_the_study() -> None:
    study = boil_study(max_resource="auto")
    study.optimize(make_objective(), n_trials=5)
    first = study.trials[0]
    assert first.state == TrialState.COMPLETE and first.last_step == MAX
    stored = study._storage.get_study_system_attrs(study._study_id)["boil:resources"]
    assert stored == {"min_resource": 2, "max_resource": MAX, "auto": True}
    # Later trials got budgets below the resolved maximum.
    assert all(get_budget(t) is not None for t in study.trials[1:])


def test_warns_once_when_reports_go_past_max_resource() -> None:
    messages: list[str] = []
    logger = optuna.logging.get_logger("optuna.boil")
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        study = boil_study(max_resource=8)
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        pruned = []
        for step in range(1, 13):
            trial.report(0.1 * step, step)
            pruned.append(trial.should_prune())
    finally:
        logger.removeHandler(handler)
    assert not any(pruned[7:])  # never pruned at or after max_resource
    past = [m for m in messages if "past max_resource" in m]
    assert len(past) == 1 and "max_resource=9" in past[0]


def test_trials_of_another_sampler_get_a_budget() -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=BOILPruner(min_resource=2, max_resource=MAX),
    )
    study.enqueue_trial({"x": 0.3, "n": 4, "c": "b"})
    study.optimize(make_objective(), n_trials=6)
    for t in study.trials:
        assert isinstance(t.system_attrs.get("boil:budget"), int)
        assert 2 <= t.system_attrs["boil:budget"] <= MAX


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"min_resource": -1}, "-1"),
        ({"min_resource": 5, "max_resource": 2}, "2"),
        ({"max_resource": "full"}, "full"),
        ({"min_resource": True}, "True"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        BOILPruner(**kwargs)


class _ListHandler(optuna.logging.logging.Handler):  # type: ignore[name-defined]
    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages

    def emit(self, record: Any) -> None:
        self.messages.append(record.getMessage())

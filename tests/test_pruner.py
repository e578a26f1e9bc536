"""BOILPruner: budgets, step conventions, decision points and cashing in."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend
from optuna_boil._policy import Policy
from optuna_boil._storage import get_check
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
    decision_points = 0
    for step in range(1, budget + 1):
        check = get_check(study._storage.get_trial(trial._trial_id))
        trial.report(0.5, step)
        at_point = step >= budget or (check is not None and step >= check)
        decision_points += at_point
        if trial.should_prune():
            assert at_point  # only a decision point stops a trial
            break
        # Between decision points the trial itself only; each decision point reads the study
        # once.
        assert storage.full_reads == decision_points
    assert decision_points >= 1


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


def _spy_budget_for(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the budget of every ``Policy.budget_for`` call."""
    original = Policy.budget_for
    budgets: list[int] = []

    def spy(self: Policy, *args: Any, **kwargs: Any) -> Any:
        decision = original(self, *args, **kwargs)
        budgets.append(int(decision.t))
        return decision

    monkeypatch.setattr(Policy, "budget_for", spy)
    return budgets


def _assert_stopped_or_continued_at_budget(t: optuna.trial.FrozenTrial) -> None:
    initial = t.user_attrs["boil_initial_budget"]
    budget = t.system_attrs["boil:budget"]
    assert t.user_attrs["boil_budget"] == budget
    if t.state == TrialState.PRUNED:
        # Stopped exactly where it reached its budget, or at a decision point before it (at
        # least its first check, the shortest look of a new run), and says why.
        stop = t.user_attrs["boil_stop"]
        assert t.last_step is not None and t.last_step <= initial and budget == initial
        at = "budget reached" if t.last_step == initial else "decision point"
        assert stop.startswith(f"{at} at step {t.last_step}")
    else:
        # Continued at its budget to the end.
        assert t.state == TrialState.COMPLETE and t.last_step == MAX
        assert budget == MAX and t.user_attrs["boil_extensions"] >= 1 and initial < MAX


def test_trials_of_another_sampler_get_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget_for = _spy_budget_for(monkeypatch)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=BOILPruner(min_resource=2, max_resource=MAX),
    )
    study.enqueue_trial({"x": 0.3, "n": 4, "c": "b"})
    study.optimize(make_objective(), n_trials=10)
    trials = study.trials
    assert trials[0].params == {"x": 0.3, "n": 4, "c": "b"}
    # The 8 start-up trials (the default n_startup_trials) get the start-up budget,
    # 2 + (12 - 2) // 16 = 2; the first 7 stop there (the 8th reaches its budget with the
    # start-up over: the model decides, below).
    for t in trials[:8]:
        assert t.user_attrs["boil_initial_budget"] == 2
    for t in trials[:7]:
        assert t.state == TrialState.PRUNED and t.last_step == 2
    # Later ones get the model's budget for their parameters.
    assert [t.user_attrs["boil_initial_budget"] for t in trials[8:]] == budget_for
    for t in trials:
        assert isinstance(t.system_attrs["boil:budget"], int)
        assert 2 <= t.user_attrs["boil_initial_budget"] <= MAX
        assert get_budget(t) == t.system_attrs["boil:budget"]
        _assert_stopped_or_continued_at_budget(t)


def test_an_enqueued_trial_after_the_start_up_gets_the_models_budget_for_its_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=6)
    budget_for = _spy_budget_for(monkeypatch)
    enqueued = {"x": 0.3, "n": 4, "c": "b"}
    study.enqueue_trial(enqueued)
    budgets: list[int | None] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        n = trial.suggest_int("n", 1, 4)
        c = trial.suggest_categorical("c", ["a", "b", "c"])
        value = 0.0
        for step in range(1, MAX + 1):
            value = (1 - (x - 0.3) ** 2 + 0.05 * n + 0.1 * (c == "b")) * (
                1 - math.exp(-(step + 1) / 4)
            )
            trial.report(value, step)
            pruned = trial.should_prune()
            budgets.append(get_budget(trial))
            if pruned:
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=1)
    t = study.trials[-1]
    assert t.params == enqueued
    assert "boil:params" not in t.system_attrs  # the parameters are not BOILSampler's
    # No budget before min_resource; at min_resource the pruner asks the model once.
    assert budgets[0] is None
    assert len(budget_for) == 1
    initial = budget_for[0]
    assert 2 <= initial <= MAX
    assert t.user_attrs["boil_initial_budget"] == initial
    assert budgets[1] == initial  # stored at step 2, read back by get_budget
    assert get_budget(t) == t.system_attrs["boil:budget"]
    assert t.last_step is not None and t.last_step >= initial
    _assert_stopped_or_continued_at_budget(t)


def test_an_enqueued_start_up_trial_gets_the_start_up_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget_for = _spy_budget_for(monkeypatch)
    study = boil_study()
    study.enqueue_trial({"x": 0.9, "n": 1, "c": "a"})
    study.optimize(make_objective(), n_trials=1)
    (t,) = study.trials
    assert t.params == {"x": 0.9, "n": 1, "c": "a"}
    assert budget_for == []
    assert t.user_attrs["boil_initial_budget"] == 2 == get_budget(t)
    assert t.state == TrialState.PRUNED and t.last_step == 2


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


def test_every_budget_decision_is_logged_at_info_with_its_reason(caplog_boil: Any) -> None:
    study = boil_study()
    caplog_boil.set_level(logging.INFO, logger="optuna.boil")
    study.optimize(make_objective(), n_trials=12)
    # A record may reach the capture twice (the fixture's handler and pytest's own): one each.
    records = {id(r): r for r in caplog_boil.records if r.name == "optuna.boil"}
    messages = [r.getMessage() for r in records.values()]
    for t in study.trials:
        stops = [m for m in messages if m.startswith(f"Trial {t.number} stops at step")]
        goes_on = [m for m in messages if m.startswith(f"Trial {t.number} continues from")]
        if t.state == TrialState.PRUNED:
            # One line per stop, with the reason stored for the dashboard.
            assert len(stops) == 1 and t.user_attrs["boil_stop"] in stops[0]
        # One line per decision point, continue or stop, each with why ("...step N: why.").
        assert len(stops) + len(goes_on) == t.user_attrs.get("boil_decisions", 0)
        assert all(re.search(r"step \d+\)?: \S", m) for m in stops + goes_on), goes_on
    model_starts = [m for m in messages if " trains for " in m]
    assert len(model_starts) == sum("boil_log_acq" in t.user_attrs for t in study.trials) > 0


def test_decision_lines_are_silenced_by_optuna_verbosity() -> None:
    logger = logging.getLogger("optuna.boil")
    messages: list[str] = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    before = optuna.logging.get_verbosity()

    def decisions() -> list[str]:
        return [m for m in messages if " stops at step " in m or " continues from step " in m]

    try:
        study = boil_study(seed=0)
        optuna.logging.set_verbosity(optuna.logging.INFO)
        study.optimize(make_objective(), n_trials=7)
        assert decisions()
        messages.clear()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(make_objective(), n_trials=3)
        assert sum(t.user_attrs.get("boil_decisions", 0) for t in study.trials[7:]) > 0
        assert not decisions()
    finally:
        logger.removeHandler(handler)
        optuna.logging.set_verbosity(before)

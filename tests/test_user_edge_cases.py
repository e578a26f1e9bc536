"""Edge cases met by users: budget ranges, changing search spaces, clashes, failures, globals."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import dataclasses
import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial
import pytest
import torch

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _context
from optuna_boil import _settle
from optuna_boil import _storage
from optuna_boil import get_budget
from optuna_boil import recommend
from optuna_boil._context import Context
from optuna_boil._model.gp import FitError
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import FittedModel
from optuna_boil._policy import Policy
from optuna_boil._settle import choice as _choice


def _curve_objective(
    steps: range, high: Callable[[int], float] = lambda number: 1.0
) -> Callable[[optuna.Trial], float]:
    """A deterministic saturating curve to minimise; ``x``'s range may depend on the trial."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, high(trial.number))
        value = 0.0
        for step in steps:
            value = (x - 0.3) ** 2 + 1.0 / (step + 1)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def _study(
    min_resource: int, max_resource: int, seed: int = 0, n_startup: int = 3
) -> optuna.Study:
    return optuna.create_study(
        sampler=BOILSampler(seed=seed, n_startup_trials=n_startup),
        pruner=BOILPruner(min_resource=min_resource, max_resource=max_resource),
    )


# 1. min_resource == max_resource with steps from 0 ------------------------------------------


def test_min_equal_to_max_with_steps_from_zero_runs() -> None:
    study = _study(5, 5, n_startup=2)
    study.optimize(_curve_objective(range(5)), n_trials=4)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    rng = _context.budget_range(study, study.trials)
    assert (rng.t_lo, rng.t_full) == (4, 4)


# 2. A parameter whose range changes ----------------------------------------------------------


def test_numeric_ranges_that_differ_are_merged_into_their_union() -> None:
    def trial(dist: object, value: float) -> optuna.trial.FrozenTrial:
        return create_trial(
            state=TrialState.COMPLETE,
            params={"x": value},
            distributions={"x": dist},  # type: ignore[dict-item]
            value=1.0,
        )

    merged = _context.search_space(
        [trial(FloatDistribution(0, 1), 0.5), trial(FloatDistribution(0.5, 2), 1.5)]
    )
    assert merged == {"x": FloatDistribution(0, 2)}
    merged = _context.search_space(
        [trial(IntDistribution(1, 10, step=3), 4), trial(IntDistribution(4, 16, step=3), 7)]
    )
    assert merged == {"x": IntDistribution(1, 16, step=3)}
    # Another kind, another log flag or another step grid: not the same parameter.
    for other in (FloatDistribution(0, 2, log=False, step=0.5), IntDistribution(0, 2)):
        assert _context.search_space([trial(FloatDistribution(0, 1), 0.5), trial(other, 1)]) == {}


def test_a_widened_range_still_ends_with_fully_trained_trials() -> None:
    study = _study(1, 8, n_startup=4)
    study.optimize(_curve_objective(range(1, 9)), n_trials=6)
    study.optimize(_curve_objective(range(1, 9), high=lambda n: 2.0), n_trials=8)
    assert any(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_trial.last_step == 8
    new = study.trials[6:]
    no_model = [t for t in new if "no search space" in str(t.user_attrs.get("boil_stop", ""))]
    assert len(no_model) <= 1
    assert sum(t.last_step == 1 for t in new) <= len(new) // 2
    assert all("boil_predicted_score" in t.user_attrs for t in new)  # model decisions


def test_without_a_model_the_pruner_still_trains_one_trial_fully(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No search space at all: every decision of the sampler and the pruner is without a model.
    monkeypatch.setattr(_context, "search_space", lambda trials: {})
    study = _study(1, 8, n_startup=2)
    study.optimize(_curve_objective(range(1, 9)), n_trials=6)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 1 and complete[0].last_step == 8
    assert study.best_trial.number == complete[0].number


# 3. min_resource below the first reported step ------------------------------------------------


def test_min_resource_below_the_first_reported_step_acts_as_that_step() -> None:
    best: dict[int, float] = {}
    for lo in (0, 1):
        study = _study(lo, 10, seed=1, n_startup=4)
        study.optimize(_curve_objective(range(1, 11)), n_trials=12)
        # Trial 0's budget is chosen before any report: min_resource then applies as given.
        budgets = [
            int(t.user_attrs["boil_initial_budget"])
            for t in study.trials[1:]
            if "boil_initial_budget" in t.user_attrs
        ]
        assert budgets and min(budgets) >= 1
        assert _context.budget_range(study, study.trials).t_lo == 1
        best[lo] = study.best_value
    assert best[0] <= best[1] + 0.05


# 4, 5. Clashes are with RUNNING trials, on the decoded configuration ---------------------


def _int_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", 1, 5000)
    value = 0.0
    for step in range(1, 9):
        value = ((x - 1200) / 5000) ** 2 + 1.0 / step
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.fixture
def int_study() -> optuna.Study:
    study = _study(1, 8, n_startup=3)
    study.optimize(_int_objective, n_trials=4)
    return study


def _settle_at(
    study: optuna.Study,
    x: int,
    running: int | None,
    budget: int | None,
    retrain_of: int | None = None,
) -> int:
    """Decide a new trial forced to ``x`` while a RUNNING trial holds ``running``; the ``x``
    :meth:`BOILSampler._settle` leaves it with."""
    if running is not None:
        other = study.ask()
        _storage.set_system(study, other._trial_id, _storage.PARAMS, {"x": running})
        if budget is not None:
            _storage.set_initial_budget(study, other._trial_id, budget)
    trial = study._storage.get_trial(study.ask()._trial_id)
    ctx = Context.read(study)
    space = ctx.space()
    assert space is not None
    fitted, _ = ctx.fit(space, exclude=trial.number)
    assert fitted is not None
    rng = np.random.RandomState(0)
    decision = Policy(fitted).suggest(rng)
    decision = dataclasses.replace(
        decision, x=space.encode({"x": x}), t=budget or decision.t, retrain_of=retrain_of
    )
    sampler = study.sampler
    assert isinstance(sampler, BOILSampler)
    known = {t.number: _choice(t) for t in ctx.trials if _storage.get_published_params(t)}
    settled = _settle.settle(study, trial, space, fitted, decision, rng, True, known)
    return int(space.decode(settled.x)["x"])


def test_a_configuration_running_elsewhere_at_another_budget_is_a_clash(
    int_study: optuna.Study,
) -> None:
    assert _settle_at(int_study, 700, running=700, budget=None) != 700


def test_neighbouring_integers_are_not_the_same_configuration(int_study: optuna.Study) -> None:
    assert _settle_at(int_study, 701, running=700, budget=3) == 701


def test_a_finished_trial_with_the_same_choice_is_no_clash(int_study: optuna.Study) -> None:
    """A finished run the decision knew is data, not a clash (in one process, every one)."""
    finished = [t for t in int_study.trials if _storage.get_published_params(t)]
    assert finished and finished[0].state != TrialState.RUNNING
    x = int(finished[0].params["x"])
    budget = finished[0].user_attrs["boil_initial_budget"]
    # The policy labels a choice of a configuration it has data of as a retrain of that run.
    retrain = _settle_at(int_study, x, running=None, budget=budget, retrain_of=finished[0].number)
    assert retrain == x


def test_a_finished_run_with_the_same_choice_but_no_retrain_label_is_a_clash(
    int_study: optuna.Study,
) -> None:
    """The policy labels every choice of a configuration it has data of, so the same
    configuration and budget as a finished run without the label means that run was chosen
    (and finished) after this decision read the data: a duplicate (4 threads did that)."""
    finished = [t for t in int_study.trials if _storage.get_published_params(t)]
    x = int(finished[0].params["x"])
    budget = finished[0].user_attrs["boil_initial_budget"]
    assert _settle_at(int_study, x, running=None, budget=budget, retrain_of=None) != x


# 6. A run that reached the full step and then failed --------------------------------------


def test_a_failed_full_run_is_not_fully_trained() -> None:
    study = _study(1, 8, n_startup=3)
    for i in range(4):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        last = 8 if i == 3 else 2
        for step in range(1, last + 1):
            trial.report((x - 0.3) ** 2 + 1.0 / step, step)
        study.tell(trial, state=TrialState.FAIL if i == 3 else TrialState.PRUNED)
    rec = recommend(study)
    assert not rec.fully_trained
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    assert get_budget(trial) == 8


# 7. torch's global default device and dtype ------------------------------------------------


@pytest.fixture
def meta_device() -> Iterator[None]:
    dtype = torch.get_default_dtype()
    torch.set_default_device("meta")
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_device(None)
        torch.set_default_dtype(dtype)


def test_decisions_run_on_the_cpu_whatever_the_default_device(
    meta_device: None, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(1, 8, n_startup=3)
    study.optimize(_curve_objective(range(1, 9)), n_trials=5)
    assert all("boil_predicted_score" in t.user_attrs for t in study.trials[3:])
    assert not any("boil_fallback" in t.user_attrs for t in study.trials)
    assert recommend(study).trial is not None
    assert torch.empty(1).device.type == "meta"  # the user's default is back
    assert torch.get_default_dtype() == torch.float32


def test_a_fallback_does_not_warn_of_conditional_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise FitError("no start converged")

    monkeypatch.setattr(BOILModel, "fit", broken)
    messages: list[str] = []
    for module in ("optuna_boil._sampler", "optuna_boil._settle"):
        monkeypatch.setattr(f"{module}.warn_once", lambda key, message: messages.append(message))
    study = _study(1, 8, n_startup=2)
    study.optimize(_curve_objective(range(1, 9)), n_trials=4)
    assert not any("conditional" in m for m in messages)
    assert any("sampled at random" in m for m in messages)


# 8. Only numerical failures fall back ------------------------------------------------------


def test_a_fit_error_falls_back_and_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise FitError("no start converged")

    monkeypatch.setattr(BOILModel, "fit", broken)
    study = _study(1, 8, n_startup=2)
    study.optimize(_curve_objective(range(1, 9)), n_trials=4)
    assert all("no start converged" in t.user_attrs["boil_fallback"] for t in study.trials[2:])


def test_a_programming_error_in_the_fit_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(BOILModel, "fit", broken)
    study = _study(1, 8, n_startup=2)
    with pytest.raises(TypeError, match="a bug"):
        study.optimize(_curve_objective(range(1, 9)), n_trials=4)


# 9. The dashboard predicts at a bounded number of steps --------------------------------------


def test_the_dashboard_figure_of_a_long_budget_predicts_at_few_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("optuna_dashboard")
    pytest.importorskip("plotly")
    from optuna_boil import publish_to_dashboard

    study = _study(1, 10**6, n_startup=2)
    study.optimize(_curve_objective(range(1, 6)), n_trials=3)
    sizes: list[int] = []
    predict = FittedModel.predict

    def spy(self: FittedModel, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes.append(int(np.asarray(t).size))
        return predict(self, x, t)

    monkeypatch.setattr(FittedModel, "predict", spy)
    assert publish_to_dashboard(study)
    assert sizes and max(sizes) <= 250


# 10. One full step for the pruner and the sampler -----------------------------------------


def test_the_pruner_uses_the_study_full_step_not_the_trial_own() -> None:
    pruner = BOILPruner(min_resource=1, max_resource=10)
    study = optuna.create_study(sampler=BOILSampler(seed=0), pruner=pruner)
    a = study.ask()
    a.suggest_float("x", 0.0, 1.0)
    for step in range(10):  # 0 .. 9: fully trained at 9
        a.report(1.0 / (step + 1), step)
    study.tell(a, 0.1)
    b = study.ask()
    b.suggest_float("x", 0.0, 1.0)
    for step in range(1, 10):
        b.report(1.0 / (step + 1), step)
    frozen_b = study._storage.get_trial(b._trial_id)
    # B is at the study's full step: never pruned there (its own steps would say 10).
    assert frozen_b.last_step == 9 and not pruner.prune(study, frozen_b)
    sampler_full = _context.budget_range(study, study.trials).t_full
    assert sampler_full == 9
    assert BOILPruner(min_resource=1, max_resource=10)._full_step(study) == sampler_full


# 11. A best value of 0.0 ----------------------------------------------------------------------


def test_recommend_without_a_model_keeps_a_best_value_of_zero() -> None:
    study = optuna.create_study(sampler=BOILSampler(seed=0))
    study.optimize(lambda trial: 0.0, n_trials=2)
    rec = recommend(study)
    assert rec.value == 0.0 and not math.isnan(rec.value)

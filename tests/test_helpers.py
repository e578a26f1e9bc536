"""get_budget, report_cost and recommend."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend
from optuna_boil import report_cost
from tests._helpers import MAX
from tests._helpers import add_curve_trial
from tests._helpers import boil_study
from tests._helpers import linear_objective
from tests._helpers import make_objective


def test_report_cost_is_stored_and_validated() -> None:
    study = boil_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.report(0.1, 1)
    report_cost(trial, 12.5)
    assert study._storage.get_trial_system_attrs(trial._trial_id)["boil:cost"] == [1, 12.5]
    with pytest.raises(ValueError, match="nan"):
        report_cost(trial, float("nan"))
    with pytest.raises(ValueError, match="-1"):
        report_cost(trial, -1)


def test_get_budget_is_none_without_a_budget_and_reads_the_stored_one() -> None:
    study = optuna.create_study()
    trial = study.ask()
    assert get_budget(trial) is None
    study = boil_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    assert (
        get_budget(trial) == study._storage.get_trial(trial._trial_id).system_attrs["boil:budget"]
    )


def test_recommend_is_within_the_observed_range_with_its_uncertainty() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=9)
    trial, value, std, fully_trained = recommend(study)
    assert trial.params == study.trials[trial.number].params
    observed = [v for t in study.trials for v in t.intermediate_values.values()]
    assert min(observed) <= value <= max(observed)
    # The value is the predicted (compressed) score of the recommended configuration's curve:
    # within the range of that curve, not just of the study's values.
    curve = list(trial.intermediate_values.values())
    assert min(curve) <= value <= max(curve)
    # A fully trained, noiseless configuration is known well: a small uncertainty.
    assert fully_trained and trial.state == TrialState.COMPLETE
    assert math.isfinite(std) and 0 < std < 0.05 * (max(observed) - min(observed))


def _add(study: optuna.Study, x: float, level: float, last: int, state: TrialState) -> None:
    add_curve_trial(
        study, x, {s: level * (1 - math.exp(-s / 3)) for s in range(1, last + 1)}, state
    )


def test_recommend_prefers_fully_trained_configurations() -> None:
    study = boil_study()
    for i, x in enumerate([0.1, 0.2, 0.3]):  # trained to the end, levels 0.5, 0.55, 0.6
        _add(study, x, 0.5 + 0.05 * i, MAX, TrialState.COMPLETE)
    for i, x in enumerate([0.7, 0.8, 0.9]):  # stopped at step 4, far better curves
        _add(study, x, 2.0 + 0.1 * i, 4, TrialState.PRUNED)
    rec = recommend(study)
    assert rec.fully_trained
    assert rec.trial.number == 2  # the best of the fully trained ones
    assert rec.trial.state == TrialState.COMPLETE and rec.trial.last_step == MAX


def test_recommend_without_a_fully_trained_configuration_takes_the_best_partial_one() -> None:
    study = boil_study()
    for i, x in enumerate([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]):
        _add(study, x, 0.5 + 0.3 * i, 4, TrialState.PRUNED)
    rec = recommend(study)
    assert not rec.fully_trained
    assert rec.trial.number == 5 and rec.trial.state == TrialState.PRUNED


def test_cost_that_depends_on_x_does_not_make_the_cheapest_configuration_win() -> None:
    """Per-epoch cost falls with x, but quality falls too: the search must not follow cost."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        seconds, value = 0.0, 0.0
        for step in range(1, 21):
            value = (1 - (x - 0.25) ** 2) * (1 - math.exp(-step / 5))
            seconds += 10.0 * (1.05 - x)  # x = 1 is 20x cheaper per epoch than x = 0
            trial.report(value, step)
            report_cost(trial, seconds)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=5),
        pruner=BOILPruner(min_resource=1, max_resource=20),
    )
    study.optimize(objective, n_trials=22)
    model_x = [t.params["x"] for t in study.trials[5:]]
    # Most model decisions stay near the good region, not at the cheap corner x -> 1.
    assert sum(x > 0.8 for x in model_x) <= len(model_x) // 4
    assert abs(study.best_trial.params["x"] - 0.25) < 0.2


def test_a_recommendation_prints_in_one_short_line() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=10)
    rec = recommend(study)
    text = repr(rec)
    assert text.startswith(f"Recommendation(trial={rec.trial.number}, params=")
    assert "\n" not in text and len(text) < 300
    assert f"fully_trained={rec.fully_trained}" in text
    assert "FrozenTrial" not in text


def test_predicted_score_is_the_value_at_max_resource_in_metric_units() -> None:
    # Curves that rise linearly to their end: the compressed score the GP models lies far below
    # the final value, by more than the final values differ.
    study = boil_study(seed=3)
    study.optimize(linear_objective, n_trials=22)
    complete = [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE and "boil_predicted_score" in t.user_attrs
    ]
    assert len(complete) >= 3
    final = [float(t.value) for t in complete]  # type: ignore[arg-type]
    errors = [
        abs(t.user_attrs["boil_predicted_score"] - v) for t, v in zip(complete, final, strict=True)
    ]
    spread = max(final) - min(final)
    assert spread > 0
    # The median: the study's first full trainings were predicted before any run had shown
    # where a curve ends.
    assert sorted(errors)[len(errors) // 2] <= 0.25 * spread, (errors, spread)
    # The recommendation's value is in the same units: the final value, not the score.
    rec = recommend(study)
    assert rec.fully_trained
    assert abs(rec.value - float(rec.trial.value)) <= 0.25 * spread  # type: ignore[arg-type]

"""Optuna's own sampler conformance suites, run against BOILSampler on several storages."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
from optuna.testing.pytest_samplers import SingleOnlySamplerTestCase
import pytest

from optuna_boil import BOILSampler


class TestBOILSampler(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BOILSampler]:
        # Two start-up trials so that the model, not the random start-up, is exercised.
        return lambda: BOILSampler(seed=0, n_startup_trials=2)


class TestBOILSamplerRelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BOILSampler]:
        # The suite tells one trial and then expects model-based relative parameters.
        return lambda: BOILSampler(seed=0, n_startup_trials=1)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1, 1)
    n = trial.suggest_int("n", 1, 8, log=True)
    c = trial.suggest_categorical("c", ["a", "b"])
    for step in range(1, 6):
        trial.report(x * x + step * 0.01 + (c == "b") + 0.1 * n, step)
    return x * x + (c == "b") + 0.1 * n


def _run(storage: optuna.storages.BaseStorage | None) -> optuna.Study:
    study = optuna.create_study(storage=storage, sampler=BOILSampler(seed=0, n_startup_trials=2))
    study.optimize(_objective, n_trials=5)
    return study


@pytest.mark.parametrize("mode", ["inmemory", "sqlite", "journal"])
def test_model_based_trials_on_storages(mode: str) -> None:
    from optuna.testing.storages import StorageSupplier

    reference = [t.params for t in _run(None).trials]
    with StorageSupplier(mode) as storage:
        study = _run(storage)
        trials = study.trials
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
        for t in trials:
            assert -1 <= t.params["x"] <= 1
            assert t.params["n"] in range(1, 9) and isinstance(t.params["n"], int)
            assert t.params["c"] in ("a", "b")
            for name, value in t.params.items():
                assert t.distributions[name]._contains(
                    t.distributions[name].to_internal_repr(value)
                )
        for t in trials[2:]:
            # Model decisions (not a random fallback), published for the dashboard and for
            # other workers, and the parameters the trial used.
            assert "boil_fallback" not in t.user_attrs
            assert "boil_predicted_score" in t.user_attrs and "boil_log_acq" in t.user_attrs
            assert t.system_attrs["boil:params"] == t.params
        # The same seed makes the same decisions whatever the storage.
        assert [t.params for t in trials] == reference

    figure = optuna.visualization.plot_optimization_history(study)
    (best_line,) = [trace for trace in figure.data if trace.name == "Best Value"]
    assert best_line.y[-1] == pytest.approx(study.best_value)

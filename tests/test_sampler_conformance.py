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


@pytest.mark.parametrize("mode", ["inmemory", "sqlite", "journal"])
def test_model_based_trials_on_storages(mode: str) -> None:
    from optuna.testing.storages import StorageSupplier

    with StorageSupplier(mode) as storage:
        study = optuna.create_study(
            storage=storage, sampler=BOILSampler(seed=0, n_startup_trials=2)
        )

        def objective(trial: optuna.Trial) -> float:
            x = trial.suggest_float("x", -1, 1)
            c = trial.suggest_categorical("c", ["a", "b"])
            for step in range(1, 6):
                trial.report(x * x + step * 0.01 + (c == "b"), step)
            return x * x + (c == "b")

        study.optimize(objective, n_trials=5)
        assert len(study.trials) == 5
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        # Model-based trials publish their prediction for the dashboard.
        assert "boil_predicted_score" in study.trials[-1].user_attrs

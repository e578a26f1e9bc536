"""Optuna's own example patterns with BOIL swapped in (issue 12, "Drop-in for existing code").

Each test takes an objective written the way Optuna's examples and integrations write it (steps
from 0, the integration callbacks, ``n_jobs``, ``copy_study``, the CLI, the plots), replaces the
sampler and pruner by ``BOILSampler``/``BOILPruner`` and checks what a user relies on: the study
has a ``best_trial``, it is COMPLETE, and it was trained for the whole loop. Every scenario runs
with ``max_resource="auto"`` and with the explicit number of rounds.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import math
from pathlib import Path
import subprocess
import sys
from typing import Literal
import warnings

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import recommend


sklearn_datasets = pytest.importorskip("sklearn.datasets")
sklearn_linear_model = pytest.importorskip("sklearn.linear_model")
sklearn_model_selection = pytest.importorskip("sklearn.model_selection")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402


N_ROUNDS = 12  # Rounds of every training loop below.
N_TRIALS = 10
MAX_RESOURCES = ["auto", "rounds"]  # "rounds": max_resource = the number of rounds.

Objective = Callable[[optuna.Trial], float]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(
    max_resource: str,
    n_rounds: int = N_ROUNDS,
    direction: Literal["minimize", "maximize"] = "maximize",
    **kwargs: object,
) -> optuna.Study:
    """A study with BOIL's sampler and pruner; ``max_resource`` is "auto" or "rounds"."""
    return optuna.create_study(
        direction=direction,
        sampler=BOILSampler(seed=0, n_startup_trials=4),
        pruner=BOILPruner(
            min_resource=1, max_resource="auto" if max_resource == "auto" else n_rounds
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def assert_fully_trained_best(study: optuna.Study, last_step: int) -> optuna.trial.FrozenTrial:
    """``study.best_trial`` exists, is COMPLETE and reported the last step of the loop.

    Also checks the rule behind it: no trial that reached the last step was pruned.
    """
    trials = study.get_trials(deepcopy=False)
    states = {t.number: (t.state.name, t.last_step) for t in trials}
    try:
        best = study.best_trial
    except ValueError as error:  # No COMPLETE trial.
        pytest.fail(f"study.best_trial does not exist ({error}); trials: {states}")
    assert best.state == TrialState.COMPLETE
    assert best.last_step == last_step, f"best trial {best.number} stopped early: {states}"
    assert max(best.intermediate_values) == last_step
    for t in trials:
        if t.last_step == last_step:
            assert t.state == TrialState.COMPLETE, f"trial {t.number} reached the end: {states}"
        if t.state == TrialState.COMPLETE:
            assert t.last_step == last_step
    return best


# --- Objectives, as Optuna's examples write them -------------------------------------------


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, ...]:
    X, y = sklearn_datasets.load_iris(return_X_y=True)
    return tuple(sklearn_model_selection.train_test_split(X, y, test_size=0.25, random_state=0))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    return tuple(
        sklearn_model_selection.train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    )


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[np.ndarray, ...]:
    X, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    return tuple(
        sklearn_model_selection.train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    )


def sgd_objective(
    data: tuple[np.ndarray, ...], first_step: int = 0, error: bool = False
) -> Objective:
    """Optuna's simple pruning example: ``SGDClassifier.partial_fit``, one report per round.

    Args:
        data: ``(X_train, X_valid, y_train, y_valid)``.
        first_step: Step of the first report (0 as in Optuna's example, or 1).
        error: Report ``1 - accuracy`` (minimise) instead of the accuracy (maximise).
    """
    train_x, valid_x, train_y, valid_y = data
    classes = np.unique(train_y)

    def objective(trial: optuna.Trial) -> float:
        alpha = trial.suggest_float("alpha", 1e-5, 1e-1, log=True)
        eta0 = trial.suggest_float("eta0", 1e-4, 1e-1, log=True)
        clf = sklearn_linear_model.SGDClassifier(
            alpha=alpha, eta0=eta0, learning_rate="constant", random_state=0
        )
        value = 0.0
        for step in range(first_step, first_step + N_ROUNDS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.partial_fit(train_x, train_y, classes=classes)
            accuracy = float(clf.score(valid_x, valid_y))
            value = 1.0 - accuracy if error else accuracy
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


# --- 1. scikit-learn partial_fit (Optuna's simple pruning example) --------------------------


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
@pytest.mark.parametrize("first_step", [0, 1])
def test_sgd_partial_fit(iris: tuple[np.ndarray, ...], max_resource: str, first_step: int) -> None:
    study = make_study(max_resource)
    study.optimize(sgd_objective(iris, first_step), n_trials=N_TRIALS)
    assert len(study.trials) == N_TRIALS
    assert_fully_trained_best(study, first_step + N_ROUNDS - 1)


# --- 2. optuna-integration's LightGBM and XGBoost callbacks (steps from 0) ------------------


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_lightgbm_pruning_callback(
    breast_cancer: tuple[np.ndarray, ...], max_resource: str
) -> None:
    lgb = pytest.importorskip("lightgbm")
    integration = pytest.importorskip("optuna_integration")
    train_x, valid_x, train_y, valid_y = breast_cancer

    def objective(trial: optuna.Trial) -> float:
        params = {
            "objective": "binary",
            "metric": "auc",
            "verbosity": -1,
            "num_threads": 1,
            "seed": 0,
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 2, 32, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100),
        }
        dtrain = lgb.Dataset(train_x, label=train_y)
        dvalid = lgb.Dataset(valid_x, label=valid_y, reference=dtrain)
        callback = integration.LightGBMPruningCallback(trial, "auc")
        booster = lgb.train(
            params, dtrain, num_boost_round=N_ROUNDS, valid_sets=[dvalid], callbacks=[callback]
        )
        return float(np.mean(np.rint(booster.predict(valid_x)) == valid_y))

    study = make_study(max_resource)
    study.optimize(objective, n_trials=N_TRIALS)
    best = assert_fully_trained_best(study, N_ROUNDS - 1)
    assert sorted(best.intermediate_values) == list(range(N_ROUNDS))


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_xgboost_pruning_callback(
    breast_cancer: tuple[np.ndarray, ...], max_resource: str
) -> None:
    xgb = pytest.importorskip("xgboost")
    integration = pytest.importorskip("optuna_integration")
    train_x, valid_x, train_y, valid_y = breast_cancer
    dtrain = xgb.DMatrix(train_x, label=train_y)
    dvalid = xgb.DMatrix(valid_x, label=valid_y)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "verbosity": 0,
            "nthread": 1,
            "seed": 0,
            "objective": "binary:logistic",
            "eval_metric": "auc",
            "eta": trial.suggest_float("eta", 1e-3, 1.0, log=True),
            "max_depth": trial.suggest_int("max_depth", 1, 8),
            "lambda": trial.suggest_float("lambda", 1e-8, 1.0, log=True),
        }
        callback = integration.XGBoostPruningCallback(trial, "validation-auc")
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=N_ROUNDS,
            evals=[(dvalid, "validation")],
            callbacks=[callback],
        )
        return float(np.mean(np.rint(booster.predict(dvalid)) == valid_y))

    study = make_study(max_resource)
    study.optimize(objective, n_trials=N_TRIALS)
    best = assert_fully_trained_best(study, N_ROUNDS - 1)
    assert sorted(best.intermediate_values) == list(range(N_ROUNDS))


# --- 3. Optuna's machinery around a finished study -----------------------------------------


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_optimize_with_two_threads(iris: tuple[np.ndarray, ...], max_resource: str) -> None:
    study = make_study(max_resource)
    study.optimize(sgd_objective(iris), n_trials=N_TRIALS, n_jobs=2)
    trials = study.trials
    assert len(trials) == N_TRIALS
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert_fully_trained_best(study, N_ROUNDS - 1)


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_copy_study_keeps_best_trial(
    iris: tuple[np.ndarray, ...], max_resource: str, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'boil.db'}"
    study = make_study(max_resource, storage=storage, study_name="boil")
    study.optimize(sgd_objective(iris), n_trials=N_TRIALS)
    best = assert_fully_trained_best(study, N_ROUNDS - 1)

    copy_storage = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(
        from_study_name="boil", from_storage=storage, to_storage=copy_storage, to_study_name="c"
    )
    copy = optuna.load_study(study_name="c", storage=copy_storage)
    assert len(copy.trials) == N_TRIALS
    copied = assert_fully_trained_best(copy, N_ROUNDS - 1)
    assert copied.params == best.params
    assert copied.value == best.value
    assert copied.intermediate_values == best.intermediate_values
    assert copy.best_value == study.best_value
    # BOIL's state travels with the trials (system attributes), so the copy can be analysed.
    trial, value, std = recommend(copy)[:3]
    assert trial.params in [t.params for t in copy.trials]
    assert math.isfinite(value) and std >= 0.0


def optuna_cli() -> list[str]:
    """The command that runs Optuna's CLI with this interpreter's environment."""
    script = Path(sys.executable).parent / "optuna"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from optuna.cli import main; sys.exit(main())"]


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_cli_best_trial(iris: tuple[np.ndarray, ...], max_resource: str, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    study = make_study(max_resource, storage=storage, study_name="boil-cli")
    study.optimize(sgd_objective(iris), n_trials=N_TRIALS)
    best = assert_fully_trained_best(study, N_ROUNDS - 1)

    proc = subprocess.run(
        [
            *optuna_cli(),
            "best-trial",
            "--study-name",
            "boil-cli",
            "--storage",
            storage,
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["number"] == best.number
    assert record["state"] == "COMPLETE"
    assert record["value"] == pytest.approx(best.value)
    assert record["params"] == pytest.approx(best.params)


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_visualization(iris: tuple[np.ndarray, ...], max_resource: str) -> None:
    pytest.importorskip("plotly")
    study = make_study(max_resource)
    study.optimize(sgd_objective(iris), n_trials=N_TRIALS)
    assert_fully_trained_best(study, N_ROUNDS - 1)

    figure = optuna.visualization.plot_intermediate_values(study)
    with_curves = [t for t in study.trials if t.intermediate_values]
    assert len(figure.data) == len(with_curves) == N_TRIALS

    figure = optuna.visualization.plot_optimization_history(study)
    (best_line,) = [trace for trace in figure.data if trace.name == "Best Value"]
    assert best_line.y[-1] == pytest.approx(study.best_value)


# --- 4. A minimising study, end to end -----------------------------------------------------


@pytest.mark.parametrize("max_resource", MAX_RESOURCES)
def test_minimize_end_to_end(
    digits: tuple[np.ndarray, ...], max_resource: str, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'min.db'}"
    study = make_study(max_resource, direction="minimize", storage=storage, study_name="min")
    study.optimize(sgd_objective(digits, error=True), n_trials=N_TRIALS)
    best = assert_fully_trained_best(study, N_ROUNDS - 1)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 1
    # Pruned trials stopped at their budget (or at a decision point before it), with the error
    # they had reached.
    for t in study.trials:
        if t.state == TrialState.PRUNED:
            stop = t.user_attrs["boil_stop"]
            at_budget = t.last_step == t.system_attrs["boil:budget"]
            assert at_budget or stop.startswith("decision point"), (t.number, stop)

    # A fresh process would load the study and ask BOIL which configuration to keep.
    loaded = optuna.load_study(study_name="min", storage=storage)
    trial, value, std = recommend(loaded)[:3]
    # Minimised: the lowest error among the fully trained configurations, not the highest.
    assert trial.number == best.number
    # The predicted error is the configuration's (compressed) error curve: within its range,
    # in error units (a sign error would give a negative value), and known well.
    curve = list(trial.intermediate_values.values())
    assert min(curve) <= value <= max(curve)
    assert math.isfinite(std) and 0.0 < std < 0.01
    assert trial.last_step == N_ROUNDS - 1, "recommend() should prefer a fully trained trial"
    assert trial.state == TrialState.COMPLETE

"""Real benchmark: tune LightGBM on scikit-learn's breast cancer data (boosting rounds as steps).

Task: binary LightGBM (one thread) on ``sklearn.datasets.load_breast_cancer`` (569 samples, 30
features), with a stratified 50 % training / 50 % validation split that is fixed per seed (every
method sees the same split for a given seed). A trial boosts for at most ``--max-rounds`` rounds
(300 by default) and reports the validation log loss every 10 rounds (steps 10, 20, ...); the
study *minimises* it. Six hyperparameters: learning rate (log, 1e-3..0.3), number of leaves (int,
log, 2..64), minimum samples per leaf (int, log, 2..50), feature fraction (0.3..1), bagging
fraction (0.4..1, resampled every round) and L2 regularisation (log, 1e-3..10). Every boosted
round counts against the run's ``--budget`` (6000 rounds: 20 full trainings).

Example::

    python -m benchmarks.real.boosting --quick          # smoke test, seconds
    python -m benchmarks.real.boosting --seeds 0-9      # the full comparison
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import optuna

from benchmarks.real import _harness


REPORT_EVERY = 10


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Suggest the six LightGBM hyperparameters."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, 50, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.4, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


@functools.cache
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x, y


@functools.lru_cache(maxsize=4)
def split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stratified 50 / 50 training / validation split of seed ``seed``."""
    from sklearn.model_selection import train_test_split

    x, y = _dataset()
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    return x_tr, y_tr, x_va, y_va


def curve(params: dict[str, Any], data_seed: int, seed: int, max_rounds: int) -> _harness.Reports:
    """Boost from scratch, yielding ``(rounds, validation_log_loss)`` every 10 rounds.

    Args:
        params: The six hyperparameters of :func:`suggest`.
        data_seed: Seed of the training / validation split (the run's seed).
        seed: Seed of the feature and bagging subsampling.
        max_rounds: Rounds of a full training.
    """
    import lightgbm as lgb

    x_tr, y_tr, x_va, y_va = split(data_seed)
    config = {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": seed,
        "bagging_freq": 1,
        "learning_rate": float(params["learning_rate"]),
        "num_leaves": int(params["num_leaves"]),
        "min_child_samples": int(params["min_child_samples"]),
        "feature_fraction": float(params["feature_fraction"]),
        "bagging_fraction": float(params["bagging_fraction"]),
        "lambda_l2": float(params["lambda_l2"]),
    }
    train = lgb.Dataset(x_tr, y_tr, params={"verbosity": -1})
    booster = lgb.Booster(params=config, train_set=train)
    booster.add_valid(lgb.Dataset(x_va, y_va, reference=train), "valid")
    for rounds in range(1, max_rounds + 1):
        booster.update()
        if rounds % REPORT_EVERY == 0:
            yield rounds, float(booster.eval_valid()[0][2])


def make_task(max_rounds: int) -> _harness.Task:
    """The boosting task description for the harness (warms LightGBM up outside the timings)."""
    warm_up = {"learning_rate": 0.1, "num_leaves": 4, "min_child_samples": 5}
    warm_up |= {"feature_fraction": 1.0, "bagging_fraction": 1.0, "lambda_l2": 1.0}
    next(curve(warm_up, 0, 0, REPORT_EVERY))
    return _harness.Task(
        name="boosting",
        steps=tuple(range(REPORT_EVERY, max_rounds + 1, REPORT_EVERY)),
        suggest=suggest,
        curve=functools.partial(curve, max_rounds=max_rounds),
        metric="validation log loss",
        unit="rounds",
        direction="minimize",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    _harness.main(
        argv,
        description=__doc__.split("\n\n")[0],
        make_task=make_task,
        defaults={"budget": 6000, "max_steps": 300, "seeds": "0-9"},
        quick={"budget": 300, "max_steps": 60, "seeds": "0"},
        step_option="--max-rounds",
    )


if __name__ == "__main__":
    main()

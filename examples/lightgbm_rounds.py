"""Tune LightGBM with BOIL, with boosting rounds as steps, minimising validation log loss.

Every ``--report-every`` boosting rounds a LightGBM callback reports the validation log loss at
the step of the current round and raises :class:`optuna.TrialPruned` when ``BOILPruner`` says the
trial's budget (in rounds) is used up. The study *minimises*: BOIL handles the direction itself.

Requires ``pip install lightgbm``.

    python examples/lightgbm_rounds.py              # 30 trials, up to 400 rounds each
    python examples/lightgbm_rounds.py --smoke      # 3 trials, up to 30 rounds (seconds)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import recommend


def report_every(trial: optuna.Trial, k: int) -> Callable[[Any], None]:
    """A LightGBM callback that reports the first validation metric every ``k`` rounds.

    Args:
        trial: The trial to report to.
        k: Reporting period, in boosting rounds.
    """

    def callback(env: Any) -> None:
        rounds = env.iteration + 1
        if rounds % k != 0 and rounds != env.end_iteration:
            return
        _, _, value, _ = env.evaluation_result_list[0]
        trial.report(float(value), rounds)
        if trial.should_prune():
            raise optuna.TrialPruned()

    return callback


def objective(trial: optuna.Trial, data: tuple[np.ndarray, ...], max_rounds: int, k: int) -> float:
    """Train a booster for up to ``max_rounds`` rounds and return the validation log loss."""
    X_train, X_val, y_train, y_val = data
    params = {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "num_threads": 1,
        "seed": trial.number,
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, 50, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }
    train_set = lgb.Dataset(X_train, y_train)
    val_set = lgb.Dataset(X_val, y_val, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[val_set],
        callbacks=[report_every(trial, k)],
    )
    return float(log_loss(y_val, booster.predict(X_val)))


def main() -> None:
    """Parse the command line and run the study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--max-rounds", type=int, default=400)
    parser.add_argument("--report-every", type=int, default=10)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///lightgbm.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 trials, up to 30 rounds")
    args = parser.parse_args()
    if args.smoke:
        args.n_trials, args.max_rounds = 3, 30

    X, y = load_breast_cancer(return_X_y=True)
    data = tuple(train_test_split(X, y, test_size=0.3, random_state=0, stratify=y))
    study = optuna.create_study(
        study_name="boil-lightgbm-rounds",
        storage=args.storage,
        load_if_exists=True,
        direction="minimize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(8, args.n_trials)),
        pruner=BOILPruner(min_resource=args.report_every, max_resource=args.max_rounds),
    )
    study.optimize(
        lambda t: objective(t, data, args.max_rounds, args.report_every), n_trials=args.n_trials
    )

    rounds = sum(t.last_step or 0 for t in study.trials)
    print(f"{len(study.trials)} trials, {rounds} boosting rounds in total.")
    trial, predicted, std = recommend(study)[:3]
    print(f"Recommended: trial {trial.number} (predicted log loss {predicted:.4f} ± {std:.4f})")
    for name, value in trial.params.items():
        print(f"  {name}: {value:.4g}")


if __name__ == "__main__":
    main()

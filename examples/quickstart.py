"""Tune a small PyTorch network on scikit-learn's digits with BOIL.

Each trial trains for as many epochs as BOIL allows (``get_budget``), reports the validation
accuracy after every epoch and stops when ``should_prune()`` says so. The study is stored in
SQLite, so it can be resumed and inspected with ``optuna-dashboard sqlite:///quickstart.db``.

    python examples/quickstart.py --n-trials 30
"""

from __future__ import annotations

import argparse
import math

import optuna
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import torch
from torch import nn

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend


MAX_EPOCHS = 30


def load_data() -> tuple[torch.Tensor, ...]:
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(X_train), as_y(y_train), as_x(X_val), as_y(y_val)


def objective(trial: optuna.Trial, data: tuple[torch.Tensor, ...]) -> float:
    X_train, y_train, X_val, y_val = data
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    hidden = trial.suggest_int("hidden", 16, 256, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128])
    budget = get_budget(trial) or MAX_EPOCHS

    torch.manual_seed(trial.number)
    model = nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    accuracy = 0.0
    for epoch in range(1, MAX_EPOCHS + 1):
        # A cosine schedule over the epochs this trial is allowed (it may be extended later).
        budget = max(budget, get_budget(trial) or budget)
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(budget, 1)))
        model.train()
        order = torch.randperm(len(X_train))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(X_train[idx]), y_train[idx]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(X_val).argmax(1) == y_val).float().mean())
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--storage", default="sqlite:///quickstart.db")
    parser.add_argument("--study-name", default="boil-quickstart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    data = load_data()
    study = optuna.create_study(
        study_name=args.study_name,
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed),
        pruner=BOILPruner(min_resource=1, max_resource=MAX_EPOCHS),
    )
    study.optimize(lambda t: objective(t, data), n_trials=args.n_trials)

    epochs = sum(t.last_step or 0 for t in study.trials)
    trial, predicted = recommend(study)
    print(f"\n{len(study.trials)} trials, {epochs} epochs trained in total.")
    print(f"Best observed accuracy: {max(t.value or 0 for t in study.trials):.4f}")
    print(f"Recommended configuration (trial {trial.number}, predicted {predicted:.4f}):")
    for name, value in trial.params.items():
        print(f"  {name}: {value}")
    print(f"\nInspect the study: optuna-dashboard {args.storage}")


if __name__ == "__main__":
    main()

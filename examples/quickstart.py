"""Tune a small PyTorch network on scikit-learn's digits with BOIL.

Each trial trains for as many epochs as BOIL allows (``get_budget``), reports the validation
accuracy after every epoch and stops when ``should_prune()`` says so. The most promising
configurations are trained for all ``MAX_EPOCHS`` epochs and end COMPLETE, so the study has a
``best_trial``; the others stop early and end PRUNED, and their curves still teach the model.
The study is stored in SQLite: inspect it with ``optuna-dashboard sqlite:///quickstart.db``.

    python examples/quickstart.py                           # 30 trials, a new study
    python examples/quickstart.py --resume NAME             # 30 more trials of study NAME
    python examples/quickstart.py --smoke                   # 4 tiny trials (seconds)
"""

from __future__ import annotations

import argparse
import math
import time

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import torch
from torch import nn

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend


Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def load_data(n_samples: int | None = None) -> Data:
    """Digits scaled to [0, 1], split 70/30 into training and validation sets.

    Args:
        n_samples: Use only the first ``n_samples`` images (for quick runs).
    """
    X, y = load_digits(return_X_y=True)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)

    def as_x(a: object) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)

    def as_y(a: object) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.long)

    return as_x(X_train), as_y(y_train), as_x(X_val), as_y(y_val)


def objective(trial: optuna.Trial, data: Data, max_epochs: int) -> float:
    """Train an MLP for the epochs BOIL allows; return the final validation accuracy."""
    X_train, y_train, X_val, y_val = data
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    hidden = trial.suggest_int("hidden", 16, 256, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.6)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128])

    torch.manual_seed(trial.number)
    model = nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        # The learning rate follows a cosine schedule over the epochs this trial may train.
        # get_budget() returns None when no budget applies: without BOILPruner, or with
        # max_resource="auto" before any trial has finished (the first trial then trains fully),
        # or for an enqueued trial before its first reports. None means "train to the end". The
        # budget is read again every epoch: it grows when the pruner decides that a promising
        # trial should train further (up to max_epochs).
        budget = get_budget(trial) or max_epochs
        progress = min((epoch - 1) / budget, 1.0)
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * progress))
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


def print_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """A one-line progress report, called by ``study.optimize`` after every trial."""
    epochs = len(trial.intermediate_values)
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    print(f"  trial {trial.number:3d} {trial.state.name:8s} {epochs:3d} epochs  accuracy {value}")


def summarise(study: optuna.Study, storage: str, max_epochs: int) -> None:
    """Tell the story of the study: effort spent, best trained trial, BOIL's recommendation."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    complete = states.count(TrialState.COMPLETE)
    pruned = states.count(TrialState.PRUNED)
    epochs = sum(len(t.intermediate_values) for t in trials)
    full = len(trials) * max_epochs
    print(f"\nStudy {study.study_name!r} ({storage})")
    print(
        f"{len(trials)} trials, {complete} COMPLETE (trained all {max_epochs} epochs), "
        f"{pruned} PRUNED (stopped early; their curves still teach the model)."
    )
    print(
        f"Epochs trained: {epochs}, against {full} to train every trial fully "
        f"({epochs / max(full, 1):.0%})."
    )

    if complete:
        best = study.best_trial
        print(f"\nBest COMPLETE trial: {best.number}, accuracy {best.value:.4f}")
        for name, value in best.params.items():
            print(f"  {name}: {value:.4g}" if isinstance(value, float) else f"  {name}: {value}")
    else:
        print(f"\nNo trial has trained all {max_epochs} epochs yet, so there is no best_trial.")

    # (trial, predicted accuracy after max_epochs epochs, standard deviation of the prediction)
    trial, predicted, std = recommend(study)[:3]
    print(
        f"\nRecommended configuration (optuna_boil.recommend): trial {trial.number}, "
        f"trained {len(trial.intermediate_values)} of {max_epochs} epochs,"
    )
    print(f"  predicted accuracy after {max_epochs} epochs: {predicted:.4f} ± {std:.4f}")

    if trial.state == TrialState.COMPLETE:
        print(
            f"\nNext: retrain trial {trial.number}'s configuration on all the data; browse the "
            f"curves with `optuna-dashboard {storage}`."
        )
    else:
        print(
            f"\nNext: train trial {trial.number}'s configuration fully, or continue the study: "
            f"`python examples/quickstart.py --resume {study.study_name} --storage {storage}`."
        )


def main() -> None:
    """Parse the command line, run (or resume) the study and summarise it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--storage", default="sqlite:///quickstart.db")
    parser.add_argument("--resume", metavar="NAME", help="add trials to the study NAME")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="4 trials, 5 epochs, 500 images")
    args = parser.parse_args()
    n_samples, n_startup_trials = None, 8
    if args.smoke:
        args.n_trials, args.max_epochs, n_samples, n_startup_trials = 4, 5, 500, 2

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A fresh study per run, so that runs with different settings never mix in one study.
    study_name = args.resume or time.strftime("boil-quickstart-%Y%m%d-%H%M%S")
    study = optuna.create_study(
        study_name=study_name,
        storage=args.storage,
        load_if_exists=args.resume is not None,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=n_startup_trials),
        # Epochs are reported as steps 1..max_epochs, so max_resource is the number of epochs.
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )
    print(f"Study {study_name!r} in {args.storage}: {args.n_trials} trials")
    data = load_data(n_samples)
    study.optimize(
        lambda t: objective(t, data, args.max_epochs),
        n_trials=args.n_trials,
        callbacks=[print_trial],
    )
    summarise(study, args.storage, args.max_epochs)


if __name__ == "__main__":
    main()

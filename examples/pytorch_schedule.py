"""Size a PyTorch cosine learning-rate schedule to the epoch budget BOIL gives each trial.

A small CNN is trained on scikit-learn's 8x8 digits. BOIL decides how many epochs each trial
may train; ``get_budget`` exposes that number, so the schedule (one warm-up epoch, then cosine
decay) ends exactly when the trial is expected to stop. When ``BOILPruner`` lets a promising
trial train further (up to ``max_resource``), the budget grows and the schedule is stretched over
the new length from the next epoch on.

    python examples/pytorch_schedule.py                # 20 trials, up to 24 epochs each
    python examples/pytorch_schedule.py --smoke        # 3 tiny trials, a few seconds
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


Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def load_data(n_samples: int | None = None) -> Data:
    """Digits as ``(N, 1, 8, 8)`` images, split 70/30 into training and validation sets.

    Args:
        n_samples: Use only the first ``n_samples`` images (for quick runs).
    """
    X, y = load_digits(return_X_y=True)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    X_train, X_val, y_train, y_val = train_test_split(
        X / 16.0, y, test_size=0.3, random_state=0, stratify=y
    )

    def images(a: object) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8)

    def labels(a: object) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.long)

    return images(X_train), labels(y_train), images(X_val), labels(y_val)


def make_cnn(channels: int, dropout: float) -> nn.Module:
    """Two 3x3 convolutions, one 2x2 max-pool and a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels * 16, 10),
    )


def train_epoch(model: nn.Module, optimiser: torch.optim.Optimizer, data: Data) -> float:
    """Train ``model`` for one epoch of 64-image minibatches; return the validation accuracy."""
    X_train, y_train, X_val, y_val = data
    model.train()
    order = torch.randperm(len(X_train))
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(X_train[idx]), y_train[idx]).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        return float((model(X_val).argmax(1) == y_val).float().mean())


def warmup_cosine(epoch: int, budget: int) -> float:
    """Learning-rate factor for ``epoch`` (0-based): one linear warm-up epoch, then cosine decay.

    Args:
        epoch: Index of the epoch about to be trained.
        budget: Number of epochs the schedule spans.
    """
    if epoch == 0:
        return 0.1
    progress = min((epoch - 1) / max(budget - 1, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def objective(trial: optuna.Trial, data: Data, max_epochs: int) -> float:
    """Train the CNN for the epochs BOIL allows and return the final validation accuracy."""
    lr = trial.suggest_float("lr", 1e-3, 3e-1, log=True)
    momentum = trial.suggest_float("momentum", 0.5, 0.99)
    channels = trial.suggest_int("channels", 4, 32, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)

    torch.manual_seed(trial.number)
    model = make_cnn(channels, dropout)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True)
    # The budget is read again before every epoch: it only grows (when the pruner lets a promising
    # trial train further), and the lambda below always uses the latest value. get_budget()
    # returns None when no budget applies (no BOILPruner, or max_resource="auto" before any trial
    # finished): the trial then trains for max_epochs.
    schedule = {"budget": get_budget(trial) or max_epochs}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda epoch: warmup_cosine(epoch, schedule["budget"])
    )

    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        schedule["budget"] = max(schedule["budget"], get_budget(trial) or 0)
        accuracy = train_epoch(model, optimiser, data)
        scheduler.step()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def main() -> None:
    """Parse the command line and run the study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=24)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///schedule.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="3 trials, 4 epochs, 300 images (seconds)"
    )
    args = parser.parse_args()
    n_samples = None
    if args.smoke:
        args.n_trials, args.max_epochs, n_samples = 3, 4, 300

    torch.set_num_threads(1)
    data = load_data(n_samples)
    study = optuna.create_study(
        study_name="boil-pytorch-schedule",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(8, args.n_trials)),
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )
    study.optimize(lambda t: objective(t, data, args.max_epochs), n_trials=args.n_trials)

    for t in study.trials:
        print(
            f"trial {t.number:3d} {t.state.name:8s} epochs {t.last_step} "
            f"(initial budget {t.user_attrs.get('boil_initial_budget')}) accuracy {t.value:.4f}"
        )
    trial, predicted, std = recommend(study)[:3]
    print(
        f"Recommended: trial {trial.number} (predicted accuracy {predicted:.4f} ± {std:.4f}) "
        f"{trial.params}"
    )


if __name__ == "__main__":
    main()

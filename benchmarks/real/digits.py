"""Real benchmark: tune a small MLP on scikit-learn's digits (epochs are the training steps).

Task: a one-hidden-layer MLP (ReLU, dropout) on ``sklearn.datasets.load_digits`` (8x8 images,
10 classes; a fixed stratified split into 50 % training and 50 % validation), minibatches of 64,
1..``--max-epochs`` epochs (30 by default), reporting validation accuracy after every epoch.
Five hyperparameters: learning rate (log, 1e-4..1e-1), weight decay (log, 1e-6..1e-2), hidden
units (int, log, 8..256), dropout (0..0.6) and the optimiser (categorical: adam, sgd with
Nesterov momentum 0.9, rmsprop). Every trained epoch counts against the run's ``--budget``.

Example::

    python -m benchmarks.real.digits --quick          # smoke test, < 60 s
    python -m benchmarks.real.digits --seeds 0-9      # the full comparison
"""

from __future__ import annotations

import functools
from typing import Any

import optuna
import torch
from torch import nn

from benchmarks.real import _harness


BATCH = 64


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Suggest the five MLP hyperparameters."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "hidden": trial.suggest_int("hidden", 8, 256, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"]),
    }


@functools.cache
def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x / 16.0, y, test_size=0.5, stratify=y, random_state=0
    )
    return (
        torch.tensor(x_tr, dtype=torch.float32),
        torch.tensor(y_tr, dtype=torch.int64),
        torch.tensor(x_va, dtype=torch.float32),
        torch.tensor(y_va, dtype=torch.int64),
    )


def curve(params: dict[str, Any], data_seed: int, seed: int, max_epochs: int) -> _harness.Reports:
    """Train the MLP from scratch, yielding ``(epoch, validation_accuracy)`` after every epoch.

    Args:
        params: The five hyperparameters of :func:`suggest`.
        data_seed: Unused: the split is the same for every seed.
        seed: Seed of the initialisation, the dropout masks and the batch order.
        max_epochs: Epochs of a full training.
    """
    del data_seed
    x_tr, y_tr, x_va, y_va = _data()
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, int(params["hidden"])),
        nn.ReLU(),
        nn.Dropout(float(params["dropout"])),
        nn.Linear(int(params["hidden"]), 10),
    )
    lr, wd = float(params["lr"]), float(params["weight_decay"])
    optimiser: torch.optim.Optimizer
    if params["optimizer"] == "adam":
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    elif params["optimizer"] == "sgd":
        optimiser = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd
        )
    else:
        optimiser = torch.optim.RMSprop(model.parameters(), lr=lr, weight_decay=wd)
    generator = torch.Generator().manual_seed(seed)
    n = x_tr.shape[0]
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_va).argmax(1) == y_va).float().mean())
        yield epoch, accuracy


def make_task(max_epochs: int) -> _harness.Task:
    """The digits task description for the harness (loads the data and warms torch up)."""
    warm_up = {"lr": 1e-3, "weight_decay": 1e-4, "hidden": 32, "dropout": 0.1}
    for optimizer in ("adam", "sgd", "rmsprop"):
        next(curve({**warm_up, "optimizer": optimizer}, 0, 0, 1))
    return _harness.Task(
        name="digits",
        steps=tuple(range(1, max_epochs + 1)),
        suggest=suggest,
        curve=functools.partial(curve, max_epochs=max_epochs),
        metric="validation accuracy",
        unit="epochs",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    _harness.main(
        argv,
        description=__doc__.split("\n\n")[0],
        make_task=make_task,
        defaults={"budget": 300, "max_steps": 30, "seeds": "0-9"},
        quick={"budget": 25, "max_steps": 10, "seeds": "0"},
        step_option="--max-epochs",
    )


if __name__ == "__main__":
    main()

"""Objectives and studies shared by the sampler, pruner and helper tests."""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Literal

import optuna

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget


MAX = 12


def make_objective(
    seen: list[tuple[int, int | None, int]] | None = None,
    values: dict[int, float] | None = None,
    steps: range = range(1, MAX + 1),
) -> Callable[[optuna.Trial], float]:
    """A smooth, deterministic learning curve over three kinds of parameters."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        n = trial.suggest_int("n", 1, 4)
        c = trial.suggest_categorical("c", ["a", "b", "c"])
        budget = get_budget(trial)
        value = 0.0
        for step in steps:
            value = (1 - (x - 0.3) ** 2 + 0.05 * n + 0.1 * (c == "b")) * (
                1 - math.exp(-(step + 1) / 4)
            )
            if values is not None and step in values:
                value = values[step]
            trial.report(value, step)
            if trial.should_prune():
                if seen is not None:
                    seen.append((trial.number, budget, step))
                raise optuna.TrialPruned()
        return value

    return objective


def boil_study(
    storage: str | optuna.storages.BaseStorage | None = None,
    seed: int = 0,
    max_resource: int | str = MAX,
    direction: Literal["minimize", "maximize"] = "maximize",
    **kwargs: object,
) -> optuna.Study:
    return optuna.create_study(
        direction=direction,
        storage=storage,
        sampler=BOILSampler(seed=seed, n_startup_trials=4, **kwargs),  # type: ignore[arg-type]
        pruner=BOILPruner(min_resource=2, max_resource=max_resource),
    )

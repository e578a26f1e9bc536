"""Objectives and studies shared by the sampler, pruner and helper tests."""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Any
from typing import Literal

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil._model.model import CurveData
from optuna_boil._model.search_space import SearchSpace


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


def add_curve_trial(
    study: optuna.Study, x: float, curve: dict[int, float], state: Any, **system_attrs: Any
) -> None:
    """Add a finished (or RUNNING) trial of one float ``x`` in [0, 1] with ``curve`` as its
    reports; a COMPLETE one returns its last value."""
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            params={"x": x},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            intermediate_values=curve,
            value=curve[max(curve)] if state == optuna.trial.TrialState.COMPLETE else None,
            system_attrs=system_attrs,
        )
    )


def linear_objective(trial: optuna.Trial) -> float:
    """Curves that rise linearly to their end (a late-weighted average of one, the compressed
    score the GP models, lies far below its final value), over two floats."""
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    final = 1.0 - 0.5 * (x - 0.3) ** 2 - 0.3 * (y - 0.6) ** 2
    value = 0.0
    for step in range(1, MAX + 1):
        value = final * step / MAX
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


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


def space2() -> SearchSpace:
    """Two floats in [0, 1] (the model tests' space)."""
    return SearchSpace({"x0": FloatDistribution(0.0, 1.0), "x1": FloatDistribution(0.0, 1.0)})


def quality(x: np.ndarray) -> np.ndarray:
    """The final score of configurations of :func:`space2`: best at (0.3, 0.6)."""
    return 1.0 - (x[:, 0] - 0.3) ** 2 - (x[:, 1] - 0.6) ** 2


def curve_data(
    x: np.ndarray,
    lengths: Any,
    running: np.ndarray | None = None,
    budgets: np.ndarray | None = None,
    costs: np.ndarray | None = None,
    step0: int = 1,
) -> CurveData:
    """Deterministic curves ``quality(x) * (1 - exp(-t / 4))`` of the given lengths."""
    n = len(x)
    q = quality(x) if x.shape[1] == 2 else np.zeros(n)
    steps, values = [], []
    for i in range(n):
        s = np.arange(step0, step0 + lengths[i], dtype=float)
        steps.append(s)
        values.append(q[i] * (1.0 - np.exp(-(s - step0 + 1) / 4.0)))
    return CurveData(
        x=np.asarray(x, dtype=float),
        steps=steps,
        values=values,
        costs=np.full(n, np.nan) if costs is None else costs,
        running=np.zeros(n, dtype=bool) if running is None else running,
        budgets=np.full(n, np.nan) if budgets is None else budgets,
    )

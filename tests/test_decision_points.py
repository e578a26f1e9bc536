"""Decision points along every run (issue 24): no run is committed to blindly.

A study's history is added as finished trials (:func:`optuna.trial.create_trial`), then one
more trial is started with the full budget and its reports are fed one by one to the pruner.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _storage
from optuna_boil._model import fidelity as _fidelity
from optuna_boil._policy import Continuation
from optuna_boil._policy import Policy


FULL = 32
STEPS = np.arange(1, FULL + 1)
DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}

Curve = Callable[[float, float], np.ndarray]


def flat_or_rising(x: float, y: float) -> np.ndarray:
    """Below x = 0.5 the run never learns (flat at 0, the worst value); above, it rises early
    to a level set by ``x`` and ``y``."""
    if x < 0.5:
        return np.zeros(FULL)
    return (0.5 + 0.5 * x * (1 - 0.3 * y)) * (1 - np.exp(-STEPS / 4.0))


def warm_up(x: float, y: float) -> np.ndarray:
    """Every run sits at 0 for the first half (an exploration phase); then it rises to a level
    set by ``x`` and ``y`` that nothing before told."""
    level = 0.3 + 0.7 * x * (1 - 0.3 * y)
    return np.where(STEPS <= FULL // 2, 0.0, level * (1 - np.exp(-(STEPS - FULL // 2) / 3.0)))


def _study(curve: Curve, n_full: int = 10, n_short: int = 6, seed: int = 0) -> optuna.Study:
    """A study whose history has ``n_full`` fully trained runs and ``n_short`` runs stopped at
    step 4, all with ``x < 0.8``."""
    study = optuna.create_study(
        direction="maximize",
        sampler=BOILSampler(seed=seed, n_startup_trials=4),
        pruner=BOILPruner(min_resource=1, max_resource=FULL),
    )
    rng = np.random.RandomState(seed)
    for k in range(n_full + n_short):
        x, y = float(rng.uniform(0.0, 0.8)), float(rng.uniform())
        values = curve(x, y)
        length = FULL if k < n_full else 4
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x, "y": y},
                distributions=DISTRIBUTIONS,
                value=float(values[length - 1]),
                intermediate_values={
                    int(s): float(v) for s, v in zip(STEPS[:length], values[:length], strict=True)
                },
                state=TrialState.COMPLETE if length == FULL else TrialState.PRUNED,
            )
        )
    return study


def _run(
    study: optuna.Study, curve: Curve, x: float, y: float, check: int, budget: int = FULL
) -> list[int]:
    """Start a trial of ``(x, y)`` with ``budget`` and its first check at ``check``; feed its
    curve to the pruner. Returns the steps of its decision points (the last one is where
    it stopped, if it did)."""
    study.enqueue_trial({"x": x, "y": y})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_float("y", 0.0, 1.0)
    _storage.set_initial_budget(study, trial._trial_id, budget, check)
    points: list[int] = []
    for step, value in zip(STEPS, curve(x, y), strict=True):
        before = _storage.get_decisions(study._storage.get_trial(trial._trial_id))
        trial.report(float(value), int(step))
        pruned = trial.should_prune()
        after = _storage.get_decisions(study._storage.get_trial(trial._trial_id))
        if after > before:
            points.append(int(step))
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
            return points
    study.tell(trial, float(curve(x, y)[-1]))
    return points


def test_a_run_flat_at_the_worst_value_stops_before_the_end_once_such_runs_ended_badly() -> None:
    study = _study(flat_or_rising)
    points = _run(study, flat_or_rising, 0.2, 0.5, check=4)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.last_step is not None and trial.last_step < FULL
    assert trial.last_step == points[-1]
    assert "implausible" in trial.user_attrs["boil_stop"]


def test_a_run_extended_to_the_full_budget_meets_a_decision_point_at_each_doubling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = _study(flat_or_rising)
    asked: list[tuple[float, float | None]] = []

    def go_on(
        self: Policy, index: int, step: float, rng: np.random.RandomState, budget: float | None
    ) -> Continuation:
        asked.append((step, budget))  # before the budget: keep it; at it: train to the end
        return Continuation(int(budget or FULL), 0.0, 0.0, "train on")

    # Whatever the model would say: the schedule of the decision points is the pruner's.
    monkeypatch.setattr(Policy, "continuation", go_on)
    points = _run(study, flat_or_rising, 0.7, 0.5, check=2, budget=3)
    trial = study.trials[-1]
    assert trial.state == TrialState.COMPLETE and trial.last_step == FULL
    # At its first check (2), at its budget (3, extended to the full budget), then at each
    # doubling of its steps since: 6, 12, 24.
    assert points == [2, 3, 6, 12, 24]
    assert asked == [(2.0, 3.0), (3.0, None), (6.0, 32.0), (12.0, 32.0), (24.0, 32.0)]
    assert trial.user_attrs["boil_decisions"] == 5
    assert trial.user_attrs["boil_extensions"] == 1


def test_where_early_values_predict_nothing_a_flat_start_is_not_stopped_before_they_do() -> None:
    study = _study(warm_up)
    # The study's own runs say: before the warm-up ends, a look predicts nothing.
    points = _run(study, warm_up, 0.9, 0.0, check=2)
    trial = study.trials[-1]
    assert trial.state == TrialState.COMPLETE and trial.last_step == FULL
    assert points[:3] == [2, 4, 8]
    trust = study.user_attrs["boil_fidelity_trust"]
    early = [b for s, b in zip(trust["step"], trust["belief"], strict=True) if s <= FULL // 2]
    assert early and max(early) < _fidelity.TRUSTED
    assert trust["look"] > FULL // 2  # new runs get a look past the warm-up


def test_start_up_runs_that_reorder_make_new_configurations_train_fully() -> None:
    # One run is fully trained (so the first full training is not what forces the budget) and
    # eight short runs sat at the same value over their first looks: nothing says a short look
    # predicts, so the next configuration is trained to the full budget.
    study = _study(warm_up, n_full=1, n_short=8)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_float("y", 0.0, 1.0)
    frozen = study._storage.get_trial(trial._trial_id)
    assert _storage.get_budget(frozen) == FULL
    trust = study.user_attrs["boil_fidelity_trust"]
    assert trust["prior"] < _fidelity.TRUSTED and trust["start_up"]["n"] >= 8
    assert trust["look"] == FULL
    # Curves that keep their order over the same looks keep the trusted prior.
    ordered = _study(flat_or_rising, n_full=1, n_short=8)
    trial = ordered.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_float("y", 0.0, 1.0)
    assert ordered.user_attrs["boil_fidelity_trust"]["prior"] == _fidelity.PRIOR_RHO

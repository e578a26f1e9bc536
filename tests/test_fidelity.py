from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from optuna_boil._model import fidelity as _fidelity
from optuna_boil._model.model import CurveData
from tests._helpers import boil_study
from tests._helpers import make_objective


T_FULL = 60


def _data(curves: list[np.ndarray]) -> CurveData:
    n = len(curves)
    return CurveData(
        x=np.zeros((n, 1)),
        steps=[np.arange(1.0, c.size + 1.0) for c in curves],
        values=curves,
        costs=np.full(n, np.nan),
        running=np.zeros(n, dtype=bool),
        budgets=np.full(n, np.nan),
    )


def _trust(curves: list[np.ndarray], steps: list[int]) -> list[_fidelity.Trust]:
    return _fidelity.rank_agreement(_data(curves), np.arange(len(curves)), steps)


def test_curves_that_keep_their_order_are_trusted_from_the_start() -> None:
    rng = np.random.RandomState(0)
    s = np.arange(1.0, T_FULL + 1.0)
    quality = rng.uniform(size=12)
    curves = [q * (1 - np.exp(-s / 8)) + 0.002 * rng.randn(s.size) for q in quality]
    trust = _trust(curves, [2, 10, 30])
    assert [t.n for t in trust] == [12, 12, 12]
    assert all(t.rho > 0.9 for t in trust), trust
    assert all(0 < t.se < 0.1 for t in trust)


def test_curves_whose_order_is_random_before_a_step_are_not_trusted_there() -> None:
    rng = np.random.RandomState(1)
    s = np.arange(1.0, T_FULL + 1.0)
    quality = rng.uniform(size=16)
    curves = []
    for q in quality:
        noise = rng.uniform(size=s.size)  # a warm-up whose returns say nothing of the end
        curves.append(np.where(s <= 30, noise, q * (1 - np.exp(-(s - 30) / 5))))
    early, late = _trust(curves, [10, 45])
    assert abs(early.rho) < 0.5 < late.rho
    assert late.rho > 0.9
    # A warm-up in which every run sits at the same (worst) value tells nothing either.
    flat = [np.where(s <= 30, 0.0, c) for c in curves]
    assert _trust(flat, [10])[0].rho == 0.0


def test_too_few_fully_trained_runs_give_no_estimate() -> None:
    s = np.arange(1.0, T_FULL + 1.0)
    (trust,) = _trust([q * s for q in (1.0, 2.0, 3.0)], [10])
    assert trust.n == 3 and math.isnan(trust.rho) and trust.se == math.inf
    assert _fidelity.as_attribute(_fidelity.Belief([trust])) == {
        "step": [10],
        "rho": [None],
        "se": [None],
        "n": [3],
        "belief": [_fidelity.PRIOR_RHO],
        "prior": _fidelity.PRIOR_RHO,
    }


def _start_up_runs(rng: np.random.RandomState, keep_order: bool, n: int = 8) -> list[np.ndarray]:
    """``n`` random start-up runs of 4 steps: curves that rise to their own level, or an RL
    warm-up in which each look is noise around the same return."""
    s = np.arange(1.0, 5.0)
    if keep_order:
        return [q * (1 - np.exp(-s / 2)) for q in rng.uniform(0.2, 1.0, size=n)]
    return [20.0 + rng.randn(s.size) for _ in range(n)]


def test_curves_that_reorder_over_the_start_up_budget_lower_the_prior() -> None:
    rng = np.random.RandomState(3)
    warm_up = _fidelity.belief(_data(_start_up_runs(rng, False)), np.array([], int), 1, 60, 4)
    assert warm_up.short is not None and warm_up.short.n == 8
    assert warm_up.prior < _fidelity.TRUSTED
    # Nothing is fully trained: every step has the prior's belief, so a new run gets no
    # shorter look than the full training.
    assert warm_up.at(10) == warm_up.prior
    assert warm_up.look(1, 60) == 60
    ordered = _fidelity.belief(_data(_start_up_runs(rng, True)), np.array([], int), 1, 60, 4)
    assert ordered.short is not None and ordered.short.rho > 0.9
    assert ordered.prior == _fidelity.PRIOR_RHO
    assert ordered.look(1, 60) == 1
    # A first look that says nothing (on LCBench epoch 1 ranks neither epoch 4 nor the end) does
    # not lower the prior: the check compares half the start-up budget with the budget.
    first_noise = [c.copy() for c in _start_up_runs(rng, True)]
    for c in first_noise:
        c[0] = rng.uniform()
    first = _fidelity.belief(_data(first_noise), np.array([], int), 1, 60, 4)
    assert first.prior == _fidelity.PRIOR_RHO
    # Too few start-up runs say nothing: the prior stays.
    few = _fidelity.belief(_data(_start_up_runs(rng, False, n=3)), np.array([], int), 1, 60, 4)
    assert few.prior == _fidelity.PRIOR_RHO
    attr = _fidelity.as_attribute(warm_up, look=60)
    assert attr["prior"] == pytest.approx(warm_up.prior, abs=1e-4)
    assert attr["start_up"]["n"] == 8 and attr["look"] == 60


def test_fully_trained_runs_that_rank_the_end_win_over_a_low_prior() -> None:
    rng = np.random.RandomState(4)
    s = np.arange(1.0, T_FULL + 1.0)
    # A warm-up that says nothing for the first 4 steps, then curves that keep their order.
    curves = []
    for q in rng.uniform(0.2, 1.0, size=16):
        c = q * (1 - np.exp(-s / 8))
        c[:4] = 0.1 + 0.01 * rng.randn(4)
        curves.append(c)
    b = _fidelity.belief(_data(curves), np.arange(16), 1, T_FULL, 4)
    assert b.prior < _fidelity.TRUSTED
    assert b.at(2) < _fidelity.TRUSTED <= b.at(20)
    assert 4 < b.look(1, T_FULL) <= 20


def test_non_finite_reports_rank_as_the_worst() -> None:
    s = np.arange(1.0, T_FULL + 1.0)
    curves = [q * (1 - np.exp(-s / 8)) for q in (0.2, 0.4, 0.6, 0.8, 1.0)]
    curves[0] = curves[0].copy()
    curves[0][:20] = np.nan  # the worst run, whose early reports are NaN
    (trust,) = _trust(curves, [10])
    assert trust.rho == pytest.approx(1.0)


def test_steps_to_check_spread_on_a_log_scale_below_the_full_step() -> None:
    steps = _fidelity.steps_to_check(1, 52)
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] < 52
    gaps = np.diff(np.log(steps))
    assert gaps.max() < 3 * gaps.min() + 1e-9
    assert _fidelity.steps_to_check(5, 5) == []


def test_a_study_shows_its_fidelity_trust_as_a_user_attribute() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=16)
    attr = study.user_attrs["boil_fidelity_trust"]
    assert len(attr["step"]) == len(attr["rho"]) == len(attr["se"]) == len(attr["n"]) > 0
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # Written at the last decision: every count is at most the number of fully trained runs.
    assert 0 < max(attr["n"]) <= len(complete)
    for rho, n in zip(attr["rho"], attr["n"], strict=True):
        assert (rho is None) == (n < _fidelity.MIN_RUNS)
        assert rho is None or -1.0 <= rho <= 1.0

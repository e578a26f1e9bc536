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
    assert _fidelity.as_attribute([trust]) == {
        "step": [10],
        "rho": [None],
        "se": [None],
        "n": [3],
        "belief": [_fidelity.PRIOR_RHO],
    }


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

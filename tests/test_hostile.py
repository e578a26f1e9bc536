"""End to end: nothing a user or a storage can hand BOIL stops a study.

Each case puts one hostile thing into an in-memory study (a malformed ``boil:*`` or retry
attribute on a finished or a running trial, a corrupt saved fit, metric values of 1e200, a study
whose first trials all fail after reporting), then runs 12 more trials: none of them may FAIL,
every one must get a budget and stop at it, and the model must keep deciding.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _logging
from optuna_boil import _storage
from optuna_boil._model import curve as _curve
from optuna_boil._model.gp import JointGP


MAX = 10
N_MORE = 12
FINISHED = 4  # the trial that gets the hostile value just before it finishes (a model trial)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_logging, "_said", set())
    yield


def objective_curve(x: float, c: str, step: int) -> float:
    return (1.0 - (x - 0.3) ** 2 + 0.1 * (c == "b")) * (1.0 - math.exp(-step / 4.0))


def make_objective(
    scale: float = 1.0,
    corrupt: dict[int, dict[str, Any]] | None = None,
    fail_below: int = 0,
) -> Any:
    """The objective; ``corrupt[n]`` is written on trial ``n`` just before it finishes (a
    finished trial cannot be written to any more), and trials numbered below ``fail_below``
    raise after reporting the first step (the start-up budget)."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        c = trial.suggest_categorical("c", ["a", "b"])
        try:
            value = 0.0
            for step in range(1, MAX + 1):
                value = scale * objective_curve(x, c, step)
                trial.report(value, step)
                if trial.number < fail_below and step == 1:
                    raise RuntimeError("the objective failed")
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value
        finally:
            for key, bad in (corrupt or {}).get(trial.number, {}).items():
                trial.study._storage.set_trial_system_attr(trial._trial_id, key, bad)

    return objective


def boil_study() -> optuna.Study:
    return optuna.create_study(
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=3),
        pruner=BOILPruner(min_resource=1, max_resource=MAX),
    )


def start_running_trial(study: optuna.Study, attrs: dict[str, Any]) -> int:
    """A trial left RUNNING (a live or crashed worker) after two reports and the given attrs."""
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    c = trial.suggest_categorical("c", ["a", "b"])
    for step in (1, 2):
        trial.report(objective_curve(x, c, step), step)
        trial.should_prune()
    for key, bad in attrs.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, bad)
    return trial.number


def run_more_and_check(
    study: optuna.Study, objective: Any, startup_left: int = 1
) -> list[optuna.trial.FrozenTrial]:
    """Run ``N_MORE`` trials; all but ``startup_left`` of them must be model decisions."""
    first = len(study.trials)
    study.optimize(objective, n_trials=N_MORE, catch=(RuntimeError,))
    new = [t for t in study.trials if t.number >= first]
    assert len(new) == N_MORE
    failed = [
        (t.number, t.system_attrs.get("fail_reason")) for t in new if t.state == TrialState.FAIL
    ]
    assert failed == [], f"trials failed: {failed}"
    for t in new:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), (t.number, t.state)
        budget = _storage.get_budget(t)
        assert budget is not None and 1 <= budget <= MAX, (t.number, budget)
        # At or past its budget, or stopped earlier at a decision point.
        early = str(t.user_attrs.get(_storage.USER_STOP, "")).startswith("decision point")
        assert t.last_step is not None, t.number
        assert t.last_step >= budget or early, (t.number, t.last_step, budget)
    # The model keeps deciding (it publishes its choice and acquisition value) ...
    decided = [t for t in new if _storage.USER_LOG_ACQ in t.user_attrs]
    assert len(decided) >= N_MORE - startup_left, [t.user_attrs for t in new]
    # ... and trials keep reaching the full budget.
    assert any(t.state == TrialState.COMPLETE and t.last_step == MAX for t in new)
    return new


BAD_ATTRS = [
    (_storage.BUDGET, "abc"),
    (_storage.BUDGET, math.nan),
    (_storage.BUDGET, [1, 2]),
    (_storage.COST, [5]),
    (_storage.COST, [5, "abc"]),
    (_storage.COST, [5, None]),
    ("retry_history", [[1]]),
    ("failed_trial", "1"),
    ("failed_trial", [1]),
]
BAD_FITS = {
    "noise-nan": {"noise": math.nan},
    "outputscale-inf": {"outputscale": math.inf},
    "t_lengthscale-nan": {"t_lengthscale": math.nan},
}


@pytest.mark.parametrize(("key", "value"), BAD_ATTRS)
def test_bad_attribute_on_a_finished_trial(key: str, value: Any) -> None:
    study = boil_study()
    objective = make_objective(corrupt={FINISHED: {key: value}})
    study.optimize(objective, n_trials=FINISHED + 1)
    stored = study.trials[FINISHED].system_attrs[key]
    assert stored == value or (isinstance(value, float) and math.isnan(stored))
    run_more_and_check(study, objective)


@pytest.mark.parametrize(("key", "value"), BAD_ATTRS)
def test_bad_attribute_on_a_running_trial(key: str, value: Any) -> None:
    study = boil_study()
    objective = make_objective()
    study.optimize(objective, n_trials=FINISHED + 1)
    number = start_running_trial(study, {key: value})
    run_more_and_check(study, objective)
    assert study.trials[number].state == TrialState.RUNNING


def corrupt_fit(study: optuna.Study, number: int, changes: dict[str, Any]) -> dict[str, Any]:
    fit = dict(study.trials[number].system_attrs[_storage.FIT])
    assert fit.keys() >= changes.keys()
    fit.update(changes)
    return fit


@pytest.mark.parametrize("name", list(BAD_FITS))
def test_corrupt_saved_fit_on_the_newest_finished_trial(name: str) -> None:
    # The newest fit warm-starts every decision. Write a bad copy of a real fit on the trial that
    # finishes last before the next decision.
    study = boil_study()
    study.optimize(make_objective(), n_trials=FINISHED)
    reference = dict(study.trials[FINISHED - 1].system_attrs[_storage.FIT])
    reference.update(BAD_FITS[name])
    objective = make_objective(corrupt={FINISHED: {_storage.FIT: reference}})
    study.optimize(objective, n_trials=1)
    assert _storage.latest_fit(study.trials) == _storage.check_fit(
        study.trials[FINISHED - 1].system_attrs[_storage.FIT]
    )
    run_more_and_check(study, objective)


@pytest.mark.parametrize("name", list(BAD_FITS))
def test_corrupt_saved_fit_on_a_running_trial(name: str) -> None:
    study = boil_study()
    objective = make_objective()
    study.optimize(objective, n_trials=FINISHED + 1)
    bad = corrupt_fit(study, FINISHED, BAD_FITS[name])
    start_running_trial(study, {_storage.FIT: bad})
    run_more_and_check(study, objective)


@pytest.mark.parametrize("scale", [1e200, -1e200])
def test_huge_metric_values(scale: float) -> None:
    study = boil_study()
    objective = make_objective(scale=scale)
    study.optimize(objective, n_trials=FINISHED + 1)
    new = run_more_and_check(study, objective)
    # The model still tells configurations apart (clipping everything to one value would not).
    predicted = [t.user_attrs.get(_storage.USER_PREDICTED_SCORE) for t in new]
    finite = [p for p in predicted if isinstance(p, float) and math.isfinite(p)]
    assert len(finite) >= N_MORE - 1, predicted
    assert len(set(finite)) > 1
    assert all(1e198 < abs(p) < 1e202 for p in finite), finite


def test_first_trials_all_fail_after_reporting() -> None:
    study = boil_study()
    objective = make_objective(fail_below=4)
    study.optimize(objective, n_trials=4, catch=(RuntimeError,))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4
    assert all(t.last_step == 1 for t in study.trials)
    # The failed trials' curves are data for the model (tests/test_observations.py); whether they
    # also count as start-up trials is the sampler's choice, so up to 3 start-up trials follow.
    run_more_and_check(study, objective, startup_left=3)


# The numerics underneath ---------------------------------------------------------------------


def assert_normalised_monotone(curves: list[tuple[np.ndarray, np.ndarray]]) -> None:
    out, low, span = _curve.normalise_curves(curves)
    assert math.isfinite(low) and math.isfinite(span) and span > 0
    raw = np.concatenate([v for _, v in curves])
    scaled = np.concatenate([v for _, v in out])
    assert np.all(np.isfinite(scaled)) and scaled.min() >= 0.0 and scaled.max() <= 1.0
    known = ~np.isnan(raw)  # NaN maps to the worst value, 0; +-inf to 1 and 0
    raw, scaled = raw[known], scaled[known]
    assert scaled[np.argmin(raw)] == 0.0 and scaled[np.argmax(raw)] == 1.0
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(scaled[order]) >= 0.0), "the map must preserve the order"


@pytest.mark.parametrize("scale", [1e200, -1e200, 1e300, -1e300])
def test_normalise_huge_values_finite_and_order_preserving(scale: float) -> None:
    rng = np.random.RandomState(0)
    curves = [(np.arange(1.0, 6.0), scale * rng.uniform(1.0, 2.0, size=5)) for _ in range(4)]
    assert_normalised_monotone(curves)
    out, low, span = _curve.normalise_curves(curves)
    # Same result as the same values at a harmless scale: nothing was clipped or lost.
    small = [(s, v / abs(scale)) for s, v in curves]
    out_small, low_small, span_small = _curve.normalise_curves(small)
    for (_, a), (_, b) in zip(out, out_small, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert low / abs(scale) == pytest.approx(low_small, rel=1e-12)
    assert span / abs(scale) == pytest.approx(span_small, rel=1e-12)


def test_normalise_mixed_scales() -> None:
    curves = [
        (np.arange(1.0, 5.0), np.array([1e200, -1e200, 3.0, -2.0])),
        (np.arange(1.0, 4.0), np.array([1e-300, 1e199, -1e199])),
        (np.arange(1.0, 4.0), np.array([np.nan, np.inf, -np.inf])),
    ]
    assert_normalised_monotone(curves)
    out, low, span = _curve.normalise_curves(curves)
    assert low == -1e200 and span == 2e200
    # Values the float grid can tell apart stay apart: 1e200 > 1e199 > 3 > -1e199 > -1e200.
    first, second = out[0][1], out[1][1]
    assert first[0] == 1.0 and first[1] == 0.0
    assert first[0] > second[1] > first[2] >= first[3] > second[2] > first[1]
    np.testing.assert_allclose([second[1], first[2], second[2]], [0.55, 0.5, 0.45])


def test_normalise_clips_beyond_1e307() -> None:
    curves = [(np.arange(1.0, 5.0), np.array([1.7e308, -1.7e308, 1e300, 0.0]))]
    assert_normalised_monotone(curves)
    out, low, span = _curve.normalise_curves(curves)
    assert low == -1e307 and span == 2e307 and math.isfinite(low + span)
    np.testing.assert_allclose(out[0][1], [1.0, 0.0, 0.5 + 5e-8, 0.5], rtol=1e-9)


def test_normalise_only_huge_finite_values() -> None:
    out, low, span = _curve.normalise_curves(
        [(np.arange(1.0, 4.0), np.array([1e200, 2e200, 3e200]))]
    )
    np.testing.assert_allclose(out[0][1], [0.0, 0.5, 1.0])
    assert low == 1e200 and span == pytest.approx(2e200)


def small_gp() -> JointGP:
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(6, 2))
    X = torch.from_numpy(np.column_stack([x, np.ones(6)]))
    padded = _curve.PaddedCurves(
        [(np.array([10.0]), np.array([v])) for v in rng.normal(size=6)], [1] * 6, 1.0, 10.0
    )
    return JointGP(X, padded, np.zeros(2, dtype=bool), "logistic", True)


GOOD_HP: dict[str, Any] = {
    "m0": 0.5,
    "g0": 1.5,
    "x_lengthscale": [0.3, 0.7],
    "t_lengthscale": 0.4,
    "outputscale": 1.7,
    "noise": 1e-3,
    "mean": 0.1,
    "slope": 0.2,
    "late": 0.3,
}


def test_load_hyperparameters_round_trip() -> None:
    gp = small_gp()
    gp.load_hyperparameters(GOOD_HP)
    got = gp.hyperparameters()
    for key, value in GOOD_HP.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("noise", math.nan),
        ("outputscale", math.inf),
        ("t_lengthscale", math.nan),
        ("mean", -math.inf),
        ("m0", math.nan),
        ("g0", "abc"),
        ("slope", math.nan),
        ("late", math.inf),
        ("noise", None),
        ("x_lengthscale", [0.3, math.nan]),
        ("x_lengthscale", [0.3]),
        ("x_lengthscale", [0.3, 0.4, 0.5]),
        ("x_lengthscale", "abc"),
        ("x_lengthscale", [[0.3], ["a"]]),
    ],
)
def test_load_hyperparameters_rejects_bad_values_naming_the_key(key: str, value: Any) -> None:
    gp = small_gp()
    gp.load_hyperparameters(GOOD_HP)
    before = gp.hyperparameters()
    with pytest.raises(ValueError, match=repr(key)):
        gp.load_hyperparameters({**GOOD_HP, key: value})
    assert gp.hyperparameters() == before  # nothing was changed

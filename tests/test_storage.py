"""The typed storage accessors: good values are read, bad ones ignored with one warning."""

from __future__ import annotations

from collections.abc import Iterator
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_boil import _logging
from optuna_boil import _storage


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget which warnings were said, so that every test sees its own."""
    monkeypatch.setattr(_logging, "_said", set())
    yield


# Positional-only, so ``**{key: value}`` can carry any system attribute (and type-checks).
def frozen(number: int = 7, trial_id: int | None = None, /, **system_attrs: Any) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=TrialState.COMPLETE,
        value=1.0,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=trial_id if trial_id is not None else 1000 + number,
    )


def with_key(key: str, value: Any, number: int = 7) -> FrozenTrial:
    return frozen(number, **{key: value})


def boil_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The same record can reach caplog's handler twice (ours and, if Optuna's logger
    # propagates, the root's): count each record once.
    records = {id(r): r for r in caplog.records if r.name == _logging.get_logger().name}
    return [r.getMessage() for r in records.values()]


def assert_one_warning(caplog: pytest.LogCaptureFixture, number: int, key: str) -> str:
    messages = boil_messages(caplog)
    assert len(messages) == 1, messages
    assert f"Trial {number}" in messages[0] and repr(key) in messages[0]
    return messages[0]


# Budget -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(5, 5), (0, 0), (7.0, 7), (None, None)])
def test_budget_good(value: Any, expected: int | None, caplog_boil: Any) -> None:
    got = _storage.get_budget(with_key(_storage.BUDGET, value))
    assert got == expected and (got is None or type(got) is int)
    assert boil_messages(caplog_boil) == []


def test_budget_missing_is_silent(caplog_boil: Any) -> None:
    assert _storage.get_budget(frozen()) is None
    assert boil_messages(caplog_boil) == []


@pytest.mark.parametrize(
    "value", ["abc", math.nan, math.inf, [1, 2], 2.5, -3, True, {"a": 1}, 10**400]
)
def test_budget_bad(value: Any, caplog_boil: Any) -> None:
    assert _storage.get_budget(with_key(_storage.BUDGET, value, number=11)) is None
    message = assert_one_warning(caplog_boil, 11, _storage.BUDGET)
    if not isinstance(value, int) or isinstance(value, bool):
        assert repr(value)[:20] in message


def test_bad_value_warns_once_per_trial_and_key(caplog_boil: Any) -> None:
    t = with_key(_storage.BUDGET, "abc", number=3)
    for _ in range(5):
        assert _storage.get_budget(t) is None
    assert len(boil_messages(caplog_boil)) == 1
    _storage.get_budget(with_key(_storage.BUDGET, "abc", number=4))
    assert len(boil_messages(caplog_boil)) == 2


# Cost ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [([5, 2.5], (5, 2.5)), ([0, 0], (0, 0.0)), ((3.0, 1), (3, 1.0))]
)
def test_cost_good(value: Any, expected: tuple[int, float], caplog_boil: Any) -> None:
    assert _storage.get_cost(with_key(_storage.COST, value)) == expected
    assert boil_messages(caplog_boil) == []


@pytest.mark.parametrize(
    "value",
    [[5], [5, "abc"], [5, None], [5, math.nan], [5, -1.0], ["x", 1.0], [1, 2, 3], 5.0, "5,1"],
)
def test_cost_bad(value: Any, caplog_boil: Any) -> None:
    assert _storage.get_cost(with_key(_storage.COST, value, number=2)) is None
    assert_one_warning(caplog_boil, 2, _storage.COST)


def test_uses_reported_costs_only_with_a_valid_cost() -> None:
    assert not _storage.uses_reported_costs([frozen(1), with_key(_storage.COST, [5], 2)])
    assert _storage.uses_reported_costs([frozen(1), with_key(_storage.COST, [5, 1.0], 2)])


# Alive, extensions, published parameters ------------------------------------------------------


def test_alive(caplog_boil: Any) -> None:
    assert _storage.get_alive(with_key(_storage.ALIVE, 1.7e9)) == 1.7e9
    assert _storage.get_alive(with_key(_storage.ALIVE, 17)) == 17.0
    assert _storage.get_alive(frozen()) is None
    assert boil_messages(caplog_boil) == []
    assert _storage.get_alive(with_key(_storage.ALIVE, "yesterday", 9)) is None
    assert_one_warning(caplog_boil, 9, _storage.ALIVE)


@pytest.mark.parametrize("value", [math.inf, math.nan, [1.0], False])
def test_alive_bad(value: Any, caplog_boil: Any) -> None:
    assert _storage.get_alive(with_key(_storage.ALIVE, value, 5)) is None
    assert_one_warning(caplog_boil, 5, _storage.ALIVE)


def test_extensions(caplog_boil: Any) -> None:
    assert _storage.get_extensions(with_key(_storage.EXTENSIONS, 3)) == 3
    assert _storage.get_extensions(frozen()) == 0
    assert boil_messages(caplog_boil) == []
    assert _storage.get_extensions(with_key(_storage.EXTENSIONS, -2, 4)) == 0
    assert_one_warning(caplog_boil, 4, _storage.EXTENSIONS)


def test_published_params(caplog_boil: Any) -> None:
    good = {"x": 0.5, "n": 3, "c": "a", "flag": True, "none": None}
    assert _storage.get_published_params(with_key(_storage.PARAMS, good)) == good
    assert _storage.get_published_params(frozen()) == {}
    assert boil_messages(caplog_boil) == []
    assert _storage.get_published_params(with_key(_storage.PARAMS, [0.5], 6)) == {}
    assert_one_warning(caplog_boil, 6, _storage.PARAMS)


def test_published_params_drop_only_bad_entries(caplog_boil: Any) -> None:
    got = _storage.get_published_params(
        with_key(_storage.PARAMS, {"x": 0.5, "y": [1, 2], "z": {"a": 1}}, 8)
    )
    assert got == {"x": 0.5}
    assert_one_warning(caplog_boil, 8, _storage.PARAMS)


# Retries ------------------------------------------------------------------------------------


def test_retry_sources_good(caplog_boil: Any) -> None:
    t = frozen(10, failed_trial=4, retry_history=[1, 4])
    assert _storage.retry_sources(t) == {1, 4}
    assert _storage.retry_sources(frozen(10, failed_trial=3.0)) == {3}
    assert _storage.retry_sources(frozen(10)) == set()
    assert boil_messages(caplog_boil) == []


@pytest.mark.parametrize(
    ("attrs", "expected", "key"),
    [
        ({"retry_history": [[1]]}, set(), "retry_history"),
        ({"retry_history": [[1], 2]}, {2}, "retry_history"),
        ({"retry_history": "1,2"}, set(), "retry_history"),
        ({"retry_history": [1, "x", None, 99]}, {1}, "retry_history"),
        ({"failed_trial": "3"}, set(), "failed_trial"),
        ({"failed_trial": [3]}, set(), "failed_trial"),
        ({"failed_trial": 10}, set(), "failed_trial"),  # itself: not an earlier trial
        ({"failed_trial": -1, "retry_history": [2]}, {2}, "failed_trial"),
    ],
)
def test_retry_sources_bad(
    attrs: dict[str, Any], expected: set[int], key: str, caplog_boil: Any
) -> None:
    assert _storage.retry_sources(frozen(10, **attrs)) == expected
    assert_one_warning(caplog_boil, 10, key)


# The stored fit -------------------------------------------------------------------------------


def good_fit(**changes: Any) -> dict[str, Any]:
    fit: dict[str, Any] = {
        "m0": 0.1,
        "g0": 1.2,
        "x_lengthscale": [0.3, 0.7],
        "t_lengthscale": 0.9,
        "outputscale": 1.1,
        "noise": 1e-3,
        "mean": 0.2,
        "slope": 0.05,
        "late": 0.5,
    }
    fit.update(changes)
    return {k: v for k, v in fit.items() if v is not ...}


def test_latest_fit_newest_valid(caplog_boil: Any) -> None:
    trials = [
        frozen(1, **{_storage.FIT: good_fit(mean=1.0)}),
        frozen(2, **{_storage.FIT: good_fit(mean=2.0)}),
        frozen(3),
    ]
    fit = _storage.latest_fit(trials[::-1])
    assert fit is not None and fit["mean"] == 2.0
    assert fit == good_fit(mean=2.0)
    assert _storage.latest_fit([frozen(1)]) is None
    assert boil_messages(caplog_boil) == []


def test_latest_fit_accepts_fits_without_optional_keys() -> None:
    fit = _storage.latest_fit([frozen(1, **{_storage.FIT: good_fit(slope=..., late=...)})])
    assert fit is not None and "slope" not in fit and "late" not in fit


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"noise": math.nan}, "noise"),
        ({"outputscale": math.inf}, "outputscale"),
        ({"t_lengthscale": math.nan}, "t_lengthscale"),
        ({"noise": None}, "noise"),
        ({"noise": -1.0}, "noise"),
        ({"m0": "abc"}, "m0"),
        ({"mean": ...}, "mean"),
        ({"late": 0.0}, "late"),
        ({"slope": math.inf}, "slope"),
        ({"x_lengthscale": [0.3, math.nan]}, "x_lengthscale"),
        ({"x_lengthscale": []}, "x_lengthscale"),
        ({"x_lengthscale": 0.3}, "x_lengthscale"),
        ({"x_lengthscale": ...}, "x_lengthscale"),
    ],
)
def test_latest_fit_skips_bad_fit(changes: dict[str, Any], key: str, caplog_boil: Any) -> None:
    older = good_fit(mean=1.0)
    trials = [frozen(1, **{_storage.FIT: older}), frozen(2, **{_storage.FIT: good_fit(**changes)})]
    assert _storage.latest_fit(trials) == older
    message = assert_one_warning(caplog_boil, 2, _storage.FIT)
    assert repr(key) in message
    assert _storage.latest_fit(trials[1:]) is None


def test_latest_fit_not_a_dict(caplog_boil: Any) -> None:
    assert _storage.latest_fit([frozen(4, **{_storage.FIT: [1, 2]})]) is None
    assert_one_warning(caplog_boil, 4, _storage.FIT)


# Round trip through a real storage ---------------------------------------------------------------


def test_round_trip_through_in_memory_storage() -> None:
    study = optuna.create_study()
    trial = study.ask()
    tid = trial._trial_id
    _storage.set_system(study, tid, _storage.BUDGET, 4)
    _storage.set_system(study, tid, _storage.COST, [4, 2.0])
    _storage.set_system(study, tid, _storage.ALIVE, math.nan)  # stored as None: "not set"
    t = study._storage.get_trial(tid)
    assert _storage.get_budget(t) == 4
    assert _storage.get_cost(t) == (4, 2.0)
    assert _storage.get_alive(t) is None

"""``_observations.build`` on hostile storage contents, FAIL trials and retries."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import datetime
import math
import os
import time
import types
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_boil import _logging
from optuna_boil import _observations
from optuna_boil import _storage
from optuna_boil._model.search_space import SearchSpace


DISTS = {"x": FloatDistribution(0.0, 1.0), "c": CategoricalDistribution(["a", "b"])}
SPACE = SearchSpace(DISTS)
MAXIMIZE = optuna.study.StudyDirection.MAXIMIZE
T_HI = 10.0


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_logging, "_said", set())
    yield


def trial(
    number: int,
    state: TrialState = TrialState.PRUNED,
    curve: dict[int, float] | None = None,
    params: dict[str, Any] | None = None,
    started: datetime.datetime | None = None,
    /,  # so that ``**{key: value}`` can carry any system attribute (and type-checks)
    **system_attrs: Any,
) -> FrozenTrial:
    params = {"x": 0.1 * number, "c": "a"} if params is None else params
    finished = state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    now = datetime.datetime.now(datetime.timezone.utc)
    return FrozenTrial(
        number=number,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=started or now,
        datetime_complete=now if finished else None,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={1: 0.1 * number, 2: 0.2 * number} if curve is None else curve,
        trial_id=5000 + number,
    )


def build(trials: list[FrozenTrial], **kwargs: Any) -> Any:
    return _observations.build(trials, SPACE, MAXIMIZE, T_HI, "steps", **kwargs)


HOSTILE = [
    (_storage.BUDGET, "abc"),
    (_storage.BUDGET, math.nan),
    (_storage.BUDGET, [1, 2]),
    (_storage.BUDGET, -4),
    (_storage.COST, [5]),
    (_storage.COST, [5, "abc"]),
    (_storage.COST, [5, None]),
    (_storage.ALIVE, "abc"),
    (_storage.PARAMS, [0.5]),
    (_storage.PARAMS, {"x": [0.5]}),
    (_storage.EXTENSIONS, "many"),
    (_storage.FIT, {"noise": math.nan}),
    ("retry_history", [[1]]),
    ("retry_history", "0"),
    ("failed_trial", "0"),
    ("failed_trial", [0]),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE)
@pytest.mark.parametrize("state", [TrialState.COMPLETE, TrialState.RUNNING])
def test_one_bad_attribute_is_ignored_for_that_trial_only(
    key: str, value: Any, state: TrialState
) -> None:
    good = [
        trial(0, TrialState.FAIL),
        trial(1, **{_storage.BUDGET: 2}),
        trial(2, TrialState.COMPLETE, **{_storage.BUDGET: 2}),
    ]
    bad = trial(3, state, **{key: value})
    data = build([*good, bad], stale_after=60.0)
    assert list(data.numbers) == [0, 1, 2, 3]
    assert data.budgets[1] == 2.0 and data.budgets[2] == 2.0
    np.testing.assert_allclose(data.values[3], [0.3, 0.6])
    np.testing.assert_allclose(data.x[3], SPACE.encode({"x": 0.3, "c": "a"}))
    assert bool(data.running[3]) == (state == TrialState.RUNNING)
    if key == _storage.BUDGET:
        assert math.isnan(data.budgets[3])


def test_bad_cost_is_unknown_while_good_costs_are_used() -> None:
    trials = [
        trial(0, **{_storage.COST: [2, 5.0]}),
        trial(1, **{_storage.COST: [5, "abc"]}),
        trial(2, **{_storage.COST: [5]}),
        trial(3),
    ]
    data = build(trials)
    assert data.costs[0] == 5.0
    assert np.isnan(data.costs[1:]).all()


def test_only_bad_costs_fall_back_to_steps() -> None:
    data = build([trial(0, **{_storage.COST: [5, None]}), trial(1)])
    np.testing.assert_array_equal(data.costs, [2.0, 2.0])


def test_bad_published_params_do_not_replace_real_ones() -> None:
    # A running trial whose suggest_* calls have not reached the storage yet: only the published
    # parameters say where it is. Bad ones leave it out; good ones make it pending.
    good = trial(1, TrialState.RUNNING, {}, {}, **{_storage.PARAMS: {"x": 0.4, "c": "b"}})
    bad = trial(2, TrialState.RUNNING, {}, {}, **{_storage.PARAMS: {"x": "far", "c": "b"}})
    worse = trial(3, TrialState.RUNNING, {}, {}, **{_storage.PARAMS: "x=0.4"})
    data = build([trial(0), good, bad, worse])
    assert list(data.numbers) == [0, 1]
    np.testing.assert_allclose(data.x[1], SPACE.encode({"x": 0.4, "c": "b"}))
    assert data.running[1] and data.steps[1].size == 0


def test_huge_published_int_does_not_crash() -> None:
    t = trial(1, TrialState.RUNNING, {}, {}, **{_storage.PARAMS: {"x": 10**400, "c": "a"}})
    assert list(build([trial(0), t]).numbers) == [0]


def test_bad_alive_falls_back_to_start_time() -> None:
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    recent = trial(1, TrialState.RUNNING, None, None, old, **{_storage.ALIVE: time.time()})
    garbage = trial(2, TrialState.RUNNING, None, None, old, **{_storage.ALIVE: "now"})
    data = build([trial(0), recent, garbage], stale_after=60.0)
    # A valid, recent alive mark keeps the trial pending; a bad one is ignored, so the trial
    # that started an hour ago is stale.
    assert list(data.running) == [False, True, False]


# FAIL trials ---------------------------------------------------------------------------------


def test_fail_trials_contribute_params_and_curves() -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5, 3: 0.7}, {"x": 0.25, "c": "b"})
    data = build([failed, trial(1)])
    assert list(data.numbers) == [0, 1]
    np.testing.assert_allclose(data.x[0], SPACE.encode({"x": 0.25, "c": "b"}))
    np.testing.assert_array_equal(data.steps[0], [1.0, 3.0])
    np.testing.assert_allclose(data.values[0], [0.5, 0.7])
    assert not data.running[0]


def test_fail_trial_with_published_params_only_is_data() -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5}, {}, **{_storage.PARAMS: {"x": 0.6, "c": "a"}})
    data = build([failed])
    np.testing.assert_allclose(data.x[0], SPACE.encode({"x": 0.6, "c": "a"}))


def test_fail_trial_without_reports_is_left_out() -> None:
    assert list(build([trial(0, TrialState.FAIL, {}), trial(1)]).numbers) == [1]


def test_minimised_fail_curve_is_negated() -> None:
    data = _observations.build(
        [trial(0, TrialState.FAIL, {1: 2.0})],
        SPACE,
        optuna.study.StudyDirection.MINIMIZE,
        T_HI,
        "steps",
    )
    np.testing.assert_allclose(data.values[0], [-2.0])


# Retries -------------------------------------------------------------------------------------


def test_retry_that_inherited_the_curve_replaces_the_failure() -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5, 2: 0.6})
    retry = trial(1, TrialState.COMPLETE, {1: 0.5, 2: 0.6, 3: 0.8}, failed_trial=0)
    assert list(build([failed, retry]).numbers) == [1]
    via_history = trial(1, TrialState.COMPLETE, {1: 0.5, 2: 0.6}, retry_history=[0])
    assert list(build([failed, via_history]).numbers) == [1]


def test_retry_from_scratch_keeps_both_curves() -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5, 2: 0.6})
    retry = trial(1, TrialState.COMPLETE, {1: 0.4, 2: 0.65}, failed_trial=0)
    assert list(build([failed, retry]).numbers) == [0, 1]


@pytest.mark.parametrize(
    "attrs",
    [
        {"retry_history": [[0]]},
        {"retry_history": [[0]], "failed_trial": "0"},
        {"retry_history": {"0": 1}},
        {"failed_trial": 0.5},
        {"failed_trial": None, "retry_history": [None]},
        {"failed_trial": 1},  # points at itself
    ],
)
def test_bad_retry_attributes_keep_the_failed_curve(attrs: dict[str, Any]) -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5, 2: 0.6})
    retry = trial(1, TrialState.COMPLETE, {1: 0.5, 2: 0.6}, **attrs)
    assert list(build([failed, retry]).numbers) == [0, 1]


def test_bad_history_entries_do_not_hide_good_ones() -> None:
    failed = trial(0, TrialState.FAIL, {1: 0.5, 2: 0.6})
    retry = trial(2, TrialState.COMPLETE, {1: 0.5, 2: 0.6}, retry_history=[[1], "x", 0])
    assert list(build([failed, trial(1), retry]).numbers) == [1, 2]


# --- cost="wallclock": seconds from the trial's start to its end (or now) --------------------

NOW = datetime.datetime(2026, 1, 15, 10, 0, 0, tzinfo=datetime.timezone.utc)


class _FrozenClock(datetime.datetime):
    """``datetime.datetime`` whose ``now()`` is :data:`NOW` (local naive time without tz)."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> Any:  # type: ignore[override]
        # Always a new object, as the real clock gives (``build`` tells "now" by identity).
        if tz is None:
            return NOW.astimezone().replace(tzinfo=None)
        return NOW.astimezone(tz) + datetime.timedelta(0)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = types.SimpleNamespace(datetime=_FrozenClock, timezone=datetime.timezone)
    monkeypatch.setattr(_observations, "datetime", clock)


@pytest.fixture
def local_time_zone() -> Iterator[Callable[[str], None]]:
    """Set the process's local time zone (``TZ``) for one test."""
    before = os.environ.get("TZ")

    def set_zone(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def timed(
    number: int,
    state: TrialState,
    start: datetime.datetime,
    complete: datetime.datetime | None,
) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=complete,
        params={"x": 0.1 * number, "c": "a"},
        distributions=DISTS,
        user_attrs={},
        system_attrs={},
        intermediate_values={1: 0.1, 2: 0.2},
        trial_id=6000 + number,
    )


def wallclock_costs(trials: list[FrozenTrial]) -> list[float]:
    data = _observations.build(trials, SPACE, MAXIMIZE, T_HI, "wallclock")
    assert list(data.numbers) == [t.number for t in trials]
    return [float(c) for c in data.costs]


def test_wallclock_cost_is_the_seconds_from_start_to_complete(frozen_clock: None) -> None:
    start = NOW - datetime.timedelta(hours=2)
    trials = [
        timed(0, TrialState.COMPLETE, start, start + datetime.timedelta(seconds=42.5)),
        timed(1, TrialState.PRUNED, start, start + datetime.timedelta(minutes=3)),
        timed(2, TrialState.FAIL, start, start + datetime.timedelta(seconds=7)),
    ]
    assert wallclock_costs(trials) == [42.5, 180.0, 7.0]
    # The same trials in steps: the last reported step.
    steps = _observations.build(trials, SPACE, MAXIMIZE, T_HI, "steps").costs
    assert list(steps) == [2.0, 2.0, 2.0]


def test_wallclock_cost_of_a_running_trial_runs_until_now(frozen_clock: None) -> None:
    aware = NOW - datetime.timedelta(seconds=30)
    naive_local = (NOW - datetime.timedelta(seconds=20)).astimezone().replace(tzinfo=None)
    trials = [
        timed(0, TrialState.RUNNING, aware, None),
        timed(1, TrialState.RUNNING, naive_local, None),
    ]
    assert wallclock_costs(trials) == [30.0, 20.0]


def test_wallclock_cost_with_a_naive_start_and_an_aware_complete(
    frozen_clock: None, local_time_zone: Callable[[str], None]
) -> None:
    local_time_zone("UTC")
    start = datetime.datetime(2026, 1, 15, 9, 0, 0)  # naive
    complete = datetime.datetime(2026, 1, 15, 9, 1, 30, tzinfo=datetime.timezone.utc)
    assert wallclock_costs([timed(0, TrialState.COMPLETE, start, complete)]) == [90.0]


def test_wallclock_naive_start_is_read_the_same_way_running_or_finished(
    frozen_clock: None, local_time_zone: Callable[[str], None]
) -> None:
    local_time_zone("CET-1")  # one hour east of UTC, no daylight saving
    start = (NOW - datetime.timedelta(seconds=90)).astimezone().replace(tzinfo=None)
    running = timed(0, TrialState.RUNNING, start, None)
    # Ended at the instant that is "now" for the running trial.
    finished = timed(1, TrialState.COMPLETE, start, NOW + datetime.timedelta(0))
    assert wallclock_costs([running]) == [90.0]
    assert wallclock_costs([finished]) == [90.0]

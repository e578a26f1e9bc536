"""RUNNING trials without a heartbeat: ``BOILSampler(stale_after=...)`` and ``boil:alive``."""

from __future__ import annotations

from collections.abc import Iterator
import datetime
import os
from pathlib import Path
import time

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _observations
from optuna_boil._model.search_space import SearchSpace


DIST: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}
SPACE = SearchSpace(DIST)
MAX = 8


def _running(x: float, started: datetime.datetime, alive: float | None = None) -> FrozenTrial:
    attrs = {"boil:budget": 4} if alive is None else {"boil:budget": 4, "boil:alive": alive}
    t = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={"x": x},
        distributions=DIST,
        intermediate_values={1: 0.1, 2: 0.2},
        system_attrs=attrs,
    )
    t.datetime_start = started
    return t


def _numbered(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    for i, t in enumerate(trials):
        t.number, t._trial_id = i, i + 10
    return trials


def _flags(trials: list[FrozenTrial], stale_after: float | None) -> dict[int, bool]:
    data = _observations.build(
        trials, SPACE, optuna.study.StudyDirection.MAXIMIZE, MAX, "steps", stale_after=stale_after
    )
    # Whatever the flag, the partial curve is data.
    for t in trials:
        k = list(data.numbers).index(t.number)
        assert list(data.steps[k]) == [1.0, 2.0] and list(data.values[k]) == [0.1, 0.2]
        assert data.budgets[k] == 4
    return {int(n): bool(r) for n, r in zip(data.numbers, data.running, strict=True)}


def test_stale_rule_uses_the_latest_sign_of_life() -> None:
    utc = datetime.timezone.utc
    now = datetime.datetime.now(utc)
    hour_ago = now - datetime.timedelta(hours=1)
    trials = _numbered(
        [
            _running(0.1, now),  # just started
            _running(0.2, hour_ago),  # started long ago, never heard of since
            _running(0.3, hour_ago, alive=time.time() - 5),  # long ago, but alive recently
            _running(0.4, hour_ago, alive=time.time() - 1800),  # alive mark is old too
        ]
    )
    assert _flags(trials, stale_after=600) == {0: True, 1: False, 2: True, 3: False}
    assert _flags(trials, stale_after=None) == {0: True, 1: True, 2: True, 3: True}
    assert _flags(trials, stale_after=4000) == {0: True, 1: True, 2: True, 3: True}


@pytest.fixture
def west_of_utc() -> Iterator[None]:
    """Local time 8 hours behind UTC, so naive-local vs UTC confusions show up as staleness."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize("storage_kind", ["inmemory", "sqlite", "journal"])
def test_fresh_running_trial_is_pending_in_any_time_zone(
    west_of_utc: None, storage_kind: str, tmp_path: Path
) -> None:
    # In-memory storage gives naive local datetimes, RDB and journal aware UTC ones.
    storage: optuna.storages.BaseStorage | str | None = None
    if storage_kind == "sqlite":
        storage = f"sqlite:///{tmp_path / 'tz.db'}"
    elif storage_kind == "journal":
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "tz.log")))
    study = optuna.create_study(storage=storage, direction="maximize")
    trial = study.ask({"x": DIST["x"]})
    trial.report(0.1, 1)
    trial.report(0.2, 2)
    study._storage.set_trial_system_attr(trial._trial_id, "boil:budget", 4)
    trials = study.get_trials(deepcopy=False)
    assert _flags(trials, stale_after=3600) == {0: True}


def test_pruner_marks_trials_alive_and_sampler_stops_treating_silent_ones_as_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'stale.db'}",
        direction="maximize",
        sampler=BOILSampler(seed=0, n_startup_trials=2, stale_after=0.5),
        pruner=BOILPruner(min_resource=1, max_resource=MAX),
    )
    for _ in range(3):
        t = study.ask()
        x = t.suggest_float("x", 0.0, 1.0)
        pruned = False
        for step in range(1, MAX + 1):
            t.report(x * (1 - 0.5**step), step)
            if t.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(t, state=TrialState.PRUNED)
        else:  # the pruner let it train to MAX
            study.tell(t, x * (1 - 0.5**MAX))

    # A worker that dies without a heartbeat leaves this trial RUNNING.
    abandoned = study.ask()
    abandoned.suggest_float("x", 0.0, 1.0)
    abandoned.report(0.3, 1)
    before = time.time()
    abandoned.should_prune()  # Whatever it answers, the worker then dies.
    alive = study._storage.get_trial_system_attrs(abandoned._trial_id)["boil:alive"]
    assert isinstance(alive, float) and before - 1 <= alive <= time.time() + 1
    abandoned.report(0.4, 2)
    abandoned.should_prune()  # Within 30 s: the mark is not rewritten.
    assert study._storage.get_trial_system_attrs(abandoned._trial_id)["boil:alive"] == alive

    seen: list[dict[int, bool]] = []
    original = _observations.build

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        data = original(*args, **kwargs)  # type: ignore[arg-type]
        seen.append({int(n): bool(r) for n, r in zip(data.numbers, data.running, strict=True)})
        return data

    monkeypatch.setattr(_observations, "build", spy)
    time.sleep(1.0)
    nxt = study.ask()
    nxt.suggest_float("x", 0.0, 1.0)
    assert seen, "the sampler did not build curve data"
    assert seen[-1].get(abandoned.number) is False, "a silent RUNNING trial is still pending"
    assert study.trials[abandoned.number].intermediate_values == {1: 0.3, 2: 0.4}

"""A worker killed with SIGKILL mid-trial: heartbeat, retry, and how the curves are used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import signal
import subprocess
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import InMemoryStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
import pytest

from optuna_boil import _observations
from optuna_boil._model.search_space import SearchSpace
from tests.distributed._dist_worker import StudySpec
from tests.distributed._dist_worker import read_log


KILL_AT_STEP = 3


def _config(spec: StudySpec, log: Path, **extra: Any) -> dict[str, Any]:
    return {
        "study": spec.to_json(),
        "log": str(log),
        "seed": 0,
        "n_startup_trials": 4,
        "startup_budget": 4,  # > KILL_AT_STEP, so the victim is still running when killed
        "min_resource": 1,
        "max_resource": 8,
        "noise": 0.01,  # a re-run of the same configuration reports different values
        "heartbeat": True,
        **extra,
    }


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker {proc.pid} did not finish within {timeout} s")
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == 0, output


@pytest.mark.parametrize(
    ("study_spec", "inherit"),
    [
        pytest.param("sqlite", False, id="sqlite-fresh-retry"),
        pytest.param("postgresql", True, marks=pytest.mark.db, id="postgresql-inheriting-retry"),
    ],
    indirect=["study_spec"],
)
def test_killed_worker_is_failed_retried_once_and_its_curve_used_once(
    study_spec: StudySpec,
    inherit: bool,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    victim_log, survivor_log = tmp_path / "victim.jsonl", tmp_path / "survivor.jsonl"
    victim = start_worker(
        _config(study_spec, victim_log, n_trials=1, wait_for_kill_at_step=KILL_AT_STEP)
    )
    deadline = time.monotonic() + 120
    while not any(e["event"] == "waiting_for_kill" for e in read_log(victim_log)):
        assert victim.poll() is None, "victim exited before it could be killed"
        assert time.monotonic() < deadline, "victim never reached the kill point"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    time.sleep(3.5)  # grace_period=2 s after the last heartbeat (interval 1 s)

    survivor = start_worker(_config(study_spec, survivor_log, n_trials=3, inherit=inherit))
    _wait(survivor, 180)

    study = optuna.load_study(study_name=study_spec.study_name, storage=study_spec.storage())
    trials = study.get_trials(deepcopy=False)
    victim_events = read_log(victim_log)
    dead_number = next(e["number"] for e in victim_events if e["event"] == "start")
    dead = next(t for t in trials if t.number == dead_number)
    reported = {e["step"]: e["value"] for e in victim_events if e["event"] == "report"}

    # The dead trial was failed by the heartbeat and keeps its partial curve.
    assert dead.state == TrialState.FAIL
    assert dead.intermediate_values == reported
    assert sorted(reported) == list(range(1, KILL_AT_STEP + 1))

    # Exactly one retry, with the same configuration and budget; the study carried on.
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.params == dead.params
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(trials) == 1 + 1 + 3 - 1  # victim, its retry (run by the survivor), 2 more
    assert all(t.state != TrialState.RUNNING for t in trials)
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.last_step == t.system_attrs["boil:budget"]
    if inherit:
        for step, value in reported.items():
            assert retry.intermediate_values[step] == value

    # The model sees the dead trial's curve once: not at all when the retry inherited it (the
    # retry carries it), and on its own when the retry trained from scratch.
    space = SearchSpace(dead.distributions)
    data = _observations.build(trials, space, study.direction, 8, "steps")
    numbers = list(data.numbers)
    assert len(numbers) == len(set(numbers))
    assert retry.number in numbers
    if inherit:
        assert dead.number not in numbers, "inherited curve counted twice"
    else:
        assert dead.number in numbers, "failed trial's own curve was dropped"


def _in_memory_study_with_offset_ids() -> optuna.Study:
    """A study whose trial ids differ from trial numbers (as on any shared RDB/journal)."""
    storage = InMemoryStorage()
    other = optuna.create_study(storage=storage)
    for _ in range(3):
        other.enqueue_trial({})
    return optuna.create_study(storage=storage, direction="maximize")


@pytest.mark.parametrize("inherit", [False, True])
@pytest.mark.parametrize("retry_progress", [2, 6])
def test_build_counts_a_retried_failure_once(inherit: bool, retry_progress: int) -> None:
    """Unit version of the above: ids != numbers, retry before and after it passed the failure."""
    study = _in_memory_study_with_offset_ids()
    dist: dict[str, BaseDistribution] = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for i in range(2):  # Two ordinary trials before the failure.
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.1 * (i + 1)},
                distributions=dist,
                intermediate_values={1: 0.1, 2: 0.2},
                state=TrialState.PRUNED,
            )
        )
    failed_curve = {1: 0.5, 2: 0.6, 3: 0.7}
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.9},
            distributions=dist,
            intermediate_values=failed_curve,
            state=TrialState.FAIL,
            system_attrs={"boil:budget": 4},
        )
    )
    failed = study.trials[-1]
    assert failed._trial_id != failed.number
    RetryHeartbeatStaleTrialCallback(max_retry=1, inherit_intermediate_values=inherit)(
        study, failed
    )
    trial = study.ask()  # Pops the WAITING retry.
    assert study._storage.get_trial_system_attrs(trial._trial_id)["failed_trial"] == failed.number
    for step in range(1, retry_progress + 1):  # A fresh run reports new values.
        trial.report(0.3 + 0.01 * step, step)
    trials = study.get_trials(deepcopy=False)
    retry = trials[-1]
    data = _observations.build(trials, SearchSpace(dist), study.direction, 8, "steps")
    numbers = list(data.numbers)
    assert retry.number in numbers and len(numbers) == len(set(numbers))
    # Every value stays in storage either way.
    assert study.trials[failed.number].intermediate_values == failed_curve
    if inherit:
        assert failed.number not in numbers, "inherited curve counted twice"
        k = numbers.index(retry.number)
        assert list(data.values[k][:3]) == list(failed_curve.values())
    else:
        assert failed.number in numbers, "failed trial's own curve was dropped"

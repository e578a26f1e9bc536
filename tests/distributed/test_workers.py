"""Four worker processes optimising one study on PostgreSQL, MariaDB and the journal file."""

from __future__ import annotations

from collections.abc import Callable
import itertools
import math
from pathlib import Path
import subprocess
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from tests.distributed._dist_worker import StudySpec
from tests.distributed._dist_worker import read_log


N_WORKERS = 4
TRIALS_PER_WORKER = 6
MIN_RESOURCE, MAX_RESOURCE = 1, 8
TIMEOUT = 240.0


# Two configurations closer than this in the unit cube (x linear, lr on a log scale) are the
# same point for the model: running both at the same budget buys no information.
SAME_POINT = 1e-3


def _unit(params: dict[str, Any]) -> tuple[float, float]:
    return params["x"], (math.log10(params["lr"]) + 4.0) / 3.0


def _same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return max(abs(p - q) for p, q in zip(_unit(a), _unit(b), strict=True)) < SAME_POINT


def _overlap(a: FrozenTrial, b: FrozenTrial) -> bool:
    assert a.datetime_start and a.datetime_complete and b.datetime_start and b.datetime_complete
    return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


def run_workers(
    spec: StudySpec,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    seeds: list[int],
) -> list[list[dict[str, Any]]]:
    procs, logs = [], []
    for i, seed in enumerate(seeds):
        log = tmp_path / f"worker{i}.jsonl"
        logs.append(log)
        config = {
            "study": spec.to_json(),
            "log": str(log),
            "seed": seed,
            "n_trials": TRIALS_PER_WORKER,
            "n_startup_trials": 4,
            "min_resource": MIN_RESOURCE,
            "max_resource": MAX_RESOURCE,
            "noise": 0.01,
        }
        procs.append(start_worker(config))
    deadline = time.monotonic() + TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {proc.pid} did not finish within {TIMEOUT} s")
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert proc.returncode == 0, f"worker failed:\n{output}"
    return [read_log(log) for log in logs]


@pytest.mark.parametrize(
    ("study_spec", "seeds"),
    [
        pytest.param("postgresql", "same", marks=pytest.mark.db, id="postgresql-same-seed"),
        pytest.param("mariadb", "different", marks=pytest.mark.db, id="mariadb-own-seeds"),
        pytest.param("journal", "same", id="journal-same-seed"),
    ],
    indirect=["study_spec"],
)
def test_parallel_workers_share_one_study(
    study_spec: StudySpec,
    seeds: str,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    worker_seeds = [7] * N_WORKERS if seeds == "same" else [7 + i for i in range(N_WORKERS)]
    logs = run_workers(study_spec, start_worker, tmp_path, worker_seeds)
    study = optuna.load_study(study_name=study_spec.study_name, storage=study_spec.storage())
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == N_WORKERS * TRIALS_PER_WORKER
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [
        (t.number, t.state) for t in trials
    ]

    # No write lost: what each worker reported is exactly what the storage reads back, and
    # every trial was run by exactly one worker.
    by_number = {t.number: t for t in trials}
    owner: dict[int, int] = {}
    for w, events in enumerate(logs):
        reported: dict[int, dict[int, float]] = {}
        for e in events:
            if e["event"] == "start":
                assert e["number"] not in owner, f"trial {e['number']} ran in two workers"
                owner[e["number"]] = w
                reported[e["number"]] = {}
                t = by_number[e["number"]]
                assert t.params == e["params"]
                assert e["budget"] == t.user_attrs["boil_initial_budget"]
            elif e["event"] == "report":
                reported[e["number"]][e["step"]] = e["value"]
            elif e["event"] == "end":
                t = by_number[e["number"]]
                assert t.state.name == e["state"]
                assert t.value == e["value"]
        for number, curve in reported.items():
            assert by_number[number].intermediate_values == curve, f"trial {number}"
    assert sorted(owner) == sorted(by_number)
    assert len(set(owner.values())) == N_WORKERS

    # Every budget was honoured.
    for t in trials:
        budget = t.system_attrs["boil:budget"]
        assert MIN_RESOURCE <= t.user_attrs["boil_initial_budget"] <= budget <= MAX_RESOURCE
        assert t.last_step is not None and t.last_step >= MIN_RESOURCE
        if t.state == TrialState.PRUNED:
            # At its budget, or earlier at a decision point that found the run implausible.
            stop = t.user_attrs.get("boil_stop", "")
            early = t.last_step < budget and stop.startswith("decision point")
            assert t.last_step == budget or early, (t.number, t.last_step, budget, stop)
        else:
            assert t.last_step == MAX_RESOURCE, (t.number, t.last_step)

    # Trials decided by the model (after start-up) that were RUNNING at the same time never got
    # the same configuration and initial budget.
    modelled = [t for t in trials if "boil_log_acq" in t.user_attrs]
    assert len(modelled) >= len(trials) // 2
    clashes = [
        (a.number, b.number, a.user_attrs["boil_initial_budget"], a.params, b.params)
        for a, b in itertools.combinations(modelled, 2)
        if _overlap(a, b)
        and a.user_attrs["boil_initial_budget"] == b.user_attrs["boil_initial_budget"]
        and _same_params(a.params, b.params)
    ]
    assert not clashes, f"concurrent trials with the same (params, budget): {clashes}"
    overlapping = sum(1 for a, b in itertools.combinations(modelled, 2) if _overlap(a, b))
    assert overlapping > 0, "workers never overlapped: the test did not test concurrency"

"""A study continued by a new process makes the decision the first process would have made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import subprocess
from typing import Any

import optuna
import pytest

from tests.distributed._dist_worker import StudySpec
from tests.distributed._dist_worker import read_log


N_TRIALS = 7


def _run(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("worker did not finish within 180 s")
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == 0, output


def _decision(study: optuna.Study, number: int) -> dict[str, Any]:
    t = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return {
        "params": t.params,
        "initial_budget": t.user_attrs["boil_initial_budget"],
        "budget": t.system_attrs["boil:budget"],
        "extensions": t.system_attrs.get("boil:extensions", 0),
        "state": t.state,
        "curve": t.intermediate_values,
        "log_acq": t.user_attrs.get("boil_log_acq"),
    }


@pytest.mark.parametrize("study_spec", ["sqlite"], indirect=True)
def test_new_process_continues_with_the_same_decision(
    study_spec: StudySpec,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    snapshot = f"sqlite:///{tmp_path / 'snapshot.db'}"
    config: dict[str, Any] = {
        "study": study_spec.to_json(),
        "seed": 3,
        "n_startup_trials": 4,
        "min_resource": 1,
        "max_resource": 8,
    }
    # Process 1: N trials, copy the study, then one more trial with the same objects.
    first_log = tmp_path / "first.jsonl"
    _run(
        start_worker({**config, "log": str(first_log), "n_trials": N_TRIALS, "copy_to": snapshot})
    )
    assert any(e["event"] == "copied" for e in read_log(first_log))
    # Process 2: fresh sampler and pruner on the copy, one trial.
    copy = StudySpec("sqlite", snapshot, study_spec.study_name)
    _run(
        start_worker(
            {
                **config,
                "study": copy.to_json(),
                "log": str(tmp_path / "second.jsonl"),
                "n_trials": 1,
            }
        )
    )

    first = optuna.load_study(study_name=study_spec.study_name, storage=study_spec.location)
    second = optuna.load_study(study_name=copy.study_name, storage=snapshot)
    assert len(first.trials) == len(second.trials) == N_TRIALS + 1
    # The copied history is the same, and so is the decision made on it.
    for number in range(N_TRIALS):
        assert _decision(first, number) == _decision(second, number)
    decided = _decision(first, N_TRIALS)
    assert decided["log_acq"] is not None, "the model, not the start-up, made this decision"
    assert decided == _decision(second, N_TRIALS)

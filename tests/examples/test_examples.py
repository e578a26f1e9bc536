"""Run every example in its tiny setting, as a user would, in a subprocess.

The examples are started together (as many at a time as there are CPU cores, each with one
thread) by a module-scoped fixture; each test then checks its own example's result.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import importlib.util
import os
from pathlib import Path
import re
import subprocess
import sys
import uuid

import optuna
from optuna.trial import TrialState
import pytest


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
POSTGRES_URL = os.environ.get("BOIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TIMEOUT = 150  # Seconds per example; each takes well under a minute on an idle 2-core machine.


SMOKE = {
    "pytorch_schedule.py": "torch",
    "cartpole_ddqn.py": "gymnasium",
    "lightgbm_rounds.py": "lightgbm",
    "ask_and_tell.py": "sklearn",
    "cost_reporting.py": "numpy",
}
# Examples with checks of their own (run like the SMOKE ones, in their own folder).
OWN_CHECKS = {"pytorch_resume.py": "torch"}


@dataclass
class Run:
    """An example started by the ``runs`` fixture (or the reason it was not started)."""

    storage: str = ""
    study_name: str = ""
    future: Future[subprocess.CompletedProcess[str]] | None = None
    skip: str = ""
    fail: str = ""

    def output(self) -> str:
        """Wait for the example and return its output; fail with the output on error."""
        if self.fail:
            pytest.fail(self.fail)
        if self.skip:
            pytest.skip(self.skip)
        assert self.future is not None
        proc = self.future.result()
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, (
            f"{proc.args} exited with {proc.returncode}:\n{output[-4000:]}"
        )
        return output


def run_example(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<script> args`` with one thread and a timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def missing(module: str) -> str:
    """A skip reason when an optional dependency is not installed, else ``""``."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install {module})"
    return ""


def postgres_url() -> Run:
    """A run carrying the PostgreSQL URL, or why it is skipped (an error under ``CI=true``)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from postgres_workers import normalise_url
    finally:
        sys.path.remove(str(EXAMPLES))
    url = normalise_url(POSTGRES_URL)
    in_ci = os.environ.get("CI", "").lower() == "true"
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # No driver, no server, no database: all mean "not here".
        if in_ci:
            return Run(fail=f"CI=true but PostgreSQL at {url} is not usable: {error!r}")
        return Run(skip=f"PostgreSQL at {url} does not answer: {error!r}")
    return Run(storage=url, study_name=f"boil-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Start every example at once (one per CPU core at a time) and hand out the runs."""
    result: dict[str, Run] = {}
    with ThreadPoolExecutor(max_workers=max(os.cpu_count() or 1, 1)) as pool:
        pg = postgres_url() if not missing("sklearn") else Run(skip=missing("sklearn"))
        if pg.storage:
            pg.future = pool.submit(
                run_example,
                "postgres_workers.py",
                "--smoke",
                "--workers",
                "2",
                "--storage",
                pg.storage,
                "--study-name",
                pg.study_name,
                cwd=tmp_path_factory.mktemp("postgres"),
            )
        result["postgres_workers.py"] = pg
        tmp = tmp_path_factory.mktemp("quickstart")
        storage = f"sqlite:///{tmp / 'quickstart.db'}"
        result["quickstart.py"] = Run(
            storage=storage,
            future=pool.submit(
                run_example, "quickstart.py", "--smoke", "--storage", storage, cwd=tmp
            ),
        )
        for script, module in {**SMOKE, **OWN_CHECKS}.items():
            if missing(module):
                result[script] = Run(skip=missing(module))
                continue
            tmp = tmp_path_factory.mktemp(script.removesuffix(".py"))
            storage = f"sqlite:///{tmp / 'study.db'}"
            result[script] = Run(
                storage=storage,
                future=pool.submit(run_example, script, "--smoke", "--storage", storage, cwd=tmp),
            )
        try:
            yield result
        finally:
            if pg.storage:
                try:
                    optuna.delete_study(study_name=pg.study_name, storage=pg.storage)
                except KeyError:
                    pass


def test_every_example_is_run() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        *SMOKE,
        *OWN_CHECKS,
        "quickstart.py",
        "postgres_workers.py",
    }


def quickstart_study(storage: str) -> optuna.Study:
    """The one study the quickstart created in ``storage``."""
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name.startswith("boil-quickstart-")
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_quickstart(runs: dict[str, Run]) -> None:
    run = runs["quickstart.py"]
    output = run.output()
    study = quickstart_study(run.storage)
    trials = study.trials
    assert len(trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all("boil_budget" in t.user_attrs for t in trials)
    # The summary tells the story of the study with the numbers in the storage.
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    epochs = sum(len(t.intermediate_values) for t in trials)
    assert f"4 trials, {n_complete} COMPLETE" in output
    assert f"Epochs trained: {epochs}, against {4 * 5} to train every trial fully" in output
    if n_complete:
        assert f"Best COMPLETE trial: {study.best_trial.number}, " in output
    else:
        assert "No trial has trained all 5 epochs yet" in output
    assert re.search(r"Recommended configuration .*: trial \d+, trained \d+ of 5 epochs", output)
    assert re.search(r"predicted accuracy after 5 epochs: \d\.\d{4} ± \d\.\d{4}", output)
    assert "Next: " in output


def test_quickstart_resume(runs: dict[str, Run]) -> None:
    run = runs["quickstart.py"]
    run.output()
    name = quickstart_study(run.storage).study_name
    proc = run_example(
        "quickstart.py", "--smoke", "--resume", name, "--storage", run.storage, cwd=Path.cwd()
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = quickstart_study(run.storage)  # Still the one study, now with twice the trials.
    assert study.study_name == name
    assert [t.number for t in study.trials] == list(range(8))


@pytest.mark.parametrize("script", list(SMOKE))
def test_example_smoke(script: str, runs: dict[str, Run]) -> None:
    run = runs[script]
    assert "Recommended" in run.output()
    (summary,) = optuna.get_all_study_summaries(run.storage)
    assert summary.n_trials == 3
    study = optuna.load_study(study_name=summary.study_name, storage=run.storage)
    for trial in study.trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert trial.user_attrs["boil_budget"] >= trial.user_attrs["boil_initial_budget"]
    if script == "cost_reporting.py":
        assert all("boil:cost" in t.system_attrs for t in study.trials)
    if script == "lightgbm_rounds.py":
        assert study.direction == optuna.study.StudyDirection.MINIMIZE
        assert all(step % 10 == 0 or step == 30 for step in study.trials[0].intermediate_values)


def test_pytorch_resume_continues_runs_from_checkpoints(runs: dict[str, Run]) -> None:
    run = runs["pytorch_resume.py"]
    output = run.output()
    (summary,) = optuna.get_all_study_summaries(run.storage)
    study = optuna.load_study(study_name=summary.study_name, storage=run.storage)
    continued = [t for t in study.trials if "boil_resumed_from" in t.user_attrs]
    assert f"runs continued from a checkpoint: {len(continued)}" in output
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    assert f"Epochs trained: {epochs};" in output
    folder = Path(run.storage.removeprefix("sqlite:///")).parent / "checkpoints"
    for t in continued:
        earlier = study.trials[t.user_attrs["boil_resumed_from"]]
        # It reported only the epochs after the run it continued, with that run's parameters.
        assert min(t.intermediate_values) == earlier.last_step + 1
        assert t.params == earlier.params
        # That run's checkpoint is gone once the continuation ended.
        assert not (folder / f"trial_{earlier.number}.pt").exists()
    for t in study.trials:
        if t.state == TrialState.PRUNED and t.number not in {
            c.user_attrs["boil_resumed_from"] for c in continued
        }:
            assert (folder / f"trial_{t.number}.pt").exists()


def test_postgres_workers(runs: dict[str, Run]) -> None:
    run = runs["postgres_workers.py"]
    assert "2 workers finished with exit codes [0, 0]" in run.output()
    study = optuna.load_study(study_name=run.study_name, storage=run.storage)
    assert len(study.trials) == 4  # 2 workers x 2 trials.
    assert len({t.number for t in study.trials}) == 4
    assert all("boil_budget" in t.user_attrs for t in study.trials)

"""Smoke test of the LCBench harness: budget accounting, traces, task guard and the summary."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import numpy as np
import pytest


pytest.importorskip("onnxruntime")

from benchmarks import run_lcbench
from benchmarks.lcbench import DEV_TASKS
from benchmarks.lcbench import N_EPOCHS
from benchmarks.lcbench import LCBenchSurrogate
from benchmarks.run_lcbench import DEHB_PYTHON_ENV
from benchmarks.run_lcbench import RunSettings
from benchmarks.run_lcbench import run_all
from benchmarks.summarize_lcbench import corner_stats
from benchmarks.summarize_lcbench import on_bound_share
from benchmarks.summarize_lcbench import paired_differences
from benchmarks.summarize_lcbench import regret_at
from benchmarks.summarize_lcbench import summarize


BUDGET = 60


def _check_trace(record: dict[str, Any], key: str) -> None:
    points = np.asarray(record[key], dtype=float)
    assert np.all(np.diff(points[:, 0]) > 0), key  # epochs
    assert np.all(np.diff(points[:, 1]) >= 0), key  # simulated time
    assert points[-1, 0] <= BUDGET
    assert points[-1, 1] <= record["sim_time_used"] * (1 + 1e-5)


def _check_accounting(record: dict[str, Any]) -> None:
    assert record["epochs_used"] == BUDGET
    for key in ("trace", "rec_trace"):
        assert len(record[key]) > 0
        _check_trace(record, key)
    best = np.asarray(record["trace"], dtype=float)[:, 2]
    assert np.all(np.diff(best) > 0)
    assert best[-1] == pytest.approx(record["best_observed"], rel=1e-5)
    # Every epoch is paid by exactly one trial; COMPLETE trials trained all 52 epochs.
    last_epochs = record["last_epochs"]
    assert len(last_epochs) == record["n_trials"]
    assert sum(last_epochs) == record["epochs_used"]
    assert all(1 <= e <= N_EPOCHS for e in last_epochs)
    assert last_epochs.count(N_EPOCHS) >= record["n_complete"]
    complete = record["complete_trace"]
    assert (len(complete) > 0) == (record["n_complete"] > 0)
    if complete:
        _check_trace(record, "complete_trace")
        values = np.asarray(complete, dtype=float)[:, 2]
        assert np.all(np.diff(values) > 0)
        assert values[-1] == pytest.approx(record["best_complete"], rel=1e-5)
        assert record["best_complete"] <= record["best_observed"]
        assert record["first_complete_epoch"] == complete[0][0] >= N_EPOCHS
    else:
        assert record["best_complete"] is None and record["first_complete_epoch"] is None
    for kind in ("observed", "complete", "recommended"):
        for axis, grid in (("epochs", [1, 10, 30, BUDGET]), ("time", [0.1, 1.0, 100.0])):
            regret = regret_at(record, kind, axis, grid)
            assert np.all((regret >= 0) & (regret <= 1)), (kind, axis)
            if kind != "recommended":  # a new recommendation can be truly worse (DEHB's is)
                assert np.all(np.diff(regret) <= 0), (kind, axis)
    # The complete incumbent has regret 1 until the first COMPLETE trial.
    assert regret_at(record, "complete", "epochs", [N_EPOCHS - 1])[0] == 1.0


def test_harness_accounting(lcbench_dir: Path, tmp_path: Path) -> None:
    settings = RunSettings(budget=BUDGET, data_dir=str(lcbench_dir))
    records = run_all(["random", "tpe_hyperband"], ["3945"], [0], settings, out=tmp_path)
    assert [r["method"] for r in records] == ["random", "tpe_hyperband"]
    for record in records:
        _check_accounting(record)
    random = records[0]
    # No pruning: one full 52-epoch trial, then a second one cut by the budget after 8 epochs.
    assert (random["n_trials"], random["n_pruned"], random["n_complete"]) == (2, 1, 1)
    assert random["last_epochs"] == [N_EPOCHS, BUDGET - N_EPOCHS]
    assert random["first_complete_epoch"] == N_EPOCHS
    assert [e for e, *_ in random["complete_trace"]] == [N_EPOCHS]
    assert random["best_complete"] == pytest.approx(random["complete_trace"][0][2], rel=1e-5)
    # Runs already recorded in `out` are skipped.
    assert run_all(["random"], ["3945"], [0], settings, out=tmp_path) == []
    plots = importlib.util.find_spec("matplotlib") is not None
    md = summarize(records, tmp_path / "summary.md", tmp_path / "summary" if plots else None)
    assert "| random |" in md and "| tpe_hyperband |" in md
    assert "## COMPLETE trials and budget distribution" in md
    assert "### Complete incumbent (best COMPLETE trial)" in md
    if plots:
        assert (tmp_path / "summary_epochs.png").is_file()
        assert (tmp_path / "summary_time.png").is_file()


def _dehb_python() -> str | None:
    python = os.environ.get(DEHB_PYTHON_ENV, sys.executable)
    if python == sys.executable and importlib.util.find_spec("dehb") is None:
        return None
    probe = subprocess.run([python, "-c", "import dehb"], capture_output=True)
    return python if probe.returncode == 0 else None


def test_dehb_accounting(lcbench_dir: Path) -> None:
    python = _dehb_python()
    if python is None:
        pytest.skip(f"dehb not installed here; set ${DEHB_PYTHON_ENV} to a Python that has it")
    settings = RunSettings(budget=BUDGET, data_dir=str(lcbench_dir), dehb_python=python)
    (record,) = run_all(["dehb"], ["3945"], [0], settings)
    _check_accounting(record)


def test_recorder_refuses_overspending() -> None:
    recorder = run_lcbench.Recorder(2, 1, lambda: None, lambda c: 0.0)
    recorder.spend(1.0, 0.5, 0)
    recorder.spend(1.0, None, 0)
    assert recorder.exhausted
    with pytest.raises(RuntimeError):
        recorder.spend(1.0, 0.6, 1)


def test_recorder_complete_trace() -> None:
    recorder = run_lcbench.Recorder(200, 10, lambda: None, lambda c: 0.0)
    for trial, value in enumerate((0.5, 0.4, 0.7)):
        for _ in range(N_EPOCHS):
            recorder.spend(1.0, value, trial)
        recorder.complete(value, trial)
    assert recorder.n_complete == 3 and recorder.first_complete_epoch == N_EPOCHS
    assert recorder.complete_trace == [(52, 52.0, 0.5, 0), (156, 156.0, 0.7, 2)]
    assert recorder.trial_epochs == {0: N_EPOCHS, 1: N_EPOCHS, 2: N_EPOCHS}


def _observed_record(method: str, task: str, seed: int, value: float) -> dict[str, Any]:
    # y* = 1 and y_min = 0, so the regret after epoch 10 is 1 - value.
    return {
        "method": method,
        "task": task,
        "seed": seed,
        "budget": 100,
        "y_star": 1.0,
        "y_min": 0.0,
        "time_ref": 1.0,
        "trace": [[10, 10.0, value, 0]],
    }


def test_paired_differences_pair_runs_by_task_and_seed() -> None:
    records = []
    for task, gap in (("1", 0.1), ("2", -0.3)):
        for seed in range(3):
            base = 0.2 + 0.1 * seed
            records.append(_observed_record("ref", task, seed, base))
            if (task, seed) != ("2", 2):  # one missing run is left out of the pairs
                records.append(_observed_record("other", task, seed, base + gap))
    out = paired_differences(records, "observed", "ref", [5, 50])
    mean, se, se_tasks, wins, ties, losses, n, median = out["other"]
    assert n == 5
    # Regret differences are -gap: seeds 0, 1 average -0.1 and +0.3, seed 2 has only task 1.
    per_seed = np.array([0.1, 0.1, -0.1])
    assert mean[1] == pytest.approx(per_seed.mean())
    assert se[1] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(3))
    # Over tasks: task 1 averages -0.1, task 2 +0.3; resampling two tasks, the mean's standard
    # deviation is that of one task over sqrt(2): 0.2 / sqrt(2), within bootstrap noise.
    assert se_tasks[1] == pytest.approx(0.2 / np.sqrt(2), rel=0.03)
    assert se_tasks[0] == 0.0
    # Task 1 is better by 0.1 on every seed (no spread: a win), task 2 worse by 0.3 (a loss).
    assert (wins[1], ties[1], losses[1]) == (1, 0, 1)
    # Before the first report both have regret 1: a tie on both tasks.
    assert mean[0] == 0.0 and (wins[0], ties[0], losses[0]) == (0, 2, 0)
    with pytest.raises(ValueError, match="'nope'"):
        paired_differences(records, "observed", "nope", [50])


def test_a_task_difference_within_its_seed_spread_is_a_tie() -> None:
    records = []
    for seed, gap in enumerate((0.2, -0.1, 0.05)):  # mean +0.05, SE 0.087 over seeds
        records.append(_observed_record("ref", "1", seed, 0.5))
        records.append(_observed_record("other", "1", seed, 0.5 + gap))
    p = paired_differences(records, "observed", "ref", [50])["other"]
    assert (p.wins[0], p.ties[0], p.losses[0]) == (0, 1, 0)


def test_protocol_verdict_needs_the_mean_and_the_median() -> None:
    def verdict(gaps: list[float]) -> str:
        records = []
        for t, gap in enumerate(gaps):
            for seed in range(2):
                records.append(_observed_record("ref", str(t), seed, 0.5))
                records.append(_observed_record("other", str(t), seed, 0.5 + gap))
        return paired_differences(records, "observed", "ref", [50])["other"].verdicts()[0]

    # Better on every task by a similar amount: mean beyond two SE over tasks, median lower.
    assert verdict([0.1, 0.12, 0.08, 0.11, 0.09]) == "better"
    assert verdict([-0.1, -0.12, -0.08, -0.11, -0.09]) == "worse"
    # One task carries the mean (median worse): level, whatever the mean says.
    assert verdict([0.4, 0.41, 0.39, -0.01, -0.01, -0.01, -0.01]) == "level"


def test_dev_tasks(lcbench_dir: Path) -> None:
    assert len(DEV_TASKS) == len(set(DEV_TASKS)) == 24
    assert set(DEV_TASKS) <= set(LCBenchSurrogate(lcbench_dir).tasks)


def test_heldout_tasks_are_refused(tmp_path: Path) -> None:
    heldout = "189909"  # an LCBench task outside the development tasks
    assert heldout not in DEV_TASKS
    with pytest.raises(ValueError, match="held out"):
        run_all(["random"], ["3945", heldout], [0], RunSettings(budget=BUDGET), out=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any run
    with pytest.raises(ValueError, match="held out"):
        run_lcbench.run_one("random", heldout, 0, RunSettings(budget=BUDGET))
    with pytest.raises(SystemExit):
        run_lcbench.main(["--tasks", heldout, "--methods", "random", "--out", str(tmp_path)])
    assert run_lcbench.check_tasks([heldout], allow_heldout=True) == [heldout]


def test_dyhpo_worker_runs_a_heldout_task_only_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import dyhpo_worker

    heldout = "189909"

    class Reached(Exception):
        pass

    def surrogate(data_dir: str | None) -> None:
        raise Reached(data_dir)

    # Past the task guard the run loads the surrogate first: stop it there.
    monkeypatch.setattr(run_lcbench, "get_surrogate", surrogate)
    with pytest.raises(ValueError, match="held out"):
        dyhpo_worker.run_dyhpo(heldout, 0)
    with pytest.raises(SystemExit):
        dyhpo_worker.main(["--task", heldout])
    with pytest.raises(Reached):
        dyhpo_worker.run_dyhpo(heldout, 0, allow_heldout=True)
    with pytest.raises(Reached):
        dyhpo_worker.main(["--task", heldout, "--allow-heldout"])


def test_method_selection() -> None:
    from benchmarks.run_lcbench import BOIL_VARIANTS
    from benchmarks.run_lcbench import _select_methods

    assert _select_methods("boil") == ["boil"]
    assert _select_methods("variants") == list(BOIL_VARIANTS)
    assert _select_methods("random,boil,random") == ["random", "boil"]
    with pytest.raises(SystemExit, match="nope"):
        _select_methods("nope")
    assert BOIL_VARIANTS["boil"] == {}
    assert all(isinstance(overrides, dict) for overrides in BOIL_VARIANTS.values())


def test_boil_factory() -> None:
    boil = pytest.importorskip("optuna_boil")
    sampler, pruner = run_lcbench.METHODS["boil"](0)  # no overrides: plain constructors
    assert isinstance(sampler, boil.BOILSampler)
    assert isinstance(pruner, boil.BOILPruner)
    if hasattr(boil.BOILSampler, "_configure"):  # the variants need the lead's `_configure`
        for name in run_lcbench.BOIL_VARIANTS:
            run_lcbench.METHODS[name](0)


def test_parameters_on_a_bound_of_the_box() -> None:
    config = {
        "batch_size": 16,  # the lower bound
        "learning_rate": 0.1,  # the upper bound
        "momentum": 0.5,
        "weight_decay": 0.01,
        "num_layers": 3,
        "max_units": 100,
        "max_dropout": 0.2,
    }
    assert on_bound_share(config) == pytest.approx(2 / 7)
    assert np.isnan(on_bound_share(None))


def test_corner_stats_count_runs_above_y_star_and_leave_their_tasks_out() -> None:
    # Task 1: "a" finds 1.2 > y* = 1 (unclipped regret -0.2); task 2: nobody exceeds y*.
    records = [
        _observed_record("a", "1", 0, 1.2),
        _observed_record("b", "1", 0, 0.5),
        _observed_record("a", "2", 0, 0.9),
        _observed_record("b", "2", 0, 0.6),
    ]
    text = "\n".join(corner_stats(records, ["observed"], 100))
    assert "| a | 0.50 / -0.0500 |" in text  # (-0.2 + 0.1) / 2
    assert "| b | 0.00 / 0.4500 |" in text
    assert "exceeds y*: 1." in text
    # The table on the clean task: regret 0.1 for a, 0.4 for b.
    assert "| a | 0.1000" in text and "| b | 0.4000" in text


def test_one_task_gives_no_verdict() -> None:
    records = []
    for seed in range(3):
        records.append(_observed_record("ref", "1", seed, 0.5))
        records.append(_observed_record("other", "1", seed, 0.9))
    p = paired_differences(records, "observed", "ref", [50])["other"]
    assert p.mean[0] == pytest.approx(-0.4) and np.isnan(p.se_tasks[0])
    assert p.verdicts() == ["level"]

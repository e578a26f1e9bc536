"""Smoke test of the LCBench harness: budget accounting, traces and the summary."""

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
from benchmarks.run_lcbench import DEHB_PYTHON_ENV
from benchmarks.run_lcbench import RunSettings
from benchmarks.run_lcbench import run_all
from benchmarks.summarize_lcbench import regret_at
from benchmarks.summarize_lcbench import summarize


BUDGET = 60


def _check_accounting(record: dict[str, Any]) -> None:
    assert record["epochs_used"] == BUDGET
    for key in ("trace", "rec_trace"):
        points = np.asarray(record[key], dtype=float)
        assert len(points) > 0
        assert np.all(np.diff(points[:, 0]) > 0), key  # epochs
        assert np.all(np.diff(points[:, 1]) >= 0), key  # simulated time
        assert points[-1, 0] <= BUDGET
        assert points[-1, 1] <= record["sim_time_used"] * (1 + 1e-5)
    best = np.asarray(record["trace"], dtype=float)[:, 2]
    assert np.all(np.diff(best) > 0)
    assert best[-1] == pytest.approx(record["best_observed"], rel=1e-5)
    for kind in ("observed", "recommended"):
        for axis, grid in (("epochs", [1, 10, 30, BUDGET]), ("time", [0.1, 1.0, 100.0])):
            regret = regret_at(record, kind, axis, grid)
            assert np.all((regret >= 0) & (regret <= 1)), (kind, axis)
            assert np.all(np.diff(regret) <= 0), (kind, axis)


def test_harness_accounting(lcbench_dir: Path, tmp_path: Path) -> None:
    settings = RunSettings(budget=BUDGET, data_dir=str(lcbench_dir))
    records = run_all(["random", "tpe_hyperband"], ["3945"], [0], settings, out=tmp_path)
    assert [r["method"] for r in records] == ["random", "tpe_hyperband"]
    for record in records:
        _check_accounting(record)
    random = records[0]
    # No pruning: one full 52-epoch trial, then a second one cut by the budget after 8 epochs.
    assert (random["n_trials"], random["n_pruned"]) == (2, 1)
    # Runs already recorded in `out` are skipped.
    assert run_all(["random"], ["3945"], [0], settings, out=tmp_path) == []
    plots = importlib.util.find_spec("matplotlib") is not None
    md = summarize(records, tmp_path / "summary.md", tmp_path / "summary" if plots else None)
    assert "| random |" in md and "| tpe_hyperband |" in md
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


def test_method_selection() -> None:
    from benchmarks.run_lcbench import BOIL_VARIANTS
    from benchmarks.run_lcbench import _select_methods

    assert _select_methods("boil") == ["boil"]
    assert _select_methods("variants") == list(BOIL_VARIANTS)
    assert _select_methods("random,boil,random") == ["random", "boil"]
    with pytest.raises(SystemExit, match="nope"):
        _select_methods("nope")

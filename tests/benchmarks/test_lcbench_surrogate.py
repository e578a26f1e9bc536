"""Our onnxruntime reader must reproduce yahpo-gym's LCBench surrogate outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


pytest.importorskip("onnxruntime")

from benchmarks.lcbench import ENV_VAR
from benchmarks.lcbench import N_EPOCHS
from benchmarks.lcbench import LCBenchSurrogate
from benchmarks.lcbench import epoch_costs
from benchmarks.lcbench import resolve_data_dir
from benchmarks.lcbench import sample_configs
from benchmarks.lcbench import search_space


REFERENCE = json.loads(Path(__file__).with_name("lcbench_reference.json").read_text())


def test_matches_yahpo_gym_reference(lcbench_dir: Path) -> None:
    surrogate = LCBenchSurrogate(lcbench_dir)
    epochs = np.asarray(REFERENCE["epochs"]) - 1
    for task, expected in REFERENCE["values"].items():
        curves = surrogate.curves(task, REFERENCE["configs"])
        for j, target in enumerate(REFERENCE["targets"]):
            want = np.asarray(expected)[:, :, j]
            np.testing.assert_allclose(
                curves[target][:, epochs], want, rtol=1e-4, atol=1e-6, err_msg=target
            )


def test_curve_and_curves_agree(lcbench_dir: Path) -> None:
    surrogate = LCBenchSurrogate(lcbench_dir)
    configs = sample_configs(3, seed=1)
    batch = surrogate.curves("7593", configs)
    single = surrogate.curve("7593", configs[2])
    assert set(batch) >= {"val_balanced_accuracy", "time"}
    assert batch["time"].shape == (3, N_EPOCHS)
    np.testing.assert_allclose(single["val_balanced_accuracy"], batch["val_balanced_accuracy"][2])
    costs = epoch_costs(batch["time"])
    assert (costs >= 0).all()
    np.testing.assert_allclose(costs.sum(axis=1), np.max(batch["time"], axis=1), rtol=1e-9)


def test_target_range_and_space(lcbench_dir: Path) -> None:
    surrogate = LCBenchSurrogate(lcbench_dir)
    low, high = surrogate.target_range("3945")
    assert 0.0 <= low < high <= 1.0
    assert len(surrogate.tasks) == 34
    assert set(search_space()) == set(REFERENCE["configs"][0])
    with pytest.raises(KeyError):
        surrogate.curves("1", REFERENCE["configs"][:1])


def test_missing_data_dir_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*model\.onnx.*{ENV_VAR}"):
        resolve_data_dir(missing)
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=rf"from \${ENV_VAR}"):
        LCBenchSurrogate()

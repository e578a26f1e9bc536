"""Reader for the YAHPO Gym LCBench surrogate (an ONNX model) on plain onnxruntime.

The surrogate maps an OpenML task and a configuration of the seven LCBench
hyperparameters plus an epoch (1..52) to six targets. This module evaluates it
without yahpo-gym: one batched ``InferenceSession.run`` call per set of curves.

Input encoding of the ONNX model (``x_cat`` int32 ``[n, 1]``, ``x_cont`` float32
``[n, 8]``): ``x_cat`` holds the task's integer code from ``encoding.json``;
``x_cont`` holds the raw (unscaled) values in the order of ``CONT_NAMES``. The
outputs come back on the natural scale of each target in the order of
``TARGETS`` (``time`` is the cumulative training time in seconds up to the epoch,
``val_accuracy`` is in percent, balanced accuracies are in [0, 1]).

The data folder is found from, in order: the ``data_dir`` argument, the
``OPTUNA_BOIL_LCBENCH_DIR`` environment variable, ``../shared/data/yahpo_lcbench``
next to the repository root.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


ENV_VAR = "OPTUNA_BOIL_LCBENCH_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yahpo_lcbench"
REQUIRED_FILES = ("model.onnx", "encoding.json", "instance_target_statistics.csv")

N_EPOCHS = 52
TARGETS = (
    "time",
    "val_accuracy",
    "val_cross_entropy",
    "val_balanced_accuracy",
    "test_cross_entropy",
    "test_balanced_accuracy",
)
CONT_NAMES = (
    "epoch",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "num_layers",
    "max_units",
    "max_dropout",
)
# The 24 development tasks (OpenML task ids) this project tunes and judges its method on. The
# other LCBench tasks are held out for an independent evaluation: the harness refuses them
# unless told otherwise (``run_lcbench.py --allow-heldout``).
DEV_TASKS = (
    "3945",
    "7593",
    "34539",
    "126025",
    "126026",
    "126029",
    "146212",
    "167104",
    "167152",
    "167184",
    "167185",
    "167200",
    "167201",
    "168330",
    "168331",
    "168335",
    "168908",
    "189354",
    "189862",
    "189865",
    "189873",
    "189905",
    "189906",
    "189908",
)


def search_space() -> dict[str, BaseDistribution]:
    """Return the seven LCBench hyperparameters as Optuna distributions.

    Returns:
        A mapping from hyperparameter name to its distribution.
    """
    return {
        "batch_size": IntDistribution(16, 512, log=True),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "momentum": FloatDistribution(0.1, 0.99),
        "weight_decay": FloatDistribution(1e-5, 0.1),
        "num_layers": IntDistribution(1, 5),
        "max_units": IntDistribution(64, 1024, log=True),
        "max_dropout": FloatDistribution(0.0, 1.0),
    }


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Find the LCBench surrogate folder and check that it holds the needed files.

    Args:
        data_dir: Explicit folder; if ``None``, ``$OPTUNA_BOIL_LCBENCH_DIR`` or the default
            ``../shared/data/yahpo_lcbench`` next to the repository root is used.

    Returns:
        The resolved folder.

    Raises:
        FileNotFoundError: If the folder or one of its files is missing.
    """
    if data_dir is not None:
        path, source = Path(data_dir), "the data_dir argument"
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, source = DEFAULT_DATA_DIR, "the default location"
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"LCBench surrogate data not found: {path} (from {source}) lacks "
            f"{', '.join(missing)}. Point ${ENV_VAR} or --data-dir at the YAHPO Gym "
            "'lcbench' folder (model.onnx, encoding.json, instance_target_statistics.csv)."
        )
    return path


class LCBenchSurrogate:
    """Learning curves of the LCBench surrogate for any task and configuration.

    Args:
        data_dir: Folder with the YAHPO Gym LCBench files (see ``resolve_data_dir``).
        n_threads: onnxruntime intra-op threads; 1 suits one process per core.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, n_threads: int = 1) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = n_threads
        self._session = ort.InferenceSession(
            str(self.data_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        with open(self.data_dir / "encoding.json") as f:
            self._task_codes: dict[str, int] = json.load(f)["OpenML_task_id"]
        self._stats: dict[tuple[str, str, str], float] = {}
        with open(self.data_dir / "instance_target_statistics.csv", newline="") as f:
            for row in csv.DictReader(f):
                key = (row["instance"], row["metric"], row["statistic"])
                self._stats[key] = float(row["value"])

    @property
    def tasks(self) -> list[str]:
        """OpenML task ids that have target statistics (the benchmark's instances)."""
        return sorted({task for task, _, _ in self._stats}, key=int)

    def target_range(
        self, task_id: str, metric: str = "val_balanced_accuracy"
    ) -> tuple[float, float]:
        """Return the (min, max) of a target on a task, for normalised regret.

        Args:
            task_id: OpenML task id.
            metric: Target name.

        Returns:
            The minimum and maximum from ``instance_target_statistics.csv``.
        """
        try:
            return self._stats[(task_id, metric, "min")], self._stats[(task_id, metric, "max")]
        except KeyError:
            raise KeyError(f"No statistics for task {task_id!r} and metric {metric!r}.") from None

    def curves(self, task_id: str, configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Predict the full learning curves of many configurations in one ONNX call.

        Args:
            task_id: OpenML task id, e.g. ``"3945"``.
            configs: Configurations with the seven hyperparameters of ``search_space``.

        Returns:
            Target name -> array of shape ``(len(configs), 52)``; column ``e - 1`` is epoch e.
        """
        return self.predict(task_id, configs, range(1, N_EPOCHS + 1))

    def predict(
        self, task_id: str, configs: Sequence[Mapping[str, Any]], epochs: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """Predict the targets of many configurations at the given epochs in one ONNX call.

        Args:
            task_id: OpenML task id.
            configs: Configurations with the seven hyperparameters of ``search_space``.
            epochs: Epochs in 1..52.

        Returns:
            Target name -> array of shape ``(len(configs), len(epochs))``.
        """
        task_id = str(task_id)
        if task_id not in self._task_codes:
            raise KeyError(f"Unknown LCBench task {task_id!r}.")
        n, m = len(configs), len(epochs)
        x_cont = np.empty((n, m, len(CONT_NAMES)), dtype=np.float32)
        x_cont[:, :, 0] = np.asarray(epochs, dtype=np.float32)
        for i, config in enumerate(configs):
            x_cont[i, :, 1:] = [float(config[name]) for name in CONT_NAMES[1:]]
        x_cat = np.full((n * m, 1), self._task_codes[task_id], dtype=np.int32)
        (out,) = self._session.run(
            ["output"], {"x_cat": x_cat, "x_cont": x_cont.reshape(n * m, -1)}
        )
        out = np.asarray(out, dtype=np.float64).reshape(n, m, len(TARGETS))
        return {name: out[:, :, j] for j, name in enumerate(TARGETS)}

    def curve(self, task_id: str, config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Predict the full learning curve of one configuration.

        Args:
            task_id: OpenML task id.
            config: A configuration with the seven hyperparameters.

        Returns:
            Target name -> array of shape ``(52,)``; index ``e - 1`` is epoch e.
        """
        return {name: values[0] for name, values in self.curves(task_id, [config]).items()}


def epoch_costs(time: np.ndarray) -> np.ndarray:
    """Turn the surrogate's cumulative ``time`` curve(s) into per-epoch costs.

    The surrogate's cumulative time is not always monotone, so its running maximum
    (floored at 0) is used: the cost of training up to epoch e is ``cummax(time)[e]``.

    Args:
        time: Cumulative times, shape ``(..., 52)``.

    Returns:
        Non-negative seconds spent on each epoch, same shape.
    """
    cumulative = np.maximum.accumulate(np.maximum(time, 0.0), axis=-1)
    return np.diff(cumulative, axis=-1, prepend=0.0)


def sample_configs(n: int, seed: int = 0) -> list[dict[str, float | int]]:
    """Draw configurations uniformly (log-uniformly where ``log``) from ``search_space``.

    Args:
        n: Number of configurations.
        seed: Seed of the numpy generator.

    Returns:
        The configurations.
    """
    rng = np.random.default_rng(seed)
    space = search_space()
    columns: dict[str, np.ndarray] = {}
    for name, dist in space.items():
        assert isinstance(dist, (IntDistribution, FloatDistribution))
        is_int = isinstance(dist, IntDistribution)
        # Integers: sample the continuous range widened by 0.5 each side, then round.
        low, high = float(dist.low) - 0.5 * is_int, float(dist.high) + 0.5 * is_int
        if dist.log:
            values = np.exp(rng.uniform(np.log(low), np.log(high), n))
        else:
            values = rng.uniform(low, high, n)
        columns[name] = np.clip(np.round(values), dist.low, dist.high) if is_int else values
    return [
        {
            name: int(col[i]) if isinstance(space[name], IntDistribution) else float(col[i])
            for name, col in columns.items()
        }
        for i in range(n)
    ]

"""Regenerate ``lcbench_reference.json`` with yahpo-gym's own LCBench surrogate code.

yahpo-gym 1.0.2 pins numpy<2, so run this in a separate venv::

    python3 -m venv /tmp/yahpo-venv
    /tmp/yahpo-venv/bin/pip install yahpo-gym==1.0.2
    /tmp/yahpo-venv/bin/python tests/benchmarks/make_lcbench_reference.py \
        /work/shared/data/yahpo_lcbench

The script needs numpy and yahpo-gym only (not this repository's code).
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
import tempfile
from typing import Any

import numpy as np


TASKS = ("3945", "34539", "189909")
EPOCHS = (1, 7, 26, 52)
N_CONFIGS = 20
# name: (low, high, log, is_int)
SPACE: dict[str, tuple[float, float, bool, bool]] = {
    "batch_size": (16, 512, True, True),
    "learning_rate": (1e-4, 1e-1, True, False),
    "momentum": (0.1, 0.99, False, False),
    "weight_decay": (1e-5, 0.1, False, False),
    "num_layers": (1, 5, False, True),
    "max_units": (64, 1024, True, True),
    "max_dropout": (0.0, 1.0, False, False),
}


def make_configs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Return the lower corner, the upper corner and ``n - 2`` random configurations."""
    rng = np.random.default_rng(seed)
    configs = [
        {k: int(lo) if i else lo for k, (lo, _, _, i) in SPACE.items()},
        {k: int(hi) if i else hi for k, (_, hi, _, i) in SPACE.items()},
    ]
    for _ in range(n - 2):
        config: dict[str, Any] = {}
        for name, (low, high, log, is_int) in SPACE.items():
            u = rng.uniform(np.log(low), np.log(high)) if log else rng.uniform(low, high)
            value = float(np.exp(u)) if log else float(u)
            config[name] = int(np.clip(round(value), low, high)) if is_int else value
        configs.append(config)
    return configs


def main(data_dir: str) -> None:
    """Evaluate the reference grid with yahpo-gym and write the JSON next to this file."""
    from yahpo_gym import benchmark_set
    from yahpo_gym import local_config

    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "lcbench").symlink_to(Path(data_dir).resolve())
        local_config.init_config()
        local_config.set_data_path(root)
        configs = make_configs(N_CONFIGS)
        values: dict[str, list[list[list[float]]]] = {}
        targets: list[str] = []
        for task in TASKS:
            bench = benchmark_set.BenchmarkSet(
                "lcbench", instance=task, multithread=False, check=False
            )
            targets = list(bench.config.y_names)
            queries = [{**c, "OpenML_task_id": task, "epoch": e} for c in configs for e in EPOCHS]
            results = bench.objective_function(queries)
            rows = [[float(r[t]) for t in targets] for r in results]
            values[task] = [
                rows[i * len(EPOCHS) : (i + 1) * len(EPOCHS)] for i in range(len(configs))
            ]
    out = {
        "source": "yahpo-gym 1.0.2 BenchmarkSet('lcbench').objective_function",
        "targets": targets,
        "epochs": list(EPOCHS),
        "configs": configs,
        "values": values,
    }
    path = Path(__file__).with_name("lcbench_reference.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/yahpo_lcbench")

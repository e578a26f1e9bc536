"""Time one BOIL model decision (fit + augmentation + acquisition) as studies grow.

Setting of the model issue: 7 mixed parameters (4 float incl. 1 log, 2 int incl. 1 log,
1 categorical), 52-step learning curves of random length (a mix of short and full runs, as BOIL
produces), at 20, 50, 100, 200 and 500 observed trials, one torch thread. Each decision is warm
started from the fit of the previous decision, as in a study. Writes
``benchmarks/results/speed.md``.

    python -m benchmarks.speed [--repeats 5] [--set lengthscale_prior=gamma ...]

``--set name=value`` overrides a :class:`~optuna_boil._model.model.ModelConfig` field (values
are read as Python literals where they parse, e.g. ``deliver_best=False``), to time a variant
on the same machine.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path
import statistics
import time

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import torch

from optuna_boil._context import limit_threads
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import CurveData
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._policy import Policy


SPACE = SearchSpace(
    {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "momentum": FloatDistribution(0.1, 0.99),
        "dropout": FloatDistribution(0.0, 1.0),
        "decay": FloatDistribution(1e-5, 0.1),
        "layers": IntDistribution(1, 5),
        "units": IntDistribution(64, 1024, log=True),
        "act": CategoricalDistribution(["relu", "tanh", "gelu"]),
    }
)


def synthetic(n: int, rng: np.random.RandomState) -> CurveData:
    x = SPACE.sample(n, rng)
    steps, values = [], []
    for i in range(n):
        length = 52 if rng.rand() < 0.3 else rng.randint(1, 20)
        s = np.arange(1, length + 1, dtype=np.float64)
        quality = 1 - (x[i, 0] - 0.6) ** 2 - 0.3 * x[i, 2] + 0.1 * (x[i, 6] == 1)
        values.append(quality * (1 - np.exp(-s / (5 + 10 * x[i, 1]))) + 0.01 * rng.randn(length))
        steps.append(s)
    return CurveData(
        x, steps, values, np.array([s[-1] for s in steps]), np.zeros(n, bool), np.full(n, np.nan)
    )


def config_with(overrides: list[str]) -> ModelConfig:
    """The default model settings with ``name=value`` overrides."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    changes = {}
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE with NAME a ModelConfig field.")
        try:
            changes[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            changes[name] = text
    return dataclasses.replace(ModelConfig(), **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,50,100,200,500")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.md"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a ModelConfig field (repeatable)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = config_with(args.set)
    model = BOILModel(SPACE, 1, 52, config)
    rows = []
    for n in [int(v) for v in args.sizes.split(",")]:
        rng = np.random.RandomState(n)
        data = synthetic(n + args.repeats, rng)
        warm = model.fit(_head(data, n - 1), rng).hyperparameters()
        times, fits, suggests = [], [], []
        for r in range(args.repeats):
            d = _head(data, n + r)
            t0 = time.perf_counter()
            with limit_threads():
                fitted = model.fit(d, np.random.RandomState(r), warm_start=warm)
                t1 = time.perf_counter()
                Policy(fitted).suggest(np.random.RandomState(r))
                t2 = time.perf_counter()
            warm = fitted.hyperparameters()
            times.append(t2 - t0)
            fits.append(t1 - t0)
            suggests.append(t2 - t1)
        gp_size = len(fitted.points)
        rows.append(
            (
                n,
                statistics.median(times),
                max(times),
                statistics.median(fits),
                statistics.median(suggests),
                gp_size,
            )
        )
        print(
            f"n={n}: median {rows[-1][1]:.3f}s (fit {rows[-1][3]:.3f}s, "
            f"acquisition {rows[-1][4]:.3f}s), GP size {gp_size}"
        )
    lines = [
        "# Time per BOIL model decision",
        "",
        "`python -m benchmarks.speed`: 7 mixed parameters, 52-step curves, one torch thread, "
        f"warm-started fits, {args.repeats} decisions per size, this 2-core machine"
        + (f", settings {', '.join(args.set)}" if args.set else "")
        + ".",
        "",
        "| trials | median decision (s) | max (s) | fit (s) | acquisition (s) | GP size |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {m:.3f} | {mx:.3f} | {f:.3f} | {a:.3f} | {g} |" for n, m, mx, f, a, g in rows
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")


def _head(data: CurveData, n: int) -> CurveData:
    return CurveData(
        data.x[:n],
        data.steps[:n],
        data.values[:n],
        data.costs[:n],
        data.running[:n],
        data.budgets[:n],
    )


if __name__ == "__main__":
    main()

"""Load test: N worker processes on one PostgreSQL study (not run by CI).

Every worker runs ``BOILSampler`` + ``BOILPruner`` on a cheap synthetic objective that reports
steps 1..20 and calls ``should_prune()`` after each report, until the study holds ``--n-trials``
trials. At the end the script reports:

* trials lost (neither COMPLETE nor PRUNED),
* duplicate ``(params, initial budget)`` pairs among trials (the same decision taken twice),
* the sampler's decision time per trial (all ``BOILSampler`` calls of the trial) and the time of
  each ``should_prune()`` call, as percentiles,
* wall time and throughput.

Usage (the server must answer; ``tests/distributed/conftest.py`` uses the same URL)::

    OMP_NUM_THREADS=1 python benchmarks/load_test.py --workers 4 --n-trials 120

The study is deleted afterwards unless ``--keep`` is given. ``--markdown FILE`` appends the
figures as a Markdown section.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler


DEFAULT_STORAGE = os.environ.get(
    "BOIL_TEST_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
MAX_STEP = 20
SAMPLER_METHODS = ("infer_relative_search_space", "sample_relative", "sample_independent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=DEFAULT_STORAGE)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--n-trials", type=int, default=1000, help="trials in the study in all")
    parser.add_argument("--n-startup-trials", type=int, default=8)
    parser.add_argument("--step-seconds", type=float, default=0.0, help="sleep per step")
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--keep", action="store_true", help="do not delete the study")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timings", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def value_at(params: dict[str, Any], step: int, number: int) -> float:
    """A smooth, saturating learning curve with a little per-trial noise."""
    quality = 1.0 - (params["x"] - 0.3) ** 2 - 0.5 * (params["y"] + 0.2) ** 2
    quality += {"adam": 0.1, "sgd": 0.0, "rms": 0.05}[params["opt"]]
    rate = 0.5 * params["lr"] / (params["lr"] + 0.01)
    noise = np.random.RandomState(number * 1000 + step).normal(scale=0.01)
    return quality * (1.0 - math.exp(-rate * step)) + noise


def make_sampler_and_pruner(args: argparse.Namespace) -> tuple[BOILSampler, BOILPruner]:
    sampler = BOILSampler(
        seed=0, n_startup_trials=args.n_startup_trials, warn_independent_sampling=False
    )
    return sampler, BOILPruner(min_resource=1, max_resource=MAX_STEP)


def timed(method: Callable[..., Any], spent: dict[int, float]) -> Callable[..., Any]:
    """Wrap a sampler method; add its run time to ``spent[trial.number]``."""

    def wrapper(study: optuna.Study, trial: Any, *rest: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(study, trial, *rest)
        finally:
            spent[trial.number] = spent.get(trial.number, 0.0) + time.perf_counter() - start

    return wrapper


def run_worker(args: argparse.Namespace) -> None:
    """One worker process: optimise until the study holds ``n_trials`` trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, pruner = make_sampler_and_pruner(args)
    decision: dict[int, float] = {}
    for name in SAMPLER_METHODS:  # instance attributes: the pruner still sees a BOILSampler
        setattr(sampler, name, timed(getattr(sampler, name), decision))
    study = optuna.load_study(
        study_name=args.study_name, storage=args.storage, sampler=sampler, pruner=pruner
    )
    prune_times: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        params = {
            "x": trial.suggest_float("x", 0.0, 1.0),
            "y": trial.suggest_float("y", -1.0, 1.0),
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "opt": trial.suggest_categorical("opt", ["adam", "sgd", "rms"]),
        }
        value = 0.0
        for step in range(1, MAX_STEP + 1):
            if args.step_seconds > 0:
                time.sleep(args.step_seconds)
            value = value_at(params, step, trial.number)
            trial.report(value, step)
            start = time.perf_counter()
            stop = trial.should_prune()
            prune_times.append(time.perf_counter() - start)
            if stop:
                raise optuna.TrialPruned()
        return value

    callback = optuna.study.MaxTrialsCallback(args.n_trials, states=None)
    study.optimize(objective, n_trials=args.n_trials, callbacks=[callback], catch=(Exception,))
    assert args.timings is not None
    args.timings.write_text(
        json.dumps({"decision": list(decision.values()), "prune": prune_times})
    )


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = 1000.0 * np.asarray(values)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms"


def analyse(study: optuna.Study, timings: list[dict[str, list[float]]], wall: float) -> list[str]:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    lost = [t for t in trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    keys = Counter(
        (
            tuple(sorted(t.params.items())),
            t.user_attrs.get("boil_initial_budget", t.user_attrs.get("boil_budget")),
        )
        for t in trials
        if t.params
    )
    duplicates = sum(c - 1 for c in keys.values() if c > 1)
    decision = [v for tm in timings for v in tm["decision"]]
    prune = [v for tm in timings for v in tm["prune"]]
    steps = sum(t.last_step or 0 for t in trials)
    return [
        f"* trials: {len(trials)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})",
        f"* trials lost (not COMPLETE/PRUNED): {len(lost)}"
        + (f" (numbers {[t.number for t in lost][:20]})" if lost else ""),
        f"* duplicate (params, initial budget) pairs: {duplicates}",
        f"* decision time (sampler, per trial, {len(decision)} trials): {percentiles(decision)}",
        f"* should_prune() time ({len(prune)} calls): {percentiles(prune)}",
        f"* steps trained: {steps} of {len(trials) * MAX_STEP} (full budgets)",
        f"* wall time: {wall:.0f} s ({60.0 * len(trials) / wall:.1f} trials/min)",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args)
        return
    args.study_name = args.study_name or f"boil-load-{uuid.uuid4().hex[:10]}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(args.storage)
    study = optuna.create_study(
        study_name=args.study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"worker{i}.json" for i in range(args.workers)]
        start = time.perf_counter()
        procs = []
        for i, path in enumerate(files):
            command = [sys.executable, __file__, "--worker", str(i), "--timings", str(path)]
            command += ["--storage", args.storage, "--study-name", args.study_name]
            command += ["--n-trials", str(args.n_trials)]
            command += ["--n-startup-trials", str(args.n_startup_trials)]
            command += ["--step-seconds", str(args.step_seconds)]
            procs.append(subprocess.Popen(command, env=env))
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        timings = [json.loads(f.read_text()) for f in files if f.exists()]
    lines = analyse(study, timings, wall)
    lines.insert(0, f"* workers: {args.workers} (exit codes {codes}), storage: {args.storage}")
    print("\n".join(lines))
    if args.markdown is not None:
        invocation = " ".join(["python benchmarks/load_test.py", *(argv or sys.argv[1:])])
        with args.markdown.open("a") as out:
            out.write(f"\n## {time.strftime('%Y-%m-%d')}: `{invocation}`\n\n")
            out.write("\n".join(lines) + "\n")
    if not args.keep:
        optuna.delete_study(study_name=args.study_name, storage=storage)


if __name__ == "__main__":
    main()

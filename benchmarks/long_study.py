"""Decision time and storage reads of BOILSampler in a long study (1000 trials x 52 steps).

A study is filled with trials of 52 reported steps each (random configurations of four
parameters, a mix of COMPLETE and PRUNED states, BOIL's budget attributes set), added directly
with ``study.add_trial``; at 100, 300 and 1000 trials, single BOILSampler decisions (``ask`` plus
the first ``suggest_*``, which is when the model decides) are timed. Each decision is measured
once with a fresh storage object (a new worker process: nothing cached) and then ``--repeats``
times with the warm storage of a running worker. Around every decision, calls of the storage's
``get_all_trials`` are counted (split into reads of all trials and Optuna's own read of the
WAITING queue), and for RDB storages the SQL ``SELECT`` statements sent to the server.
Decision trials are failed right away without reports, so they carry no data.

    python -m benchmarks.long_study              # SQLite and PostgreSQL, 100/300/1000 trials
    python -m benchmarks.long_study --quick      # 30/60 trials, one repeat
    python -m benchmarks.long_study --storages sqlite

Writes ``benchmarks/results/long_study.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
from dataclasses import field
import os
from pathlib import Path
import platform
import statistics
import tempfile
import time
from typing import Any
import uuid

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler


POSTGRESQL_URL = os.environ.get(
    "BOIL_BENCH_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
N_STEPS = 52
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "momentum": FloatDistribution(0.0, 0.99),
    "dropout": FloatDistribution(0.0, 0.8),
    "layers": IntDistribution(1, 5),
}


@dataclass
class Row:
    storage: str
    n_trials: int
    fill_seconds: float
    cold_seconds: float
    warm_seconds: list[float] = field(default_factory=list)
    full_reads: list[int] = field(default_factory=list)
    waiting_reads: list[int] = field(default_factory=list)
    selects: list[int] = field(default_factory=list)


def make_trial(rng: np.random.RandomState, number: int) -> optuna.trial.FrozenTrial:
    """A trial with a 52-step synthetic curve; COMPLETE or PRUNED with BOIL's attributes."""
    lr = float(np.exp(rng.uniform(np.log(1e-4), np.log(1e-1))))
    momentum, dropout = float(rng.uniform(0, 0.99)), float(rng.uniform(0, 0.8))
    layers = int(rng.randint(1, 6))
    quality = 0.9 - 0.05 * (np.log10(lr) + 2.0) ** 2 - 0.2 * dropout + 0.02 * layers
    steps = np.arange(1, N_STEPS + 1)
    curve = quality * (1 - np.exp(-steps / (3 + 10 * momentum))) + 0.005 * rng.randn(N_STEPS)
    complete = rng.rand() < 0.4
    budget = N_STEPS if complete else int(rng.choice([4, 8, 13, 26, 39]))
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED,
        value=float(curve[-1]),
        params={"lr": lr, "momentum": momentum, "dropout": dropout, "layers": layers},
        distributions=DISTRIBUTIONS,
        intermediate_values={int(s): float(v) for s, v in zip(steps, curve, strict=True)},
        user_attrs={"boil_budget": budget, "boil_initial_budget": budget},
        system_attrs={"boil:budget": budget},
    )


def load(storage_factory: Callable[[], Any], name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name,
        storage=storage_factory(),
        sampler=BOILSampler(seed=0),
        pruner=BOILPruner(min_resource=1, max_resource=N_STEPS),
    )


@contextlib.contextmanager
def counting(study: optuna.Study) -> Iterator[dict[str, int]]:
    """Count ``get_all_trials`` calls (all trials / WAITING only) and SQL SELECTs."""
    counts = {"full": 0, "waiting": 0, "select": 0}
    storage = study._storage
    original = storage.get_all_trials

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        states = kwargs.get("states", args[2] if len(args) > 2 else None)
        key = (
            "waiting" if states is not None and tuple(states) == (TrialState.WAITING,) else "full"
        )
        counts[key] += 1
        return original(*args, **kwargs)

    engine = getattr(getattr(storage, "_backend", storage), "engine", None)

    def on_execute(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            counts["select"] += 1

    storage.get_all_trials = wrapped  # type: ignore[method-assign]
    if engine is not None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield counts
    finally:
        del storage.get_all_trials
        if engine is not None:
            event.remove(engine, "before_cursor_execute", on_execute)


def decide(study: optuna.Study) -> tuple[float, dict[str, int]]:
    """Time one decision (ask + first suggest); the trial is then failed without data."""
    with counting(study) as counts:
        start = time.perf_counter()
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        elapsed = time.perf_counter() - start
    for name, dist in DISTRIBUTIONS.items():
        if name != "lr":
            assert isinstance(dist, (FloatDistribution, IntDistribution))
            if isinstance(dist, IntDistribution):
                trial.suggest_int(name, dist.low, dist.high)
            else:
                trial.suggest_float(name, dist.low, dist.high)
    study.tell(trial, state=TrialState.FAIL)
    return elapsed, dict(counts)


def run_storage(kind: str, sizes: list[int], repeats: int, workdir: Path) -> list[Row]:
    name = f"boil-long-{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'long_study.db'}"
    elif kind == "postgresql":
        url = POSTGRESQL_URL
    else:
        raise ValueError(kind)

    def factory() -> Any:
        return optuna.storages.get_storage(url)

    optuna.create_study(study_name=name, storage=factory(), direction="maximize")
    rows = []
    rng = np.random.RandomState(0)
    try:
        filler = load(factory, name)
        added = 0
        for size in sizes:
            start = time.perf_counter()
            while added < size:
                filler.add_trial(make_trial(rng, added))
                added += 1
            fill = time.perf_counter() - start
            cold_study = load(factory, name)  # a new worker: fresh storage object, cold cache
            cold, counts = decide(cold_study)
            row = Row(kind, size, fill, cold)
            row.full_reads.append(counts["full"])
            row.waiting_reads.append(counts["waiting"])
            row.selects.append(counts["select"])
            for _ in range(repeats):
                elapsed, counts = decide(cold_study)
                row.warm_seconds.append(elapsed)
                row.full_reads.append(counts["full"])
                row.waiting_reads.append(counts["waiting"])
                row.selects.append(counts["select"])
            rows.append(row)
            print(
                f"{kind:10s} {size:5d} trials: fill {fill:6.1f} s, cold {cold:5.2f} s, "
                f"warm {statistics.median(row.warm_seconds or [cold]):5.2f} s, "
                f"reads {row.full_reads}, SELECTs {row.selects}",
                flush=True,
            )
    finally:
        optuna.delete_study(study_name=name, storage=factory())
    return rows


def write(rows: list[Row], out: Path, args: argparse.Namespace, notes: list[str]) -> None:
    lines = [
        "# Long study: decision time and storage reads",
        "",
        f"`python -m benchmarks.long_study {'--quick ' if args.quick else ''}"
        f"--storages {args.storages}` on {platform.machine()} "
        f"({os.cpu_count()} cores, shared), optuna {optuna.__version__}, one torch thread.",
        "",
        f"Each trial reports {N_STEPS} steps; 40 % COMPLETE, 60 % PRUNED (budgets 4-39 set as "
        "BOIL's attributes); four parameters. A decision is `study.ask()` plus the first "
        "`suggest_*` (BOILSampler's fit and acquisition). *Cold*: first decision of a new "
        "storage object (a new worker); *warm*: median of the next ones in the same process. "
        "*Full reads*: calls of the storage's `get_all_trials` for all trials per decision "
        "(cold/warm); *WAITING reads*: Optuna's own `ask()` check of the queue. *SELECTs*: SQL "
        "statements sent per decision (cold/warm), the real read traffic of an RDB storage.",
        "",
        "| storage | trials | fill (s) | cold decision (s) | warm decision (s) | full reads "
        "| WAITING reads | SELECTs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        warm = statistics.median(r.warm_seconds) if r.warm_seconds else float("nan")
        full = f"{r.full_reads[0]} / {statistics.median(r.full_reads[1:] or [0]):g}"
        sel = f"{r.selects[0]} / {statistics.median(r.selects[1:] or [0]):g}"
        lines.append(
            f"| {r.storage} | {r.n_trials} | {r.fill_seconds:.1f} | {r.cold_seconds:.2f} "
            f"| {warm:.2f} | {full} | {max(r.waiting_reads)} | {sel} |"
        )
    reads = sorted({n for r in rows for n in r.full_reads})
    if reads:
        verdict = "once" if reads == [1] else f"{'/'.join(map(str, reads))} times"
        notes = [
            f"* All trials are read {verdict} per decision (`get_all_trials`). Reading them "
            "once is the goal; a second read comes from `IntersectionSearchSpace.calculate` in "
            "`infer_relative_search_space`, before `sample_relative` reads them again.",
            *notes,
        ]
    lines += ["", *notes, ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storages", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="30 and 60 trials, one repeat")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "long_study.md"))
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = "30,60", 1
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.storages.split(","):
            try:
                rows += run_storage(kind, sizes, args.repeats, Path(tmp))
            except Exception as e:  # noqa: BLE001 - e.g. no PostgreSQL server: note and go on
                notes.append(f"* {kind}: not run ({type(e).__name__}: {str(e).splitlines()[0]}).")
                print(notes[-1], flush=True)
    write(rows, Path(args.out), args, notes)


if __name__ == "__main__":
    main()

"""Count one trial's full-study reads and model fits, and time its ``should_prune()`` calls.

A study is filled with ``--n-trials`` finished trials (default 1,000; PRUNED or COMPLETE, each
with a 52-step curve, 4 hyperparameters and ``boil:budget``; the newest one carries a stored
model fit, as in a real study, so decisions are warm started). Then one worker (one storage
object, as one process) runs ``--measure`` trials of 52 steps with ``BOILSampler(seed=0)`` and
``BOILPruner(min_resource=1, max_resource=52)``, calling ``should_prune()`` after every report.
For each measured trial it records, per phase (the trial's start in the sampler, the
``should_prune()`` calls between decision points, the decision-point calls, the rest):

* the calls of the storage's ``get_all_trials``: full reads (``states`` is ``None`` or holds
  several states) and reads of the RUNNING trials only (the sampler's duplicate check);
* the trials the RDB backend actually sent (Optuna's ``_CachedStorage`` fetches only trials
  that are new or unfinished since its last read, so a warm worker transfers few rows);
* the calls of ``BOILModel.fit``;
* the wall time of every ``should_prune()`` call.

A decision point is a ``should_prune()`` call whose step reached the trial's stored budget
before ``max_resource`` (the pruner then decides whether the trial continues). The fill is
timed separately and counted nowhere. Writes ``benchmarks/results/reads_per_trial.md``.

    OMP_NUM_THREADS=1 python -m benchmarks.reads_per_trial [--backends sqlite,postgresql]

The PostgreSQL URL is ``$BOIL_TEST_POSTGRESQL_URL`` or the test suite's default; the study gets
a unique name and is deleted afterwards.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from collections.abc import Container
from dataclasses import dataclass
from dataclasses import field
import math
import os
from pathlib import Path
import statistics
import subprocess
import tempfile
import time
from typing import Any
import uuid

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _observations
from optuna_boil import _storage
from optuna_boil._context import limit_threads
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace


STEPS = 52
MIN_RESOURCE = 1
POSTGRESQL_URL = os.environ.get(
    "BOIL_TEST_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "momentum": FloatDistribution(0.5, 0.99),
    "layers": IntDistribution(1, 4),
    "activation": CategoricalDistribution(["relu", "tanh", "gelu"]),
}
PHASES = ("start", "between", "decision", "other")


def curve(params: dict[str, Any], steps: np.ndarray) -> np.ndarray:
    """A smooth learning curve (accuracy-like, to maximise) of the hyperparameters."""
    lr_term = (math.log10(params["lr"]) + 2.5) ** 2
    quality = 0.95 - 0.08 * lr_term - 0.02 * abs(params["layers"] - 2.5)
    quality -= 0.03 * (params["activation"] == "tanh")
    speed = 3.0 + 12.0 * (1.0 - params["momentum"]) / 0.49 + 4.0 * lr_term
    return quality * (1.0 - np.exp(-steps / speed))


# Filling the study ---------------------------------------------------------------------------


def make_trials(n: int, seed: int) -> list[FrozenTrial]:
    """``n`` finished trials: 30% COMPLETE (budget 52), the rest PRUNED (budget 4..51).

    Every trial holds a 52-step curve (the largest read a study of this size can give).
    """
    rng = np.random.RandomState(seed)
    space = SearchSpace(DISTRIBUTIONS)
    steps = np.arange(1, STEPS + 1, dtype=np.float64)
    trials = []
    for i in range(n):
        params = space.decode(space.sample(1, rng)[0])
        values = curve(params, steps) + 0.005 * rng.randn(STEPS)
        complete = rng.rand() < 0.3
        budget = STEPS if complete else int(rng.randint(4, STEPS))
        trial = optuna.trial.create_trial(
            state=TrialState.COMPLETE if complete else TrialState.PRUNED,
            value=float(values[-1]),
            params=params,
            distributions=DISTRIBUTIONS,
            intermediate_values={int(s): float(v) for s, v in zip(steps, values, strict=True)},
            user_attrs={_storage.USER_BUDGET: budget, _storage.USER_INITIAL_BUDGET: budget},
            system_attrs={_storage.BUDGET: budget, _storage.PARAMS: params},
        )
        trial.number = i
        trials.append(trial)
    return trials


def add_stored_fit(trials: list[FrozenTrial], seed: int) -> None:
    """Give the newest trial a stored model fit (``boil:fit``), as a real study has one."""
    space = SearchSpace(DISTRIBUTIONS)
    data = _observations.build(
        trials, space, optuna.study.StudyDirection.MAXIMIZE, float(STEPS), "steps"
    )
    model = BOILModel(space, MIN_RESOURCE, STEPS, ModelConfig(), cost_in_steps=True, t_new_lo=4)
    with limit_threads():
        fitted = model.fit(data, np.random.RandomState(seed))
    trials[-1].system_attrs[_storage.FIT] = fitted.hyperparameters()


# Probes --------------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """What one measured trial did."""

    number: int = -1
    initial_budget: int | None = None
    final_budget: int | None = None
    state: str = ""
    last_step: int = 0
    start_seconds: float = 0.0
    full_reads: Counter[str] = field(default_factory=Counter)
    running_reads: Counter[str] = field(default_factory=Counter)
    other_reads: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    fits: Counter[str] = field(default_factory=Counter)
    between: list[float] = field(default_factory=list)
    decisions: list[tuple[int, float, bool]] = field(default_factory=list)


class Probe:
    """Counts storage reads and model fits by phase, for the trial being measured."""

    def __init__(self) -> None:
        self.phase = "other"
        self.record: TrialRecord | None = None

    def count_reads(self, storage: Any) -> None:
        """Wrap the storage object's ``get_all_trials`` and its RDB backend's ``_get_trials``."""
        get_all_trials = storage.get_all_trials

        def counted_get_all_trials(
            study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
        ) -> list[FrozenTrial]:
            if self.record is not None:
                chosen: tuple[TrialState, ...] | None = (
                    None if states is None else tuple(states)  # type: ignore[arg-type]
                )
                if chosen is None or len(chosen) > 1:
                    self.record.full_reads[self.phase] += 1
                elif chosen == (TrialState.RUNNING,):
                    self.record.running_reads[self.phase] += 1
                else:
                    self.record.other_reads[self.phase] += 1
            return get_all_trials(study_id, deepcopy=deepcopy, states=states)

        storage.get_all_trials = counted_get_all_trials
        backend = getattr(storage, "_backend", None)
        if backend is not None:
            get_trials = backend._get_trials

            def counted_get_trials(*args: Any, **kwargs: Any) -> list[FrozenTrial]:
                out = get_trials(*args, **kwargs)
                if self.record is not None:
                    self.record.rows[self.phase] += len(out)
                return out

            backend._get_trials = counted_get_trials

    def count_fits(self) -> Callable[[], None]:
        """Wrap ``BOILModel.fit``; returns the function that restores it."""
        fit = BOILModel.fit

        def counted_fit(model: BOILModel, *args: Any, **kwargs: Any) -> Any:
            if self.record is not None:
                self.record.fits[self.phase] += 1
            return fit(model, *args, **kwargs)

        BOILModel.fit = counted_fit  # type: ignore[method-assign,assignment]

        def restore() -> None:
            BOILModel.fit = fit  # type: ignore[method-assign]

        return restore


def measure_trial(study: optuna.Study, probe: Probe) -> TrialRecord:
    """Run one 52-step trial through ``study.optimize`` and record its reads, fits and times."""
    record = TrialRecord()
    probe.record = record

    def objective(trial: optuna.Trial) -> float:
        try:
            # Optuna runs the sampler's relative sampling at the first suggest call.
            params = {
                "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                "momentum": trial.suggest_float("momentum", 0.5, 0.99),
                "layers": trial.suggest_int("layers", 1, 4),
                "activation": trial.suggest_categorical("activation", ["relu", "tanh", "gelu"]),
            }
            record.start_seconds = time.perf_counter() - started
            probe.phase = "other"
            record.number = trial.number
            record.initial_budget = _stored_budget(study, trial)
            values = curve(params, np.arange(1, STEPS + 1, dtype=np.float64))
            for step in range(1, STEPS + 1):
                trial.report(float(values[step - 1]), step)
                record.last_step = step
                budget = _stored_budget(study, trial)
                decision = budget is not None and MIN_RESOURCE <= budget <= step < STEPS
                probe.phase = "decision" if decision else "between"
                t0 = time.perf_counter()
                prune = trial.should_prune()
                seconds = time.perf_counter() - t0
                probe.phase = "other"
                if decision:
                    record.decisions.append((step, seconds, prune))
                else:
                    record.between.append(seconds)
                if prune:
                    raise optuna.TrialPruned()
            return float(values[-1])
        finally:
            record.final_budget = _stored_budget(study, trial)
            probe.phase = "other"

    probe.phase = "start"
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    probe.phase = "other"
    probe.record = None
    record.state = study.trials[-1].state.name
    return record


def _stored_budget(study: optuna.Study, trial: optuna.Trial) -> int | None:
    return _storage.get_budget(study._storage.get_trial(trial._trial_id))


# One backend ---------------------------------------------------------------------------------


@dataclass
class BackendResult:
    """The measurements on one storage backend."""

    backend: str
    fill_seconds: float
    fit_seconds: float
    cold_read_seconds: float
    warm_read_seconds: float
    records: list[TrialRecord]


def run_backend(backend: str, url: str, n_trials: int, n_measure: int) -> BackendResult:
    """Fill a fresh study on ``url``, measure ``n_measure`` trials, delete the study."""
    name = f"boil-reads-{uuid.uuid4().hex[:12]}"
    t0 = time.perf_counter()
    trials = make_trials(n_trials, seed=0)
    t1 = time.perf_counter()
    add_stored_fit(trials, seed=0)
    fit_seconds = time.perf_counter() - t1
    filler = optuna.create_study(study_name=name, storage=url, direction="maximize")
    filler.add_trials(trials)
    fill_seconds = time.perf_counter() - t0 - fit_seconds
    try:
        # A fresh storage object, as a worker process that joins the study.
        study = optuna.load_study(
            study_name=name,
            storage=url,
            sampler=BOILSampler(seed=0),
            pruner=BOILPruner(min_resource=MIN_RESOURCE, max_resource=STEPS),
        )
        probe = Probe()
        probe.count_reads(study._storage)
        restore = probe.count_fits()
        try:
            records = [measure_trial(study, probe) for _ in range(n_measure)]
        finally:
            restore()
        # What one full read costs this worker, for the old pruner (one per should_prune call).
        t2 = time.perf_counter()
        study._storage.get_all_trials(study._study_id, deepcopy=False, states=None)
        warm = time.perf_counter() - t2
        fresh = optuna.load_study(study_name=name, storage=url)
        t3 = time.perf_counter()
        fresh._storage.get_all_trials(fresh._study_id, deepcopy=False, states=None)
        cold = time.perf_counter() - t3
    finally:
        optuna.delete_study(study_name=name, storage=url)
    return BackendResult(backend, fill_seconds, fit_seconds, cold, warm, records)


# Report --------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def _counts(counter: Counter[str]) -> str:
    return " / ".join(str(counter[p]) for p in PHASES)


def trial_rows(result: BackendResult) -> list[str]:
    """One table row per measured trial."""
    rows = []
    for i, r in enumerate(result.records, 1):
        continued = (
            "yes" if r.final_budget is not None and r.final_budget != r.initial_budget else "no"
        )
        if not r.decisions:
            continued = "no decision point"
        decisions = ", ".join(
            f"step {s}: {_ms(sec)} ms ({'prune' if p else 'continue'})"
            for s, sec, p in r.decisions
        )
        between = r.between
        rows.append(
            f"| {result.backend} | {i} (#{r.number}) | {r.initial_budget} → {r.final_budget} "
            f"| {r.state} at step {r.last_step} | {continued} "
            f"| {_counts(r.full_reads)} | {_counts(r.running_reads)} | {_counts(r.rows)} "
            f"| {_counts(r.fits)} | {_ms(r.start_seconds)} "
            f"| {len(between)}: {_ms(statistics.median(between)) if between else '-'} / "
            f"{_ms(max(between)) if between else '-'} | {decisions or '-'} |"
        )
    return rows


def write_report(results: list[BackendResult], args: argparse.Namespace, load: str) -> str:
    """The Markdown report."""
    lines = [
        "# Full-study reads per trial",
        "",
        "How often one 52-step trial reads the whole study, how many model fits it causes, and "
        f"how long its `should_prune()` calls take, in a study that already holds "
        f"{args.n_trials:,} finished trials. Written by `benchmarks/reads_per_trial.py`:",
        "",
        "```sh",
        f"OMP_NUM_THREADS=1 python -m benchmarks.reads_per_trial --backends {args.backends} "
        f"--n-trials {args.n_trials} --measure {args.measure}",
        "```",
        "",
        f"Machine: 2 shared cores (other jobs running); `uptime` at the start: `{load}`. "
        f"Optuna {optuna.__version__}.",
        "",
        "## Setting",
        "",
        f"* The study holds {args.n_trials:,} trials (30% COMPLETE, the rest PRUNED), each with a "
        "52-step curve of intermediate values, 4 hyperparameters (`lr` log-float, `momentum` "
        "float, `layers` int, `activation` categorical), `boil:budget` and `boil:params`; the "
        "newest one holds a stored model fit (`boil:fit`), so decisions are warm started as in "
        "a running study. It is filled with `create_trial` + `study.add_trials` (fill time "
        "below, not counted).",
        "* One worker (one `load_study` storage object, as one process joining the study) then "
        "runs the measured trials one after the other with `BOILSampler(seed=0)` and "
        "`BOILPruner(min_resource=1, max_resource=52)`; the objective reports a smooth curve of "
        "its parameters at steps 1..52 and calls `should_prune()` after every report.",
        "* Reads are calls of the storage's `get_all_trials` (through `study._storage`, "
        "Optuna's `_CachedStorage` for both URLs): *full* = `states` is `None` or several "
        "states; *RUNNING* = the sampler's duplicate check, which reads the running trials only. "
        "*Rows* are the trials the RDB backend actually sent: `_CachedStorage` fetches only "
        "trials that are new or unfinished since its last read, so the first read of a new "
        "process transfers the whole study and later ones almost nothing.",
        "* Counts are given as start / between / decision / other: *start* is the sampler "
        "(from `study.optimize` until the objective's `suggest_*` calls returned: Optuna samples "
        "at the first of them), *between* the `should_prune()` calls before the budget is "
        "reached (and the call at step 52, past any decision), *decision* the calls at which "
        "the step reached the stored budget before `max_resource` (the pruner decides whether "
        "the trial continues), *other* the rest (`report`, the end of the trial).",
        "* Fits are calls of `optuna_boil._model.model.BOILModel.fit`.",
        "",
        "## Results",
        "",
        "| Storage | Trial | Budget (start → end) | Ended | Continued | Full reads | RUNNING "
        "reads | Rows sent | Fits | Start (ms) | Between calls: n, median / max (ms) | "
        "Decision-point calls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines += trial_rows(result)
    lines += [
        "",
        "| Storage | Fill (s) | Stored fit for the fill (s) | One full read, new process (ms) "
        "| One full read, this worker's warm cache (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result.backend} | {result.fill_seconds:.1f} | {result.fit_seconds:.1f} "
            f"| {_ms(result.cold_read_seconds)} | {_ms(result.warm_read_seconds)} |"
        )
    lines += [
        "",
        "## Before this change",
        "",
        "Before the pruner change, every `should_prune()` call at or past `min_resource` read "
        "the whole study (`study._get_trials(states=None)`): 52 full reads for a 52-step trial "
        "with `min_resource=1`, on top of the sampler's read at the start. The last table gives "
        "what each of those reads costs at least (a warm-cache read, no fit); now the calls "
        "between decision points read only the trial itself.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--n-trials", type=int, default=1000)
    parser.add_argument("--measure", type=int, default=2, help="trials measured per backend")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "reads_per_trial.md")
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'reads.db'}"
            elif backend == "postgresql":
                url = POSTGRESQL_URL
            else:
                raise ValueError(f"Unknown backend {backend!r}.")
            result = run_backend(backend, url, args.n_trials, args.measure)
            results.append(result)
            print("\n".join(trial_rows(result)), flush=True)
    report = write_report(results, args, load)
    Path(args.out).write_text(report)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()

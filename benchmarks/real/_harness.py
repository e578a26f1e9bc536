"""Shared harness of the real-training benchmarks: methods, budget accounting, records, summary.

Protocol: every method gets the same total budget of training steps per run (episodes or
epochs), counted over all trials: reaching report step ``s`` costs ``s - previous step`` of the
trial (trials train from scratch, so a trial stopped at step ``s`` cost ``s``). The run ends when
the next report would exceed the budget. Wall time is split into training time (inside the
task's training code) and optimiser overhead (everything else: ``suggest_*``, ``should_prune``,
study bookkeeping). At the end, each method's recommended configuration (``optuna_boil.recommend``
for the BOIL variants, otherwise the best COMPLETE trial, falling back to the best last report)
is retrained once for the full number of steps with a fresh seed; that value (outside the budget
and the timings) estimates the recommendation's true quality.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from dataclasses import dataclass
import functools
import json
import math
import os
from pathlib import Path
import sys
import time
import traceback
from typing import Any
import warnings

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.pruners import HyperbandPruner
from optuna.pruners import NopPruner
from optuna.pruners import SuccessiveHalvingPruner
from optuna.samplers import BaseSampler
from optuna.samplers import GPSampler
from optuna.samplers import RandomSampler
from optuna.samplers import TPESampler
from optuna.trial import TrialState


RESULTS = Path(__file__).resolve().parents[1] / "results"
FRACTIONS = (0.25, 0.5, 1.0)
EVAL_SEED_OFFSET = 10_000

Params = dict[str, Any]
OnReport = Callable[[int, float], bool]
MethodFactory = Callable[[int, int, int], tuple[BaseSampler, BasePruner]]

try:  # reuse the LCBench harness's table of optuna-boil variants when it is importable
    from benchmarks.run_lcbench import BOIL_VARIANTS
except Exception:  # pragma: no cover - the other harness is optional
    BOIL_VARIANTS = {"boil": ({}, {}), "boil_extend": ({}, {"extend": True})}


@dataclass
class Task:
    """One real training task.

    Attributes:
        name: Short name, used for result file names.
        steps: Steps at which a full training reports, increasing (e.g. 10, 20, ..., 150).
        suggest: Suggests the hyperparameters of a trial and returns them.
        train: ``train(params, seed, on_report)`` trains from scratch and calls
            ``on_report(step, value)`` at every step of ``steps``; it stops when that returns
            :obj:`True`.
        metric: Description of the reported value (maximised).
        unit: Unit of the steps (``"episodes"``, ``"epochs"``).
    """

    name: str
    steps: list[int]
    suggest: Callable[[optuna.Trial], Params]
    train: Callable[[Params, int, OnReport], None]
    metric: str
    unit: str

    @property
    def max_step(self) -> int:
        """The last step of a full training."""
        return self.steps[-1]


def _boil(sampler_kwargs: dict[str, Any], pruner_kwargs: dict[str, Any]) -> MethodFactory:
    def make(seed: int, min_r: int, max_r: int) -> tuple[BaseSampler, BasePruner]:
        import optuna_boil

        return (
            optuna_boil.BOILSampler(seed=seed, **sampler_kwargs),
            optuna_boil.BOILPruner(min_resource=min_r, max_resource=max_r, **pruner_kwargs),
        )

    return make


METHODS: dict[str, MethodFactory] = {
    "random": lambda seed, lo, hi: (RandomSampler(seed=seed), NopPruner()),
    "tpe_hyperband": lambda seed, lo, hi: (
        TPESampler(seed=seed),
        HyperbandPruner(min_resource=lo, max_resource=hi, reduction_factor=3),
    ),
    "random_sh": lambda seed, lo, hi: (
        RandomSampler(seed=seed),
        SuccessiveHalvingPruner(min_resource=lo, reduction_factor=3),
    ),
    "gp": lambda seed, lo, hi: (GPSampler(seed=seed), NopPruner()),
    **{name: _boil(*kwargs) for name, kwargs in BOIL_VARIANTS.items()},
}
DEFAULT_METHODS = ("random", "tpe_hyperband", "random_sh", "gp", "boil", "boil_extend")


class BudgetExhausted(Exception):
    """Raised inside a run when the global step budget is spent."""


@dataclass
class _Clock:
    """Training-time accounting of one run."""

    start: float
    train: float = 0.0


def _trial_seed(seed: int, number: int) -> int:
    return (seed * 100_003 + number * 7_919 + 17) % (2**31)


def run_one(task: Task, method: str, seed: int, budget: int) -> dict[str, Any]:
    """Run one method with one seed on ``task`` under a budget of ``budget`` steps."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler, pruner = METHODS[method](seed, task.steps[0], task.max_step)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    clock = _Clock(time.perf_counter())
    used = 0
    best = -math.inf
    trace: list[list[float]] = []  # [steps used, wall s, training s, best, trial]
    stopped = False

    def objective(trial: optuna.Trial) -> float:
        nonlocal used, best, stopped
        if stopped or used + task.steps[0] > budget:
            stopped = True
            study.stop()
            raise optuna.TrialPruned()
        params = task.suggest(trial)
        state = {"prev": 0, "last": math.nan, "pruned": False, "mark": time.perf_counter()}

        def on_report(step: int, value: float) -> bool:
            nonlocal used, best, stopped
            now = time.perf_counter()
            clock.train += now - state["mark"]
            try:
                if used + step - state["prev"] > budget:
                    stopped = True
                    return True
                used += step - state["prev"]
                state["prev"], state["last"] = step, value
                trial.report(value, step)
                if value > best:
                    best = value
                    trace.append([used, now - clock.start, clock.train, value, trial.number])
                if used >= budget:
                    stopped = True
                    return True
                if step >= task.max_step:
                    return True
                state["pruned"] = trial.should_prune()
                return bool(state["pruned"])
            finally:
                state["mark"] = time.perf_counter()

        state["mark"] = time.perf_counter()
        task.train(params, _trial_seed(seed, trial.number), on_report)
        clock.train += time.perf_counter() - state["mark"]
        if stopped:
            study.stop()
        if state["prev"] == 0:
            raise optuna.TrialPruned()  # the budget ran out before its first report
        if state["pruned"] or state["prev"] < task.max_step:
            raise optuna.TrialPruned()
        return float(state["last"])

    error = None
    try:
        study.optimize(objective, catch=())
    except Exception:
        error = traceback.format_exc()[-3000:]
    wall = time.perf_counter() - clock.start
    trials = study.get_trials(deepcopy=False)
    rec_start = time.perf_counter()
    rec_number, rec_note = _recommend(study, method)
    recommend_time = time.perf_counter() - rec_start
    record: dict[str, Any] = {
        "task": task.name,
        "method": method,
        "seed": seed,
        "budget": budget,
        "max_step": task.max_step,
        "steps_used": used,
        "best_observed": best,
        "wall_time_s": round(wall, 3),
        "train_time_s": round(clock.train, 3),
        "overhead_s": round(wall - clock.train, 3),
        "recommend_time_s": round(recommend_time, 3),
        "n_trials": len(trials),
        "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_fail": sum(t.state == TrialState.FAIL for t in trials),
        "trace": trace,
        "trials": [_trial_row(t) for t in trials if t.last_step is not None],
        "recommended_trial": rec_number,
        "recommend_note": rec_note,
        "error": error,
    }
    if rec_number is not None:
        rec = next(t for t in trials if t.number == rec_number)
        record["recommended_params"] = rec.params
        record["recommended_observed"] = [rec.last_step, rec.intermediate_values[rec.last_step]]
        record["recommended_reeval"] = _reevaluate(task, rec.params, seed)
    return record


def _trial_row(t: optuna.trial.FrozenTrial) -> list[Any]:
    """``[number, state, last step, last value, initial budget, final budget, extensions]``."""
    last = t.last_step
    return [
        t.number,
        t.state.name,
        last,
        t.intermediate_values[last] if last is not None else None,
        t.user_attrs.get("boil_initial_budget"),
        t.user_attrs.get("boil_budget"),
        t.user_attrs.get("boil_extensions", 0),
    ]


def _recommend(study: optuna.Study, method: str) -> tuple[int | None, str]:
    trials = [t for t in study.get_trials(deepcopy=False) if t.last_step is not None]
    if not trials:
        return None, "no trial reported"
    if method in BOIL_VARIANTS:
        import optuna_boil

        try:
            rec, predicted = optuna_boil.recommend(study)
            return rec.number, f"optuna_boil.recommend (predicted {predicted:.4g})"
        except Exception as e:  # reported as a finding, with the fallback used below
            note = f"optuna_boil.recommend failed: {type(e).__name__}: {e}"[:300]
    else:
        note = "best COMPLETE trial"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pool = complete or trials
    if not complete:
        note += "; no COMPLETE trial, best (last step, last value)"
    best = max(pool, key=lambda t: (t.last_step, t.intermediate_values[t.last_step]))
    if complete:
        best = max(complete, key=lambda t: t.intermediate_values[t.last_step])
    return best.number, note


def _reevaluate(task: Task, params: Params, seed: int) -> float:
    """Value at the full number of steps of one fresh training of ``params``."""
    values: dict[int, float] = {}

    def on_report(step: int, value: float) -> bool:
        values[step] = value
        return False

    task.train(params, EVAL_SEED_OFFSET + seed, on_report)
    return values[max(values)] if values else math.nan


# Running -----------------------------------------------------------------------------------


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_all(
    make_task: Callable[[], Task],
    methods: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    jsonl: Path,
    jobs: int,
) -> None:
    """Run every (method, seed) not yet in ``jsonl`` and append one JSON line per run."""
    task = make_task()
    done = {
        (r["method"], r["seed"])
        for r in _load(jsonl)
        if r["budget"] == budget and r["max_step"] == task.max_step
    }
    todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
    print(f"{task.name}: {len(todo)} runs to do ({len(done)} already in {jsonl.name})", flush=True)
    jsonl.parent.mkdir(parents=True, exist_ok=True)

    def finish(record: dict[str, Any], i: int) -> None:
        with open(jsonl, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        print(
            f"[{i}/{len(todo)}] {record['method']:<14} seed {record['seed']}  best "
            f"{record['best_observed']:.4g}  reeval "
            f"{record.get('recommended_reeval', math.nan):.4g}"
            f"  trials {record['n_trials']:>3}  wall {record['wall_time_s']:.0f}s  overhead "
            f"{record['overhead_s']:.0f}s" + ("  ERROR" if record["error"] else ""),
            flush=True,
        )

    if jobs <= 1:
        _init_worker()
        for i, (m, s) in enumerate(todo, 1):
            finish(run_one(task, m, s, budget), i)
        return
    with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
        futures = [pool.submit(_run_in_worker, make_task, m, s, budget) for m, s in todo]
        for i, future in enumerate(as_completed(futures), 1):
            finish(future.result(), i)


def _run_in_worker(
    make_task: Callable[[], Task], method: str, seed: int, budget: int
) -> dict[str, Any]:
    return run_one(make_task(), method, seed, budget)


# Summary -----------------------------------------------------------------------------------


def best_at(trace: Sequence[Sequence[float]], x: float, axis: int = 0) -> float:
    """Best observed value once ``trace[axis] <= x`` (NaN before the first report)."""
    values = [row[3] for row in trace if row[axis] <= x + 1e-9]
    return max(values) if values else math.nan


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if arr.size == 0:
        return math.nan, math.nan
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return float(arr.mean()), se


def _fmt(mean: float, se: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{mean:.{digits}f}"


def summarise(task: Task, records: list[dict[str, Any]], md: Path, png: Path) -> str:
    """Write the Markdown table and the PNG plot of ``records``; return the Markdown."""
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    budget = records[0]["budget"]
    digits = 4 if task.unit == "epochs" else 1
    by = {m: [r for r in records if r["method"] == m] for m in methods}
    lines = [
        f"# {task.name}: {task.metric} (maximised)",
        "",
        f"Budget {budget} {task.unit} per run (every reported {task.unit[:-1]} counted), "
        f"at most {task.max_step} {task.unit} per trial, reports at {task.steps[0]}, "
        f"{task.steps[1] if len(task.steps) > 1 else ''}, ... Mean ± standard error over seeds.",
        "",
        "Best observed value after 25 / 50 / 100 % of the budget; `reeval`: one fresh training "
        f"of the final recommendation for {task.max_step} {task.unit} (outside the budget).",
        "",
        "| method | seeds | best @25% | best @50% | best @100% | reeval of recommendation "
        "| trials (complete) | wall s | training s | overhead s | overhead s / trial |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = by[m]
        cells = [_fmt(*_mean_se([best_at(r["trace"], f * budget) for r in rs]), digits)
                 for f in FRACTIONS]  # fmt: skip
        reeval = _fmt(*_mean_se([r.get("recommended_reeval", math.nan) for r in rs]), digits)
        n_trials = np.mean([r["n_trials"] for r in rs])
        n_complete = np.mean([r["n_complete"] for r in rs])
        wall = np.mean([r["wall_time_s"] for r in rs])
        train = np.mean([r["train_time_s"] for r in rs])
        over = np.mean([r["overhead_s"] for r in rs])
        per = np.mean([r["overhead_s"] / max(r["n_trials"], 1) for r in rs])
        errors = sum(bool(r["error"]) for r in rs)
        name = m + (f" ({errors} errors)" if errors else "")
        lines.append(
            f"| {name} | {len(rs)} | {' | '.join(cells)} | {reeval} | {n_trials:.1f} "
            f"({n_complete:.1f}) | {wall:.0f} | {train:.0f} | {over:.1f} | {per:.2f} |"
        )
    lines += ["", "## optuna-boil decisions", ""]
    for m in methods:
        if m not in BOIL_VARIANTS:
            continue
        rows = [row for r in by[m] for row in r["trials"]]
        initial = [row[4] for row in rows if row[4] is not None]
        final_steps = [row[2] for row in rows]
        ext = [row[6] or 0 for row in rows]
        notes = sorted({r["recommend_note"].split(" (")[0] for r in by[m]})
        rec_steps = [r["recommended_observed"][0] for r in by[m] if "recommended_observed" in r]
        lines += [
            f"* **{m}**: {len(rows)} trials over {len(by[m])} runs; initial budgets "
            f"{_hist(initial)}; last reported steps {_hist(final_steps)}; "
            f"{sum(e > 0 for e in ext)} trials extended ({sum(ext)} extensions); "
            f"recommendation: {'; '.join(notes)}; recommended trial's last step "
            f"{_hist(rec_steps)}."
        ]
    text = "\n".join(lines) + "\n"
    md.write_text(text)
    _plot(task, by, png)
    return text


def _hist(values: Sequence[Any]) -> str:
    if not values:
        return "{}"
    keys, counts = np.unique(np.asarray(values), return_counts=True)
    pairs = zip(keys.tolist(), counts.tolist(), strict=True)
    return "{" + ", ".join(f"{k}: {c}" for k, c in pairs) + "}"


def _plot(task: Task, by: dict[str, list[dict[str, Any]]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    budget = next(iter(by.values()))[0]["budget"]
    max_wall = max(r["wall_time_s"] for rs in by.values() for r in rs)
    for m, rs in by.items():
        for ax, axis, grid in (
            (axes[0], 0, np.linspace(task.steps[0], budget, 100)),
            (axes[1], 1, np.linspace(0.0, max_wall, 100)),
        ):
            ys = np.array([[best_at(r["trace"], x, axis) for x in grid] for r in rs])
            ok = ~np.isnan(ys).any(axis=0)
            mean = np.nanmean(np.where(np.isnan(ys), np.nan, ys), axis=0)
            se = np.nanstd(ys, axis=0, ddof=1) / np.sqrt(len(rs)) if len(rs) > 1 else 0 * mean
            style = "-" if m.startswith("boil") else "--"
            (line,) = ax.plot(grid[ok], mean[ok], style, label=m)
            ax.fill_between(grid[ok], (mean - se)[ok], (mean + se)[ok], alpha=0.15,
                            color=line.get_color())  # fmt: skip
    axes[0].set_xlabel(f"{task.unit} used (all trials)")
    axes[1].set_xlabel("wall time (s), training + optimiser overhead")
    for ax in axes:
        ax.set_ylabel(f"best observed: {task.metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n = len(next(iter(by.values())))
    fig.suptitle(f"{task.name}: mean ± s.e. over {n} seeds, budget {budget} {task.unit}")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


# Command line ------------------------------------------------------------------------------


def _parse_seeds(spec: str) -> list[int]:
    seeds: list[int] = []
    for item in spec.split(","):
        low, _, high = item.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main(
    argv: list[str] | None,
    *,
    description: str,
    make_task: Callable[[argparse.Namespace], Task],
    defaults: dict[str, Any],
    quick: dict[str, Any],
    step_option: str,
) -> None:
    """Command line shared by the benchmarks (run, then summarise the JSONL file).

    Args:
        argv: Arguments (``None``: ``sys.argv``).
        description: Help text.
        make_task: Builds the task from the parsed arguments; a module-level function, so that
            worker processes can build it.
        defaults: ``budget``, ``max_steps`` and ``seeds`` of a full run.
        quick: The same for ``--quick``.
        step_option: Name of the option giving the steps of a full training.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma list from {', '.join(METHODS)}")  # fmt: skip
    parser.add_argument("--seeds", help=f"seeds, e.g. 0-4 (default {defaults['seeds']})")
    parser.add_argument("--budget", type=int, help=f"steps per run (default {defaults['budget']})")
    default_steps = defaults["max_steps"]
    parser.add_argument(step_option, dest="max_steps", type=int,
                        help=f"steps of a full training (default {default_steps})")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke test (< 60 s)")
    parser.add_argument("--summary-only", action="store_true", help="only redo table and plot")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    base = quick if args.quick else defaults
    args.max_steps = args.max_steps or base["max_steps"]
    args.max_episodes = args.max_epochs = args.max_steps
    budget = args.budget or base["budget"]
    seeds = _parse_seeds(args.seeds or base["seeds"])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    task = make_task(args)
    stem = f"real_{task.name}" + ("_quick" if args.quick else "")
    jsonl = args.out / f"{stem}.jsonl"
    start = time.perf_counter()
    if not args.summary_only:
        run_all(functools.partial(make_task, args), methods, seeds, budget, jsonl, args.jobs)
    records = [
        r
        for r in _load(jsonl)
        if r["budget"] == budget and r["max_step"] == task.max_step and r["method"] in methods
        and r["seed"] in seeds
    ]  # fmt: skip
    if records:
        print(summarise(task, records, args.out / f"{stem}.md", args.out / f"{stem}.png"))
    print(f"done in {time.perf_counter() - start:.0f}s -> {args.out / stem}.*")

"""Shared harness of the real-training benchmarks: methods, run loop, records, summary, CLI.

Protocol: every method gets the same total budget of training steps per run (episodes, epochs or
boosting rounds), counted over all trials: reaching report step ``s`` costs ``s - previous step``
of the trial (trials train from scratch, so a trial stopped at step ``s`` cost ``s``). The run
ends when the next report would exceed the budget. A trial that reaches the task's last step ends
COMPLETE with its last value (what ``study.best_trial`` looks at); a trial stopped earlier (by
its pruner, or by the end of the budget) ends PRUNED.

Every report of a run is logged as an event ``[steps used, wall s, training s, trial, step,
value]``; the metrics a user sees at 25 / 50 / 100 % of the budget are computed from that log
(:func:`checkpoint`): the best value reported at any step, the best COMPLETE trial's value and
the number of COMPLETE trials. Wall time is split into training time (inside the task's training
code) and optimiser overhead (everything else: ``suggest_*``, ``should_prune``, bookkeeping).
The optuna-boil method also receives each trial's cumulative training seconds through
``optuna_boil.report_cost`` after every report, so it weighs budgets by real cost (and its
decisions follow the machine's load); with ``--cost steps`` it weighs them by steps, and a
rerun repeats every decision. From the same
log, :func:`waste` counts the full trainings of a run and the budget spent on those whose curve
stayed at the worst value early on; optuna-boil runs also record their model fits and the
study's fidelity trust at the end.

At the end, each method's recommended configuration (``optuna_boil.recommend`` for optuna-boil,
otherwise ``study.best_trial``, falling back to the best last report of the longest trials) is
retrained once for the full number of steps with a fresh training seed; that value (outside the
budget and the timings) estimates the recommendation's true quality.

A task is a :class:`Task` whose ``curve`` is a generator: it trains from scratch and yields
``(step, value)`` at every report step, and the harness stops consuming it when the trial ends.
A method whose objective resumes runs (``boil_resume``, issue 27) calls
``optuna_boil.resume_from``: the generator of a trial its pruner stopped is kept paused (what a
checkpoint would restore), and a trial that continues that run consumes it from where it
stopped, so its earlier steps are neither trained nor counted again.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Generator
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
from typing import Literal
import warnings

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.pruners import BasePruner
from optuna.pruners import HyperbandPruner
from optuna.pruners import MedianPruner
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
RECORD_FORMAT = 2  # records without this format (older harness versions) are ignored

Params = dict[str, Any]
Cost = Literal["seconds", "steps"]
Direction = Literal["maximize", "minimize"]
Reports = Generator[tuple[int, float], None, None]
Curve = Callable[[Params, int, int], Reports]
MethodFactory = Callable[[int, int, int], tuple[BaseSampler, BasePruner]]
Event = list[float]  # [steps used, wall s, training s, trial number, step, value]


@dataclass(frozen=True)
class Task:
    """One real training task.

    Attributes:
        name: Short name, used for result file names.
        steps: Steps at which a full training reports, increasing (e.g. 10, 20, ..., 300).
        suggest: Suggests the hyperparameters of a trial and returns them.
        curve: ``curve(params, data_seed, train_seed)`` trains from scratch and yields
            ``(step, value)`` at every step of ``steps``. ``data_seed`` is the run's seed (for
            tasks whose data split depends on it), ``train_seed`` the trial's training seed.
        metric: Description of the reported value.
        unit: Unit of the steps, plural (``"episodes"``, ``"epochs"``, ``"rounds"``).
        direction: ``"maximize"`` or ``"minimize"``.
    """

    name: str
    steps: tuple[int, ...]
    suggest: Callable[[optuna.Trial], Params]
    curve: Curve
    metric: str
    unit: str
    direction: Direction = "maximize"

    @property
    def max_step(self) -> int:
        """The last step of a full training."""
        return self.steps[-1]


# Methods -----------------------------------------------------------------------------------


# The default before ``first_full`` (the first model decision trains fully while nothing is
# fully trained): the variants measured before it keep it off, so that they rerun as measured.
BEFORE_FIRST_FULL: dict[str, Any] = {"first_full": False}


def _boil(
    seed: int, min_resource: int, max_resource: int, **overrides: Any
) -> tuple[BaseSampler, BasePruner]:
    import optuna_boil

    sampler = optuna_boil.BOILSampler(seed=seed)
    if overrides:  # an ablation (private switches of the benchmarks)
        sampler = sampler._configure(**overrides)
    return (
        sampler,
        optuna_boil.BOILPruner(min_resource=min_resource, max_resource=max_resource),
    )


METHODS: dict[str, MethodFactory] = {
    "random": lambda seed, lo, hi: (RandomSampler(seed=seed), NopPruner()),
    # Optuna's default sampler with its default 10 random start-up trials, full trainings.
    "tpe": lambda seed, lo, hi: (TPESampler(seed=seed), NopPruner()),
    "tpe_hyperband": lambda seed, lo, hi: (
        TPESampler(seed=seed),
        HyperbandPruner(min_resource=lo, max_resource=hi, reduction_factor=3),
    ),
    "tpe_median": lambda seed, lo, hi: (TPESampler(seed=seed), MedianPruner()),
    "random_sh": lambda seed, lo, hi: (
        RandomSampler(seed=seed),
        SuccessiveHalvingPruner(min_resource=lo, reduction_factor=3),
    ),
    "gp": lambda seed, lo, hi: (GPSampler(seed=seed), NopPruner()),
    # Start-up fitted to the budget (benchmarks/PROTOCOL.md): max(3, n_full // 4) random trials
    # for the default budget of n_full = 10 full trainings.
    "tpe_scaled": lambda seed, lo, hi: (TPESampler(seed=seed, n_startup_trials=3), NopPruner()),
    "gp_scaled": lambda seed, lo, hi: (GPSampler(seed=seed, n_startup_trials=3), NopPruner()),
    "boil": _boil,
    # Ablations of the current default; experiments that lost were removed from the product
    # (git history, their numbers in benchmarks/results/).
    "boil_no_first_full": functools.partial(_boil, **BEFORE_FIRST_FULL),
    "boil_no_deliver_best": functools.partial(_boil, deliver_best=False),
    "boil_no_deliver_new": functools.partial(_boil, deliver_new=False),
    # 5 random start-up trials instead of 8.
    "boil_few_startup": functools.partial(_boil, n_startup_trials=5),
    # A user's setting for curves whose first third says little (an exploration phase, as in
    # the CartPole DQN): no decision before a third of the full training.
    "boil_min_third_now": lambda seed, lo, hi: _boil(seed, max(lo, hi // 3), hi),
    # The default before random interleaving (issue 24): every new configuration the model's.
    "boil_no_random": functools.partial(_boil, random_fraction=0.0),
    # The default with an objective that keeps its runs (issue 27): it calls
    # optuna_boil.resume_from and continues a stopped run where it stopped.
    "boil_resume": _boil,
}
BOIL_METHODS = frozenset(m for m in METHODS if m.startswith("boil"))
# Methods whose objective resumes stopped runs (``optuna_boil.resume_from``).
RESUMING = frozenset({"boil_resume"})
BASELINE = "random"


# One run -----------------------------------------------------------------------------------


def _trial_seed(seed: int, number: int) -> int:
    return (seed * 100_003 + number * 7_919 + 17) % (2**31)


def _better(direction: str) -> Callable[[float, float], bool]:
    if direction == "maximize":
        return lambda a, b: a > b
    return lambda a, b: a < b


def _best(values: Sequence[float], direction: str) -> float:
    return max(values) if direction == "maximize" else min(values)


class _Run:
    """Budget accounting and event log of one run (one method, one seed)."""

    def __init__(
        self, task: Task, seed: int, budget: int, report_cost: bool, resumes: bool = False
    ) -> None:
        self.task, self.seed, self.budget, self.report_cost = task, seed, budget, report_cost
        self.used = 0
        self.train_s = 0.0
        self.start = time.perf_counter()
        self.events: list[Event] = []
        self.stopped = False
        # With ``resumes``: the runs that stopped early, paused where they stopped (the live
        # training, as a checkpoint would restore it) by trial number, with their last step.
        self.resumes = resumes
        self.paused: dict[int, tuple[Reports, int]] = {}

    def _start(self, trial: optuna.Trial, params: Params) -> tuple[Reports, int]:
        """The trial's training and the step it starts after: the run it continues when
        ``optuna_boil.resume_from`` says so (its steps were trained and counted), else a new
        one."""
        if self.resumes:
            import optuna_boil

            point = optuna_boil.resume_from(trial)
            if point is not None and point.trial_number in self.paused:
                curve, last = self.paused.pop(point.trial_number)
                assert last == point.step, (last, point)
                return curve, last
        return self.task.curve(params, self.seed, _trial_seed(self.seed, trial.number)), 0

    def objective(self, trial: optuna.Trial) -> float:
        """Train one trial until its pruner, its last step or the run's budget stops it."""
        task = self.task
        if self.stopped or self.used + task.steps[0] > self.budget:
            self.stopped = True
            trial.study.stop()
            raise optuna.TrialPruned()
        params = task.suggest(trial)
        curve, prev = self._start(trial, params)
        last, trial_train, pause = math.nan, 0.0, False
        try:
            while True:
                mark = time.perf_counter()
                item = next(curve, None)
                trial_train += time.perf_counter() - mark
                if item is None:
                    break
                step, value = int(item[0]), float(item[1])
                if not math.isfinite(value):
                    break  # a diverged training ends the trial (PRUNED, not reported)
                if self.used + step - prev > self.budget:
                    self.stopped = True
                    break
                self.used += step - prev
                prev, last = step, value
                trial.report(value, step)
                if self.report_cost:
                    import optuna_boil

                    optuna_boil.report_cost(trial, trial_train)
                now = time.perf_counter() - self.start
                train = self.train_s + trial_train
                self.events.append(
                    [self.used, round(now, 3), round(train, 3), trial.number, step, _g7(value)]
                )
                if self.used >= self.budget:
                    self.stopped = True
                if self.stopped or step >= task.max_step:
                    break
                if trial.should_prune():
                    pause = self.resumes
                    break
        finally:
            if pause:
                self.paused[trial.number] = (curve, prev)
            else:
                curve.close()
            self.train_s += trial_train
        if self.stopped:
            trial.study.stop()
        if prev < task.max_step:
            raise optuna.TrialPruned()
        return last


def _g7(value: float) -> float:
    """``value`` to 7 significant digits (keeps the event logs small)."""
    return float(f"{value:.7g}")


def checkpoint(
    events: Sequence[Sequence[float]], x: float, max_step: int, direction: str, axis: int = 0
) -> tuple[float, float | None, int]:
    """What a user sees once ``event[axis] <= x`` (steps used by default).

    Returns:
        The best value reported at any step (NaN before the first report), the best COMPLETE
        trial's value (:obj:`None` when no trial has reached ``max_step`` yet) and the number of
        COMPLETE trials.
    """
    seen = [e for e in events if e[axis] <= x + 1e-9]
    best = _best([e[5] for e in seen], direction) if seen else math.nan
    complete = [e[5] for e in seen if e[4] >= max_step]
    return best, (_best(complete, direction) if complete else None), len(complete)


STUCK_PREFIX = 0.3  # a stuck trial stays at the worst value for this share of the full training
STUCK_TOLERANCE = 0.02  # "at the worst value": within this share of the run's value range


def waste(record: dict[str, Any]) -> dict[str, float]:
    """Full trainings of a run and the budget they wasted on curves stuck at the worst value.

    Computed from the record's ``events`` only (so it works for records of every version). A
    trial is *stuck* when every value it reported at steps up to ``STUCK_PREFIX * max_step`` is
    within ``STUCK_TOLERANCE`` of the run's value range (over all its reports) from the worst
    value the run reported; a trial without a report that early is not stuck. A full training's
    spend is its last step (trials train from scratch), plus one when the steps start at 0.

    Args:
        record: A run record (``events``, ``max_step``, ``budget``, ``direction``).

    Returns:
        ``full_runs``: the number of trials that reported a step ``>= max_step``;
        ``wasted_full_steps``: the steps spent on the full trainings that were stuck;
        ``stuck_full_share``: the same as a share of the run's budget.
    """
    reports = _reports_by_trial(record["events"])
    full = [r for r in reports.values() if max(step for step, _ in r) >= record["max_step"]]
    wasted = 0
    if full:
        values = [value for r in reports.values() for _, value in r]
        worst = min(values) if record["direction"] == "maximize" else max(values)
        tolerance = STUCK_TOLERANCE * (max(values) - min(values))
        start = min(step for r in reports.values() for step, _ in r)
        early = STUCK_PREFIX * record["max_step"]
        wasted = sum(
            int(max(step for step, _ in r)) + int(start == 0)
            for r in full
            if _stuck(r, early, worst, tolerance)
        )
    budget = record["budget"]
    return {
        "full_runs": len(full),
        "stuck_full_share": wasted / budget if budget > 0 else math.nan,
        "wasted_full_steps": wasted,
    }


def _reports_by_trial(events: Sequence[Sequence[float]]) -> dict[int, list[tuple[float, float]]]:
    """``(step, value)`` of each trial's reports, in order, keyed by trial number."""
    reports: dict[int, list[tuple[float, float]]] = {}
    for event in events:
        reports.setdefault(int(event[3]), []).append((event[4], event[5]))
    return reports


def _stuck(
    reports: Sequence[tuple[float, float]], early: float, worst: float, tolerance: float
) -> bool:
    """Whether every report at a step ``<= early`` (at least one) is ``worst`` ± ``tolerance``."""
    values = [value for step, value in reports if step <= early + 1e-9]
    return bool(values) and all(abs(value - worst) <= tolerance for value in values)


def run_one(
    task: Task,
    method: str,
    seed: int,
    budget: int,
    retrain_seeds: int = 0,
    cost: Cost = "seconds",
) -> dict[str, Any]:
    """Run one method with one seed on ``task`` under a budget of ``budget`` steps.

    With ``retrain_seeds`` > 0 the best COMPLETE trial's configuration (``study.best_trial``,
    what the user gets) is also trained that many more times with fresh seeds
    (``best_trial_retrain``: the protocol's headline, benchmarks/PROTOCOL.md). ``cost`` is what
    optuna-boil methods weigh budgets by: the measured training seconds
    (``optuna_boil.report_cost``, as a user would report them; decisions then depend on the
    machine's load, so a rerun differs) or the steps (nothing reported: a rerun is identical)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler, pruner = METHODS[method](seed, task.steps[0], task.max_step)
    study = optuna.create_study(direction=task.direction, sampler=sampler, pruner=pruner)
    run = _Run(
        task,
        seed,
        budget,
        report_cost=method in BOIL_METHODS and cost == "seconds",
        resumes=method in RESUMING,
    )
    error = None
    try:
        study.optimize(run.objective, catch=())
    except Exception:
        error = traceback.format_exc()[-3000:]
    finally:
        for curve, _ in run.paused.values():  # runs nobody continued: end their training
            curve.close()
    wall = time.perf_counter() - run.start
    trials = study.get_trials(deepcopy=False)
    reported = [t for t in trials if t.last_step is not None]
    rec_start = time.perf_counter()
    rec_number, rec_note = _recommend(study, method)
    recommend_time = time.perf_counter() - rec_start
    checkpoints = []
    for fraction in FRACTIONS:
        x = fraction * budget
        best, best_complete, n_complete = checkpoint(run.events, x, task.max_step, task.direction)
        seen = [e for e in run.events if e[0] <= x + 1e-9]
        checkpoints.append({
            "fraction": fraction,
            "best_observed": best,
            "best_complete": best_complete,
            "n_complete": n_complete,
            "wall_s": seen[-1][1] if seen else 0.0,
            "train_s": seen[-1][2] if seen else 0.0,
        })  # fmt: skip
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "task": task.name,
        "method": method,
        "seed": seed,
        "budget": budget,
        "max_step": task.max_step,
        "direction": task.direction,
        "cost": cost,
        "steps_used": run.used,
        "wall_time_s": round(wall, 3),
        "train_time_s": round(run.train_s, 3),
        "overhead_s": round(wall - run.train_s, 3),
        "recommend_time_s": round(recommend_time, 3),
        "n_trials": len(reported),
        "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_fail": sum(t.state == TrialState.FAIL for t in trials),
        "checkpoints": checkpoints,
        "events": run.events,
        "trials": [_trial_row(t) for t in reported],
        # Each row's parameters, in the order of ``trials`` (where a method's runs went), and
        # how many of them lie on a bound of their range (:func:`on_bound`).
        "trial_params": [t.params for t in reported],
        "trial_on_bound": [on_bound(t.params, t.distributions) for t in reported],
        "recommended_trial": rec_number,
        "recommend_note": rec_note,
        "error": error,
    }
    if method in BOIL_METHODS:
        record.update(_boil_figures(study, trials))
    if rec_number is not None:
        rec = next(t for t in trials if t.number == rec_number)
        assert rec.last_step is not None
        record["recommended_params"] = rec.params
        record["recommended_observed"] = [rec.last_step, rec.intermediate_values[rec.last_step]]
        record["recommended_reeval"] = _reevaluate(task, rec.params, seed)
    sign = 1.0 if task.direction == "maximize" else -1.0
    complete = [
        (sign * t.value, t.number, t)
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None
    ]
    if complete:
        chosen = max(complete, key=lambda c: (c[0], -c[1]))[2]  # the first of equal values
        record["best_trial"] = chosen.number
        record["best_trial_params"] = chosen.params
        if retrain_seeds > 0:
            record["best_trial_retrain"] = [
                _reevaluate(task, chosen.params, seed, k) for k in range(1, retrain_seeds + 1)
            ]
    return record


# A parameter within this share of its range from a bound counts as on the bound.
BOUND_TOLERANCE = 0.005


def on_bound(params: Params, distributions: dict[str, BaseDistribution]) -> int:
    """How many numeric parameters lie on a bound of their range (within
    :data:`BOUND_TOLERANCE` of the range, on the log scale for log ranges); categorical
    parameters do not count."""
    count = 0
    for name, value in params.items():
        dist = distributions.get(name)
        if not isinstance(dist, (FloatDistribution, IntDistribution)) or dist.high <= dist.low:
            continue
        if dist.log:
            lo, hi, v = math.log(dist.low), math.log(dist.high), math.log(value)
        else:
            lo, hi, v = float(dist.low), float(dist.high), float(value)
        u = (v - lo) / (hi - lo)
        count += u <= BOUND_TOLERANCE or u >= 1.0 - BOUND_TOLERANCE
    return count


def _boil_figures(
    study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]
) -> dict[str, Any]:
    """The model fits of an optuna-boil run and its fidelity trust at the end.

    Returns:
        ``decisions``: the trials with a model decision at their start (``boil_log_acq``) plus
        the decision points the pruner met (``boil_decisions``, summed over trials);
        ``fidelity_trust``: the study's ``boil_fidelity_trust`` attribute (:obj:`None` if unset).
    """
    starts = sum("boil_log_acq" in t.user_attrs for t in trials)
    points = sum(int(t.user_attrs.get("boil_decisions") or 0) for t in trials)
    return {
        "decisions": starts + points,
        "fidelity_trust": study.user_attrs.get("boil_fidelity_trust"),
    }


def _trial_row(t: optuna.trial.FrozenTrial) -> list[Any]:
    """One trial of a record.

    Returns:
        ``[number, state, last step, last value, initial budget, final budget, extensions,
        pruner decision points]``; records written before the last entry have 7 entries.
    """
    last = t.last_step
    return [
        t.number,
        t.state.name,
        last,
        t.intermediate_values[last] if last is not None else None,
        t.user_attrs.get("boil_initial_budget"),
        t.user_attrs.get("boil_budget"),
        t.user_attrs.get("boil_extensions", 0),
        t.user_attrs.get("boil_decisions", 0),
    ]


def _recommend(study: optuna.Study, method: str) -> tuple[int | None, str]:
    trials = [t for t in study.get_trials(deepcopy=False) if t.last_step is not None]
    if not trials:
        return None, "no trial reported"
    if method in BOIL_METHODS:
        import optuna_boil

        try:
            result = optuna_boil.recommend(study)  # (trial, predicted value, ...)
            return result[0].number, f"optuna_boil.recommend (predicted {result[1]:.4g})"
        except Exception as e:  # reported as a finding, with the fallback used below
            note = f"optuna_boil.recommend failed: {type(e).__name__}: {e}"[:300]
    else:
        note = "study.best_trial"
    if any(t.state == TrialState.COMPLETE for t in trials):
        return study.best_trial.number, note
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    best = max(
        trials, key=lambda t: (t.last_step or 0, sign * t.intermediate_values[t.last_step or 0])
    )
    return best.number, note + "; no COMPLETE trial, best last value of the longest trials"


def _reevaluate(task: Task, params: Params, seed: int, k: int = 0) -> float:
    """Value at the last step of one fresh training of ``params`` (same data, new seed; ``k``
    numbers further fresh seeds)."""
    last = math.nan
    for _, value in task.curve(params, seed, (k + 1) * EVAL_SEED_OFFSET + seed):
        last = value
    return float(last)


# Running -----------------------------------------------------------------------------------


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch
    except ImportError:  # pragma: no cover - only the torch tasks need it
        return
    torch.set_num_threads(1)


def load(path: Path) -> list[dict[str, Any]]:
    """The records of ``path`` written by this version of the harness."""
    if not path.exists():
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r.get("format") == RECORD_FORMAT]


def run_all(
    make_task: Callable[[], Task],
    methods: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    jsonl: Path,
    jobs: int,
    retrain_seeds: int = 0,
    cost: Cost = "seconds",
) -> None:
    """Run every (method, seed) not yet in ``jsonl`` and append one JSON line per run
    (``retrain_seeds``, ``cost``: see :func:`run_one`)."""
    task = make_task()
    done = {
        (r["method"], r["seed"])
        for r in load(jsonl)
        if r["budget"] == budget
        and r["max_step"] == task.max_step
        and r.get("cost", "seconds") == cost
    }
    todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
    print(f"{task.name}: {len(todo)} runs to do ({len(done)} already in {jsonl.name})", flush=True)
    jsonl.parent.mkdir(parents=True, exist_ok=True)

    def finish(record: dict[str, Any], i: int) -> None:
        with open(jsonl, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        end = record["checkpoints"][-1]
        complete = end["best_complete"]
        print(
            f"[{i}/{len(todo)}] {record['method']:<14} seed {record['seed']}  best "
            f"{end['best_observed']:.4g}  best complete "
            f"{'none' if complete is None else f'{complete:.4g}'}  reeval "
            f"{record.get('recommended_reeval', math.nan):.4g}  trials {record['n_trials']:>3} "
            f"({record['n_complete']} complete)  training {record['train_time_s']:.1f}s  wall "
            f"{record['wall_time_s']:.1f}s" + ("  ERROR" if record["error"] else ""),
            flush=True,
        )

    if jobs <= 1:
        _init_worker()
        for i, (m, s) in enumerate(todo, 1):
            finish(run_one(task, m, s, budget, retrain_seeds, cost), i)
        return
    with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
        futures = [
            pool.submit(_run_in_worker, make_task, m, s, budget, retrain_seeds, cost)
            for m, s in todo
        ]
        for i, future in enumerate(as_completed(futures), 1):
            finish(future.result(), i)


def _run_in_worker(
    make_task: Callable[[], Task],
    method: str,
    seed: int,
    budget: int,
    retrain_seeds: int,
    cost: Cost,
) -> dict[str, Any]:
    return run_one(make_task(), method, seed, budget, retrain_seeds, cost)


# Summary -----------------------------------------------------------------------------------


def mean_se(values: Sequence[float | None]) -> tuple[float, float, int]:
    """Mean, standard error and count of the finite values (NaN when there are too few)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return float(arr.mean()), se, int(arr.size)


def average_ranks(values: dict[str, dict[int, float | None]], direction: str) -> dict[str, float]:
    """Mean over seeds of each method's rank (1 = best) among the methods run with that seed.

    Args:
        values: ``values[method][seed]``; :obj:`None` or NaN (e.g. no COMPLETE trial yet) ranks
            below every value. Ties share the mean of their ranks.
        direction: ``"maximize"`` or ``"minimize"``.
    """
    sign = -1.0 if direction == "maximize" else 1.0
    ranks: dict[str, list[float]] = {m: [] for m in values}
    seeds = sorted({s for per_seed in values.values() for s in per_seed})
    for seed in seeds:
        present = [m for m in values if seed in values[m]]
        keys = {}
        for m in present:
            v = values[m][seed]
            keys[m] = sign * v if v is not None and math.isfinite(v) else math.inf
        for m in present:
            below = sum(keys[o] < keys[m] for o in present)
            ties = sum(keys[o] == keys[m] for o in present)
            ranks[m].append(below + (ties + 1) / 2)
    return {m: float(np.mean(r)) if r else math.nan for m, r in ranks.items()}


def _fmt(mean: float, se: float, digits: int) -> str:
    if math.isnan(mean):
        return "none"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{mean:.{digits}f}"


def _paired(
    mine: dict[int, float | None], base: dict[int, float | None]
) -> tuple[float, float, int]:
    """Mean, standard error and count of ``mine[seed] - base[seed]`` over the shared seeds."""
    return mean_se([
        mine[s] - base[s]  # type: ignore[operator]
        for s in sorted(set(mine) & set(base))
        if mine[s] is not None and base[s] is not None
    ])  # fmt: skip


def behind(mine: dict[int, float | None], base: dict[int, float | None], direction: str) -> str:
    """How far a method's per-seed values ``mine`` are behind the baseline's ``base``.

    Returns:
        ``""`` when the mean (over the runs with a value) is not worse than the baseline's;
        ``"▼▼"`` when, in addition, the mean per-seed difference is worse by more than two
        standard errors (paired over seeds, which share the data split and training seeds);
        ``"▼"`` otherwise.
    """
    m, b = mean_se(list(mine.values()))[0], mean_se(list(base.values()))[0]
    if math.isnan(m) or math.isnan(b) or not _better(direction)(b, m):
        return ""
    d, se, n = _paired(mine, base)
    worse = d < 0 if direction == "maximize" else d > 0
    return "▼▼" if n > 1 and worse and abs(d) > 2 * se else "▼"


# Labels of the figures of :func:`waste_figures`.
FULL_RUNS = "full trainings per run"
STUCK_SHARE = "budget on stuck full trainings"
FITS_PER_TRIAL = "model fits per trial"
TRUST_AT_END = "fidelity trust at the end"
ON_BOUND = "full trainings with a parameter on a bound"


def waste_figures(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """A method's full trainings, stuck waste and model fits, formatted, keyed by their label.

    Args:
        records: The method's runs (one per seed); keys added by later harness versions may be
            missing.

    Returns:
        The means over the runs of the full trainings per run and of the share of the budget
        spent on stuck full trainings (:func:`waste`), the model fits per trial, the fidelity
        trust at the end and the share of COMPLETE trials with a parameter on a bound
        (:func:`on_bound`) (``"n/a"`` for runs that did not record them).
    """
    wastes = [waste(r) for r in records]
    return {
        FULL_RUNS: f"{mean_se([w['full_runs'] for w in wastes])[0]:.1f}",
        STUCK_SHARE: _stuck_share(records, wastes),
        FITS_PER_TRIAL: _fits_per_trial(records),
        TRUST_AT_END: _trust_at_end(records),
        ON_BOUND: _on_bound_share(records),
    }


def _stuck_share(records: Sequence[dict[str, Any]], wastes: Sequence[dict[str, float]]) -> str:
    """Mean share of the budget on stuck full trainings, in percent.

    Upgraded first-version records (``upgraded_from``) are left out: their event logs hold only
    the improvements and the completions, not the early reports that show a stuck curve.
    """
    shares = [
        w["stuck_full_share"]
        for r, w in zip(records, wastes, strict=True)
        if not r.get("upgraded_from") and math.isfinite(w["stuck_full_share"])
    ]
    if not shares:
        return "n/a"
    return f"{100 * np.mean(shares):.1f} %" + _partial(len(shares), len(records))


def _on_bound_share(records: Sequence[dict[str, Any]]) -> str:
    """Share of the COMPLETE trials with a parameter on a bound, pooled over the runs that
    recorded ``trial_on_bound``, in percent."""
    flags = [
        n > 0
        for r in records
        if "trial_on_bound" in r
        for row, n in zip(r["trials"], r["trial_on_bound"], strict=True)
        if row[1] == "COMPLETE"
    ]
    have = sum("trial_on_bound" in r for r in records)
    if not flags:
        return "n/a"
    return f"{100 * np.mean(flags):.0f} %" + _partial(have, len(records))


def _fits_per_trial(records: Sequence[dict[str, Any]]) -> str:
    """Mean over the runs that recorded ``decisions`` of the model fits per trial."""
    fits = [
        r["decisions"] / max(r["n_trials"], 1) for r in records if r.get("decisions") is not None
    ]
    if not fits:
        return "n/a"
    return f"{np.mean(fits):.2f}" + _partial(len(fits), len(records))


def _trust_at_end(records: Sequence[dict[str, Any]]) -> str:
    """Mean rho per checked step (those of the first run that has them) over the runs."""
    trusts = [t for r in records if (t := r.get("fidelity_trust")) and t.get("step")]
    if not trusts:
        return "n/a"
    cells = []
    for step in trusts[0]["step"]:
        rhos = [
            rho
            for t in trusts
            for s, rho in zip(t["step"], t["rho"], strict=True)
            if s == step and rho is not None
        ]
        cells.append(f"step {step}: " + (f"{np.mean(rhos):.2f}" if rhos else "n/a"))
    return ", ".join(cells) + _partial(len(trusts), len(records))


def _partial(have: int, runs: int) -> str:
    return f" ({have} of {runs} runs)" if have < runs else ""


def summarise(task: Task, records: list[dict[str, Any]], md: Path, png: Path | None) -> str:
    """Write the Markdown summary (and the PNG plot unless ``png`` is None); return the text."""
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    methods += sorted({r["method"] for r in records} - set(methods))
    budget = records[0]["budget"]
    digits = 1 if task.unit == "episodes" else 4
    by = {m: sorted((r for r in records if r["method"] == m), key=lambda r: r["seed"])
          for m in methods}  # fmt: skip
    word = "maximised" if task.direction == "maximize" else "minimised"
    seeds = sorted({r["seed"] for r in records})
    pct = " / ".join(f"{f:.0%}" for f in FRACTIONS)
    lines = [
        f"# {task.name}: {task.metric} ({word})",
        "",
        f"Budget {budget} {task.unit} per run (all trained {task.unit} of all trials), at most "
        f"{task.max_step} {task.unit} per trial, reports at {task.steps[0]}, "
        f"{task.steps[1] if len(task.steps) > 1 else ''}, ... Seeds {_ranges(seeds)}. "
        "Cells: mean ± standard error over seeds, then (in brackets) the method's average rank "
        "over seeds among the methods shown (1 = best; no COMPLETE trial ranks last). "
        f"▼: mean worse than {BASELINE} search; ▼▼: also worse by more than 2 standard errors "
        "in the paired per-seed difference (runs with the same seed share the data split and "
        "the training seed of each trial number).",
        *_provenance(records),
        "",
        f"## Best value reported at any step, after {pct} of the budget",
        "",
        "| method | seeds | " + " | ".join(f"@{f:.0%}" for f in FRACTIONS) + " |",
        "|---|---|" + "---|" * len(FRACTIONS),
    ]
    flags: list[str] = []
    stats = {
        key: {m: [mean_se([_cp(r, i, key) for r in by[m]]) for i in range(len(FRACTIONS))]
              for m in methods}
        for key in ("best_observed", "best_complete")
    }  # fmt: skip
    ranks = {
        key: [average_ranks({m: {r["seed"]: _cp(r, i, key) for r in by[m]} for m in methods},
                            task.direction) for i in range(len(FRACTIONS))]
        for key in ("best_observed", "best_complete")
    }  # fmt: skip

    def per_seed(m: str, i: int, key: str) -> dict[int, Any]:
        return {r["seed"]: _cp(r, i, key) for r in by[m]}

    def flag_for(m: str, mine: dict[int, Any], base: dict[int, Any], what: str) -> str:
        flag = behind(mine, base, task.direction)
        none_mine = sum(v is None for v in mine.values())
        none_base = sum(v is None for v in base.values())
        flag = flag or ("▼" if none_mine > none_base else "")
        if flag:
            ms, bs = mean_se(list(mine.values())), mean_se(list(base.values()))
            d, se, n = _paired(mine, base)
            flags.append(
                f"* {flag} **{m}**, {what}: {_fmt(ms[0], ms[1], digits)} vs {BASELINE} "
                f"{_fmt(bs[0], bs[1], digits)}"
                + (f"; paired difference {d:+.{digits}f} ± {se:.{digits}f} over {n} seeds"
                   if n > 1 else "")
                + (f"; {none_mine} vs {none_base} runs without a COMPLETE trial"
                   if none_mine + none_base else "")
            )  # fmt: skip
        return flag

    def cells(key: str, m: str) -> list[str]:
        out = []
        for i, f in enumerate(FRACTIONS):
            mine = stats[key][m][i]
            flag = ""
            if BASELINE in by and m != BASELINE:
                what = f"{key.replace('_', ' ')} @{f:.0%}"
                flag = flag_for(m, per_seed(m, i, key), per_seed(BASELINE, i, key), what)
            cell = f"{_fmt(mine[0], mine[1], digits)} ({ranks[key][i][m]:.1f})"
            out.append(cell + (f" {flag}" if flag else ""))
        return out

    for m in methods:
        errors = sum(bool(r["error"]) for r in by[m])
        name = m + (f" ({errors} errors)" if errors else "")
        lines.append(f"| {name} | {len(by[m])} | " + " | ".join(cells("best_observed", m)) + " |")
    lines += [
        "",
        f"## Best COMPLETE trial (`study.best_trial`), after {pct} of the budget",
        "",
        f"COMPLETE: trained to {task.max_step} {task.unit}. The mean is over the runs that "
        "have a COMPLETE trial; `none`: runs without one.",
        "",
        "| method | " + " | ".join(f"@{f:.0%}" for f in FRACTIONS)
        + " | COMPLETE trials @" + " / ".join(f"{f:.0%}" for f in FRACTIONS)
        + " | runs with none @" + " / ".join(f"{f:.0%}" for f in FRACTIONS) + " |",
        "|---|" + "---|" * len(FRACTIONS) + "---|---|",
    ]  # fmt: skip
    for m in methods:
        n_complete = " / ".join(
            f"{np.mean([_cp(r, i, 'n_complete') for r in by[m]]):.1f}"
            for i in range(len(FRACTIONS))
        )
        nones = " / ".join(
            str(sum(_cp(r, i, "best_complete") is None for r in by[m]))
            for i in range(len(FRACTIONS))
        )
        lines.append(
            f"| {m} | " + " | ".join(cells("best_complete", m)) + f" | {n_complete} | {nones} |"
        )
    lines += [
        "",
        "## Cost and recommendation",
        "",
        "`reeval`: one fresh training (new seed) of the final recommendation for "
        f"{task.max_step} {task.unit}, outside the budget (`optuna_boil.recommend` for boil, "
        "`study.best_trial` otherwise). Seconds are per run: training (inside the task's code), "
        "wall (training + optimiser) and optimiser overhead.",
        "",
        "| method | reeval of recommendation | trials (complete) | training s | wall s "
        "| overhead s | overhead s / trial |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = by[m]
        reeval = mean_se([r.get("recommended_reeval", math.nan) for r in rs])
        flag = ""
        if BASELINE in by and m != BASELINE:
            flag = flag_for(
                m,
                {r["seed"]: r.get("recommended_reeval") for r in rs},
                {r["seed"]: r.get("recommended_reeval") for r in by[BASELINE]},
                "reeval of recommendation",
            )
        train, wall, over = (mean_se([r[k] for r in rs]) for k in
                             ("train_time_s", "wall_time_s", "overhead_s"))  # fmt: skip
        per = np.mean([r["overhead_s"] / max(r["n_trials"], 1) for r in rs])
        lines.append(
            f"| {m} | {_fmt(reeval[0], reeval[1], digits)}{' ' + flag if flag else ''} "
            f"| {np.mean([r['n_trials'] for r in rs]):.1f} "
            f"({np.mean([r['n_complete'] for r in rs]):.1f}) | {_fmt(train[0], train[1], 1)} "
            f"| {_fmt(wall[0], wall[1], 1)} | {_fmt(over[0], over[1], 1)} | {per:.3f} |"
        )
    figures = {m: waste_figures(by[m]) for m in methods}
    labels = list(figures[methods[0]])
    lines += [
        "",
        "## Full trainings and waste",
        "",
        f"Full trainings: trials trained to {task.max_step} {task.unit}. Stuck: the share of "
        f"the budget spent on full trainings whose reports in the first "
        f"{STUCK_PREFIX:.0%} of the {task.unit} all stayed at the run's worst value (within "
        f"{STUCK_TOLERANCE:.0%} of the run's value range; runs converted from the first harness "
        "version lack the early reports and are left out). optuna-boil only: model fits (model "
        "decisions at a trial's start and pruner decision points) per trial, and the fidelity "
        "trust at the end (Spearman correlation of the fully trained runs' values at a step "
        "with their final values; mean over the runs). On a bound: the share of the COMPLETE "
        f"trials with a parameter within {BOUND_TOLERANCE:.1%} of its range from a bound (log "
        "scale for log ranges; runs recorded before the harness kept it are left out).",
        "",
        "| method | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
        *(f"| {m} | " + " | ".join(figures[m].values()) + " |" for m in methods),
    ]
    lines += ["", f"## Checkpoints behind {BASELINE} search", ""]
    lines += flags or ["None."]
    boil = [m for m in methods if m in BOIL_METHODS]
    if boil:
        lines += ["", "## optuna-boil decisions", ""]
    for m in boil:
        rows = [row for r in by[m] for row in r["trials"]]
        initial = [row[4] for row in rows if row[4] is not None]
        ext = [row[6] or 0 for row in rows]
        points = [row[7] or 0 for row in rows if len(row) > 7]  # 7 entries in older records
        notes = sorted({r["recommend_note"].split(" (")[0] for r in by[m]})
        rec_steps = [r["recommended_observed"][0] for r in by[m] if "recommended_observed" in r]
        lines.append(
            f"* **{m}**: {len(rows)} trials over {len(by[m])} runs; initial budgets "
            f"{_hist(initial)}; last reported steps {_hist([row[2] for row in rows])}; "
            f"{sum(e > 0 for e in ext)} trials extended ({sum(ext)} extensions); "
            f"recommendation: {'; '.join(notes)}; recommended trial's last step "
            f"{_hist(rec_steps)}; "
            + (f"pruner decision points per trial {_hist(points)}; " if points else "")
            + "; ".join(f"{label} {value}" for label, value in figures[m].items())
            + "."
        )
    text = "\n".join(lines) + "\n"
    md.write_text(text)
    if png is not None:
        _plot(task, by, png)
    return text


def _provenance(records: list[dict[str, Any]]) -> list[str]:
    upgraded = sorted({r["method"] for r in records if r.get("upgraded_from")})
    if not upgraded:
        return []
    return [
        "",
        f"Runs of {', '.join(upgraded)} come from the first harness version (before `tpe_median` "
        "and `report_cost`), converted by `python -m benchmarks.real.upgrade` (exact checkpoint "
        "metrics; times only for reports that improved the best value).",
    ]


def _cp(record: dict[str, Any], i: int, key: str) -> Any:
    return record["checkpoints"][i][key]


def _ranges(values: Sequence[int]) -> str:
    if not values:
        return "-"
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


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

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    budget = next(iter(by.values()))[0]["budget"]
    max_wall = max(r["wall_time_s"] for rs in by.values() for r in rs)
    panels = (
        (axes[0], 0, np.linspace(task.steps[0], budget, 100), 0),
        (axes[1], 0, np.linspace(task.steps[0], budget, 100), 1),
        (axes[2], 1, np.linspace(0.0, max_wall, 100), 0),
    )
    shown: dict[int, list[float]] = {k: [] for k in range(len(panels))}  # y values to frame
    for m, rs in by.items():
        for k, (ax, axis, grid, which) in enumerate(panels):
            ys = np.full((len(rs), grid.size), np.nan)
            for i, r in enumerate(rs):
                for j, x in enumerate(grid):
                    value = checkpoint(r["events"], x, task.max_step, task.direction, axis)[which]
                    ys[i, j] = math.nan if value is None else value
            count = (~np.isnan(ys)).sum(axis=0)
            ok = count > 0
            if axis == 1:  # the line ends where the method's last run ended
                ok &= grid <= max(r["wall_time_s"] for r in rs)
            if not ok.any():
                continue
            mean = np.full(grid.size, np.nan)
            se = np.zeros(grid.size)
            mean[ok] = np.nanmean(ys[:, ok], axis=0)
            many = count > 1
            se[many] = np.nanstd(ys[:, many], axis=0, ddof=1) / np.sqrt(count[many])
            style = "-" if m in BOIL_METHODS else "--"
            (line,) = ax.plot(grid[ok], mean[ok], style, label=m)
            late = ok & (grid >= grid[0] + 0.1 * (grid[-1] - grid[0]))
            shown[k] += [*(mean - se)[late], *(mean + se)[late]]
            ax.fill_between(grid[ok], (mean - se)[ok], (mean + se)[ok], alpha=0.15,
                            color=line.get_color())  # fmt: skip
    axes[0].set_ylabel(f"best reported: {task.metric}")
    axes[1].set_ylabel(f"best COMPLETE trial: {task.metric}")
    axes[2].set_ylabel(f"best reported: {task.metric}")
    axes[0].set_xlabel(f"{task.unit} used (all trials)")
    axes[1].set_xlabel(f"{task.unit} used (all trials); mean over runs with a COMPLETE trial")
    axes[2].set_xlabel("wall time (s), training + optimiser overhead")
    for k, ax in enumerate(axes):
        ax.grid(alpha=0.3)
        if shown[k]:  # frame the curves after the first 10 % of the x range
            low, high = min(shown[k]), max(shown[k])
            pad = 0.1 * (high - low) or 0.05 * abs(high) or 1.0
            ax.set_ylim(low - pad, high + pad)
    axes[0].legend(fontsize=8)
    n = max(len(rs) for rs in by.values())
    fig.suptitle(f"{task.name}: mean ± s.e. over up to {n} seeds, budget {budget} {task.unit}")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


# Command line ------------------------------------------------------------------------------


def parse_seeds(spec: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``."""
    seeds: list[int] = []
    for item in spec.split(","):
        low, _, high = item.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main(
    argv: list[str] | None,
    *,
    description: str,
    make_task: Callable[[int], Task],
    defaults: dict[str, Any],
    quick: dict[str, Any],
    step_option: str,
) -> None:
    """Command line shared by the benchmarks (run, then summarise the JSONL file).

    Args:
        argv: Arguments (``None``: ``sys.argv``).
        description: Help text.
        make_task: Builds the task from the number of steps of a full training; a module-level
            function, so that worker processes can build it.
        defaults: ``budget``, ``max_steps`` and ``seeds`` of a full run.
        quick: The same for ``--quick``.
        step_option: Name of the option giving the steps of a full training.
    """
    parser = argparse.ArgumentParser(description=description)
    default_methods = ",".join(m for m in METHODS)
    parser.add_argument("--methods", default=default_methods,
                        help=f"comma list (default {default_methods})")  # fmt: skip
    parser.add_argument("--seeds", help=f"seeds, e.g. 0-4 (default {defaults['seeds']})")
    parser.add_argument("--budget", type=int, help=f"steps per run (default {defaults['budget']})")
    default_steps = defaults["max_steps"]
    parser.add_argument(step_option, dest="max_steps", type=int,
                        help=f"steps of a full training (default {default_steps})")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--retrain-seeds", type=int, default=0,
                        help="retrain study.best_trial on this many fresh seeds")  # fmt: skip
    parser.add_argument(
        "--cost",
        choices=("seconds", "steps"),
        default="seconds",
        help="what optuna-boil weighs budgets by: measured training seconds (default; reruns "
        "differ with the load) or steps (identical reruns)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test (< 60 s)")
    parser.add_argument("--summary-only", action="store_true", help="only redo table and plot")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--md", type=Path, help="table to write (default: <out>/real_<task>.md)")
    args = parser.parse_args(argv)
    base = quick if args.quick else defaults
    max_steps = args.max_steps or base["max_steps"]
    budget = args.budget or base["budget"]
    seeds = parse_seeds(args.seeds or base["seeds"])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    build = functools.partial(make_task, max_steps)
    task = build()
    stem = f"real_{task.name}" + ("_quick" if args.quick else "")
    jsonl = args.out / f"{stem}.jsonl"
    # A summary may show methods that are only records now (earlier defaults, e.g.
    # ``boil_before_trust``); a run needs a method the harness can build.
    known = set(METHODS) | ({r["method"] for r in load(jsonl)} if args.summary_only else set())
    unknown = [m for m in methods if m not in known]
    if unknown:
        sys.exit(f"unknown methods {unknown}; choose from {', '.join(sorted(known))}")
    start = time.perf_counter()
    if not args.summary_only:
        run_all(build, methods, seeds, budget, jsonl, args.jobs, args.retrain_seeds, args.cost)
    records = [
        r
        for r in load(jsonl)
        if r["budget"] == budget and r["max_step"] == task.max_step and r["method"] in methods
        and r["seed"] in seeds
    ]  # fmt: skip
    if records:
        md = args.md or args.out / f"{stem}.md"
        png = None if args.no_plot else md.with_suffix(".png")
        print(summarise(task, records, md, png))
    print(f"done in {time.perf_counter() - start:.0f}s -> {args.out / stem}.*")

"""Side-by-side comparison of HPO methods on the LCBench surrogate (DyHPO / ifBO protocol).

Protocol: 7 hyperparameters, epochs 1..52, maximise ``val_balanced_accuracy``, a budget of
``--budget`` epochs per run counted over all trials (every reported epoch counts), simulated
cost from the surrogate's cumulative ``time`` target. One JSON line per run (method, task,
seed) is appended to ``<out>/<method>.jsonl``; runs already there are skipped, so new methods
can be added to an existing comparison. Summarise with ``summarize_lcbench.py``.

Only the 24 development tasks (``DEV_TASKS``) are run unless ``--allow-heldout`` is given: the
other LCBench tasks are held out for an independent evaluation.

Examples::

    python -m benchmarks.run_lcbench --quick                      # CI-sized smoke run
    python -m benchmarks.run_lcbench --methods baselines           # everything but boil
    python -m benchmarks.run_lcbench --methods boil,boil_noaug --tasks 3945 --seeds 0,1
"""

from __future__ import annotations

import argparse
import atexit
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from dataclasses import dataclass
from dataclasses import field
import importlib
import importlib.util
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any
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
from optuna.trial import FrozenTrial
from optuna.trial import Trial

from benchmarks.lcbench import DEV_TASKS
from benchmarks.lcbench import N_EPOCHS
from benchmarks.lcbench import LCBenchSurrogate
from benchmarks.lcbench import epoch_costs
from benchmarks.lcbench import sample_configs
from benchmarks.lcbench import search_space
from benchmarks.real._harness import BEFORE_FIRST_FULL
from benchmarks.real._harness import parse_seeds


METRIC = "val_balanced_accuracy"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "lcbench24"
QUICK_OUT = Path(tempfile.gettempdir()) / "optuna-boil-lcbench-quick"
DEHB_WORKER = Path(__file__).resolve().with_name("dehb_worker.py")
DEHB_PYTHON_ENV = "OPTUNA_BOIL_DEHB_PYTHON"

Config = dict[str, Any]
MethodFactory = Callable[[int], tuple[BaseSampler, BasePruner]]

METHODS: dict[str, MethodFactory] = {
    "random": lambda seed: (RandomSampler(seed=seed), NopPruner()),
    "tpe": lambda seed: (TPESampler(seed=seed), NopPruner()),
    "tpe_hyperband": lambda seed: (
        TPESampler(seed=seed),
        HyperbandPruner(min_resource=1, max_resource=N_EPOCHS, reduction_factor=3),
    ),
    "random_sh": lambda seed: (
        RandomSampler(seed=seed),
        SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    ),
    "tpe_median": lambda seed: (TPESampler(seed=seed), MedianPruner()),
    "gp": lambda seed: (GPSampler(seed=seed), NopPruner()),
    # Start-up fitted to the budget (benchmarks/PROTOCOL.md): max(3, n_full // 4) random trials
    # for the default budget's n_full = 1000 // 52 = 19 full trainings.
    "tpe_scaled": lambda seed: (TPESampler(seed=seed, n_startup_trials=4), NopPruner()),
    "gp_scaled": lambda seed: (GPSampler(seed=seed, n_startup_trials=4), NopPruner()),
}

# optuna-boil variants: name -> option overrides of ``BOILSampler._configure``. Every variant
# gets ``BOILSampler(seed=seed)`` (then ``_configure(**overrides)``) and
# ``BOILPruner(min_resource=1, max_resource=52)``. Variants are ablations of the current default;
# experiments that lost (other lengthscale priors, run noise, longer looks at decision points,
# BOIL's published score, ...) were removed from the product and live in the git history, their
# numbers in benchmarks/results/ (measured against the default of their time).
BOIL_VARIANTS: dict[str, dict[str, Any]] = {
    "boil": {},
    "boil_no_first_full": BEFORE_FIRST_FULL,
    "boil_no_deliver_best": {"deliver_best": False},
    "boil_no_deliver_new": {"deliver_new": False},
    # The curve weighting fixed at BOIL's (m0, g0) = (0, 1) instead of fitted.
    "boil_fixed_weighting": {"learn_compression": False},
    # 5 random start-up trials instead of 8.
    "boil_few_startup": {"n_startup_trials": 5},
    "boil_noaug": {"augmentation": False},
    "boil_nocost": {"cost_aware": False},
    "boil_no_cashin": {"cash_in": False, "deliver_new": False},
    # The default with an objective that keeps checkpoints: it calls optuna_boil.resume_from and
    # continues a stopped run from its last epoch (the surrogate continues a curve exactly), so
    # only the epochs after it are trained and counted.
    "boil_resume": {},
    # The default before random interleaving (issue 24): every new configuration the model's.
    "boil_no_random": {"random_fraction": 0.0},
}
# Variants whose objective resumes runs (``optuna_boil.resume_from``).
RESUMING = frozenset({"boil_resume"})


def _boil_factory(overrides: Mapping[str, Any]) -> MethodFactory:
    """Factory of one optuna-boil variant.

    Args:
        overrides: Options passed to ``BOILSampler._configure``; empty for the defaults (then
            ``_configure`` is not called, so the default works with any ``BOILSampler``).

    Returns:
        ``seed -> (sampler, pruner)``.
    """

    def make(seed: int) -> tuple[BaseSampler, BasePruner]:
        boil = importlib.import_module("optuna_boil")  # lazy: only boil runs need it
        sampler = boil.BOILSampler(seed=seed)
        if overrides:
            sampler._configure(**overrides)
        pruner = boil.BOILPruner(min_resource=1, max_resource=N_EPOCHS)
        return sampler, pruner

    return make


METHODS.update({name: _boil_factory(overrides) for name, overrides in BOIL_VARIANTS.items()})
DEHB = "dehb"
ALL_METHODS = (*METHODS, DEHB)
BASELINES = tuple(m for m in ALL_METHODS if m not in BOIL_VARIANTS)


@dataclass
class RunSettings:
    """Settings shared by all runs of one invocation."""

    budget: int = 1000
    rec_interval: int = 10
    data_dir: str | None = None
    allow_heldout: bool = False
    dehb_python: str = field(
        default_factory=lambda: os.environ.get(DEHB_PYTHON_ENV, sys.executable)
    )


def check_tasks(tasks: Iterable[str], allow_heldout: bool = False) -> list[str]:
    """Refuse tasks outside the 24 development tasks unless ``allow_heldout``.

    Args:
        tasks: OpenML task ids.
        allow_heldout: Whether held-out tasks may be run (only for the independent evaluation).

    Returns:
        The task ids as strings.

    Raises:
        ValueError: If a task is not in ``DEV_TASKS`` and ``allow_heldout`` is false.
    """
    tasks = [str(t) for t in tasks]
    heldout = [t for t in tasks if t not in DEV_TASKS]
    if heldout and not allow_heldout:
        raise ValueError(
            f"LCBench task(s) {', '.join(heldout)} are held out: only the {len(DEV_TASKS)} "
            "development tasks (DEV_TASKS in benchmarks/lcbench.py) may be run during "
            "development. Pass --allow-heldout (RunSettings.allow_heldout) only for the "
            "independent evaluation."
        )
    return tasks


@dataclass
class Recorder:
    """Global epoch budget of one run and its traces.

    ``trace`` gets ``(epochs_used, sim_time, best_observed, trial)`` whenever the best observed
    value improves; ``complete_trace`` gets ``(epochs_used, sim_time, value, trial)`` whenever
    the best value of a COMPLETE trial (one trained to epoch 52 that returned; for DEHB an
    evaluation at fidelity 52) improves; ``rec_trace`` gets ``(epochs_used, sim_time,
    true_final_value)`` whenever the recommended configuration's true epoch-52 value changes.
    The recommendation is refreshed every ``rec_interval`` epochs and when the budget runs out.
    ``trial_epochs`` counts the epochs each trial trained (its last reported epoch).
    """

    budget: int
    rec_interval: int
    recommend: Callable[[], Mapping[str, Any] | None]
    true_value: Callable[[Mapping[str, Any]], float]
    epochs: int = 0
    sim_time: float = 0.0
    best: float = -math.inf
    trace: list[tuple[int, float, float, int]] = field(default_factory=list)
    best_complete: float = -math.inf
    complete_trace: list[tuple[int, float, float, int]] = field(default_factory=list)
    n_complete: int = 0
    first_complete_epoch: int | None = None
    trial_epochs: dict[int, int] = field(default_factory=dict)
    rec_trace: list[tuple[int, float, float]] = field(default_factory=list)
    recommended: Config | None = None
    recommend_time: float = 0.0

    @property
    def exhausted(self) -> bool:
        """Whether the whole epoch budget has been spent."""
        return self.epochs >= self.budget

    def spend(self, cost: float, value: float | None, trial: int) -> None:
        """Count one trained epoch.

        Args:
            cost: Simulated seconds of this epoch.
            value: Metric observed by the optimiser after this epoch, or ``None``.
            trial: Trial (or evaluation) number that trained the epoch.
        """
        if self.exhausted:
            raise RuntimeError("Epoch budget already spent.")
        self.epochs += 1
        self.sim_time += cost
        self.trial_epochs[trial] = self.trial_epochs.get(trial, 0) + 1
        if value is not None and value > self.best:
            self.best = value
            self.trace.append((self.epochs, self.sim_time, value, trial))
        if self.epochs % self.rec_interval == 0 or self.exhausted:
            self._refresh_recommendation()

    def complete(self, value: float, trial: int) -> None:
        """Count a COMPLETE trial (trained to epoch 52) that has just finished.

        Args:
            value: Its epoch-52 value.
            trial: Its number.
        """
        self.n_complete += 1
        if self.first_complete_epoch is None:
            self.first_complete_epoch = self.epochs
        if value > self.best_complete:
            self.best_complete = value
            self.complete_trace.append((self.epochs, self.sim_time, value, trial))

    def _refresh_recommendation(self) -> None:
        start = time.perf_counter()
        config = self.recommend()
        if config is not None and dict(config) != self.recommended:
            self.recommended = dict(config)
            value = self.true_value(config)
            if not self.rec_trace or value != self.rec_trace[-1][2]:
                self.rec_trace.append((self.epochs, self.sim_time, value))
        self.recommend_time += time.perf_counter() - start


_SURROGATES: dict[str | None, LCBenchSurrogate] = {}
_TIME_REFS: dict[str, float] = {}


def get_surrogate(data_dir: str | None = None) -> LCBenchSurrogate:
    """Return this process's surrogate for ``data_dir`` (loaded once)."""
    if data_dir not in _SURROGATES:
        _SURROGATES[data_dir] = LCBenchSurrogate(data_dir)
    return _SURROGATES[data_dir]


def time_reference(surrogate: LCBenchSurrogate, task: str) -> float:
    """Median simulated time of a full 52-epoch training of 1000 random configurations.

    Used by the summary as the task's time unit, so time axes of tasks can be averaged.
    """
    if task not in _TIME_REFS:
        full = surrogate.predict(task, sample_configs(1000, seed=0), [N_EPOCHS])["time"]
        _TIME_REFS[task] = float(np.median(full))
    return _TIME_REFS[task]


def _suggest(trial: Trial, name: str, dist: BaseDistribution) -> int | float:
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def best_at_max_epoch(study: optuna.Study) -> Config | None:
    """Config of the trial whose value at its last reported epoch is the highest."""
    best: tuple[float, int] | None = None
    params: Config | None = None
    for trial in study.get_trials(deepcopy=False):
        if trial.intermediate_values:
            last = max(trial.intermediate_values)
            key = (trial.intermediate_values[last], last)
            if best is None or key > best:
                best, params = key, trial.params
    return params


def _run_optuna(method: str, task: str, seed: int, settings: RunSettings) -> dict[str, Any]:
    surrogate = get_surrogate(settings.data_dir)
    sampler, pruner = METHODS[method](seed)
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner, study_name=f"{method}-{task}-{seed}"
    )
    space = search_space()
    recommend_fn = getattr(sampler, "recommend", None)

    def recommend() -> Config | None:
        if recommend_fn is None:
            return best_at_max_epoch(study)
        rec = recommend_fn(study)
        return rec.params if isinstance(rec, FrozenTrial) else rec

    recorder = Recorder(
        settings.budget, settings.rec_interval, recommend, lambda c: true_value(surrogate, task, c)
    )
    surrogate_time = 0.0

    def objective(trial: Trial) -> float:
        nonlocal surrogate_time
        if recorder.exhausted:  # not reached: the study stops with the last epoch
            study.stop()
            raise optuna.TrialPruned()
        config = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        start = time.perf_counter()
        curve = surrogate.curve(task, config)
        surrogate_time += time.perf_counter() - start
        values, costs = curve[METRIC], epoch_costs(curve["time"])
        value = math.nan
        first = 1
        if method in RESUMING:
            point = importlib.import_module("optuna_boil").resume_from(trial)
            if point is not None:  # continue that run: its epochs were trained and counted
                first = point.step + 1
        for epoch in range(first, N_EPOCHS + 1):
            value = float(values[epoch - 1])
            trial.report(value, epoch)
            recorder.spend(float(costs[epoch - 1]), value, trial.number)
            if recorder.exhausted:
                study.stop()
                if epoch < N_EPOCHS:
                    raise optuna.TrialPruned()
            elif trial.should_prune():
                raise optuna.TrialPruned()
        return value

    def on_trial_end(_: optuna.Study, trial: FrozenTrial) -> None:
        # COMPLETE = what `study.best_trial` considers: the objective returned (at epoch 52).
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value is not None and trial.last_step == N_EPOCHS
            recorder.complete(trial.value, trial.number)

    start, cpu_start = time.perf_counter(), time.process_time()
    study.optimize(objective, callbacks=[on_trial_end])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = {
        "n_trials": len(states),
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
    }
    assert counts["n_complete"] == recorder.n_complete
    return _record(method, task, seed, recorder, (wall, cpu, surrogate_time), counts, surrogate)


def pipe_request(
    proc: subprocess.Popen[str], stderr: Any, message: Mapping[str, Any], died: str
) -> Any:
    """Send one JSON-lines request to a worker process and return its decoded reply.

    Args:
        proc: The worker, with text-mode pipes for stdin and stdout.
        stderr: The file that receives the worker's stderr (read back when it has died).
        message: The request.
        died: What to say when the worker has died (its stderr's tail is appended).

    Raises:
        RuntimeError: If the worker has died.
    """
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
    except BrokenPipeError:
        line = ""
    if not line:
        stderr.seek(0)
        raise RuntimeError(f"{died} Its stderr:\n{stderr.read()[-3000:]}")
    return json.loads(line)


class _DehbWorker:
    """A long-lived ``dehb_worker.py`` subprocess (one per harness process) on JSON lines."""

    _alive: dict[str, _DehbWorker] = {}

    def __init__(self, python: str) -> None:
        self.python = python
        self._stderr = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            [python, str(DEHB_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    @classmethod
    def get(cls, python: str) -> _DehbWorker:
        """Return the running worker for ``python``, starting one if needed."""
        worker = cls._alive.get(python)
        if worker is None or worker._proc.poll() is not None:
            worker = cls._alive[python] = cls(python)
        return worker

    @classmethod
    def close_all(cls) -> None:
        """End all workers (they exit when their stdin closes)."""
        for worker in cls._alive.values():
            if worker._proc.stdin is not None:
                worker._proc.stdin.close()
            worker._proc.wait(timeout=10)
        cls._alive.clear()

    def call(self, message: Mapping[str, Any]) -> Any:
        """Send one request and return the decoded reply."""
        return pipe_request(
            self._proc,
            self._stderr,
            message,
            f"DEHB worker ({self.python} {DEHB_WORKER.name}) died. It needs `pip install "
            f"dehb==0.1.2` in that Python; set ${DEHB_PYTHON_ENV} or --dehb-python.",
        )


atexit.register(_DehbWorker.close_all)


def _run_dehb(task: str, seed: int, settings: RunSettings) -> dict[str, Any]:
    surrogate = get_surrogate(settings.data_dir)
    space = {
        name: ["int" if isinstance(d, IntDistribution) else "float", d.low, d.high, d.log]
        for name, d in search_space().items()
        if isinstance(d, (IntDistribution, FloatDistribution))
    }
    worker = _DehbWorker.get(settings.dehb_python)
    # A setup request starts a fresh DEHB; the worker's start-up is not counted as overhead.
    setup = {"space": space, "seed": seed, "min_fidelity": 1, "max_fidelity": N_EPOCHS, "eta": 3}
    worker_cpu_start = worker.call(setup)["cpu"]
    start, cpu_start = time.perf_counter(), time.process_time()

    def recommend() -> Config | None:
        config: Config | None = worker.call({"cmd": "incumbent"})["config"]
        return config

    recorder = Recorder(
        settings.budget, settings.rec_interval, recommend, lambda c: true_value(surrogate, task, c)
    )
    surrogate_time, n_evals = 0.0, 0
    while not recorder.exhausted:
        job = worker.call({"cmd": "ask"})
        epochs = min(max(round(job["fidelity"]), 1), N_EPOCHS)
        t0 = time.perf_counter()
        curve = surrogate.curve(task, job["config"])
        surrogate_time += time.perf_counter() - t0
        values, costs = curve[METRIC], epoch_costs(curve["time"])
        # Training from scratch to `epochs` pays every epoch; only the last is observed.
        for e in range(epochs - 1):
            if not recorder.exhausted:
                recorder.spend(float(costs[e]), None, n_evals)
        if not recorder.exhausted:
            value = float(values[epochs - 1])
            worker.call({"cmd": "tell", "fitness": -value, "cost": float(costs[:epochs].sum())})
            recorder.spend(float(costs[epochs - 1]), value, n_evals)
            if epochs == N_EPOCHS:  # a full-fidelity evaluation is DEHB's COMPLETE trial
                recorder.complete(value, n_evals)
        n_evals += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    cpu += worker.call({"cmd": "incumbent"})["cpu"] - worker_cpu_start  # DEHB's own CPU
    # "Pruned": evaluations below fidelity 52, and one cut short by the budget.
    n_complete = recorder.n_complete
    counts = {"n_trials": n_evals, "n_complete": n_complete, "n_pruned": n_evals - n_complete}
    return _record(DEHB, task, seed, recorder, (wall, cpu, surrogate_time), counts, surrogate)


def true_value(surrogate: LCBenchSurrogate, task: str, config: Mapping[str, Any]) -> float:
    """The surrogate's epoch-52 ``val_balanced_accuracy`` of a configuration."""
    return float(surrogate.curve(task, config)[METRIC][-1])


def _record(
    method: str,
    task: str,
    seed: int,
    recorder: Recorder,
    times: tuple[float, float, float],
    counts: dict[str, int],
    surrogate: LCBenchSurrogate,
) -> dict[str, Any]:
    wall, cpu, surrogate_time = times
    y_min, y_star = surrogate.target_range(task, METRIC)
    overhead = wall - surrogate_time - recorder.recommend_time
    return {
        "method": method,
        "task": task,
        "seed": seed,
        "budget": recorder.budget,
        "epochs_used": recorder.epochs,
        "sim_time_used": _round(recorder.sim_time),
        **counts,
        "wall_time_s": _round(wall),
        "cpu_time_s": _round(cpu),
        "surrogate_time_s": _round(surrogate_time),
        "recommend_time_s": _round(recorder.recommend_time),
        "overhead_per_trial_s": _round(overhead / max(counts["n_trials"], 1)),
        "y_star": y_star,
        "y_min": y_min,
        "time_ref": _round(time_reference(surrogate, task)),
        "best_observed": recorder.best,
        "best_complete": recorder.best_complete if recorder.complete_trace else None,
        "first_complete_epoch": recorder.first_complete_epoch,
        "recommended": recorder.recommended,
        "recommended_true_value": recorder.rec_trace[-1][2] if recorder.rec_trace else None,
        "trace": [[e, _round(t), _round(v), n] for e, t, v, n in recorder.trace],
        "complete_trace": [[e, _round(t), _round(v), n] for e, t, v, n in recorder.complete_trace],
        "rec_trace": [[e, _round(t), _round(v)] for e, t, v in recorder.rec_trace],
        # Epochs trained by each trial (its last reported epoch), in trial order.
        "last_epochs": [recorder.trial_epochs[n] for n in sorted(recorder.trial_epochs)],
    }


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def run_one(method: str, task: str, seed: int, settings: RunSettings) -> dict[str, Any]:
    """Run one method on one task with one seed and return its JSON record."""
    check_tasks([task], settings.allow_heldout)
    if method == DEHB:
        return _run_dehb(task, seed, settings)
    if method not in METHODS:
        raise KeyError(f"Unknown method {method!r}; choose from {', '.join(ALL_METHODS)}.")
    return _run_optuna(method, task, seed, settings)


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _init_worker() -> None:
    """Quiet Optuna and keep each worker process single-threaded (torch reads the env var)."""
    _quiet()
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def load_records(out: Path) -> list[dict[str, Any]]:
    """Read all run records in ``out``."""
    records: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.jsonl")):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def run_all(
    methods: Iterable[str],
    tasks: Iterable[str],
    seeds: Iterable[int],
    settings: RunSettings,
    out: Path | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Run every (method, task, seed) not yet recorded in ``out``; return the new records.

    Args:
        methods: Method names (keys of ``METHODS`` or ``"dehb"``).
        tasks: OpenML task ids.
        seeds: Seeds.
        settings: Budget and other shared settings.
        out: Folder for ``<method>.jsonl`` files; ``None`` keeps records in memory only.
        jobs: Worker processes; 1 runs in this process.

    Returns:
        The records of the runs done by this call.

    Raises:
        ValueError: If a task is held out and ``settings.allow_heldout`` is false.
    """
    tasks = check_tasks(tasks, settings.allow_heldout)
    done: set[tuple[str, str, int]] = set()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        done = {
            (r["method"], r["task"], r["seed"])
            for r in load_records(out)
            if r["budget"] == settings.budget
        }
    todo = [(m, t, s) for m in methods for t in tasks for s in seeds if (m, t, s) not in done]
    if done:
        print(f"{len(done)} runs already in {out}; {len(todo)} to do", flush=True)
    records: list[dict[str, Any]] = []

    def finish(record: dict[str, Any]) -> None:
        records.append(record)
        if out is not None:
            with open(out / f"{record['method']}.jsonl", "a") as f:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
        y_star, y_min = record["y_star"], record["y_min"]
        regret = (y_star - record["best_observed"]) / (y_star - y_min)
        complete = record["best_complete"]
        regret_complete = 1.0 if complete is None else (y_star - complete) / (y_star - y_min)
        print(
            f"[{len(records)}/{len(todo)}] {record['method']:<18} task {record['task']:>6} "
            f"seed {record['seed']:>2}  regret {regret:.4f}  complete {regret_complete:.4f}  "
            f"trials {record['n_trials']:>4} ({record['n_complete']:>3} complete)  "
            f"wall {record['wall_time_s']:.1f}s",
            flush=True,
        )

    if jobs <= 1:
        _quiet()
        for job in todo:
            finish(run_one(*job, settings))
    else:
        with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
            futures = [pool.submit(run_one, *job, settings) for job in todo]
            for future in as_completed(futures):
                finish(future.result())
    return records


def _select_methods(spec: str) -> list[str]:
    names: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        if item == "all":
            names += ALL_METHODS
        elif item == "baselines":
            names += BASELINES
        elif item == "variants":  # optuna-boil and all its ablations ("boil" is the default)
            names += BOIL_VARIANTS
        elif item in ALL_METHODS:
            names.append(item)
        else:
            raise SystemExit(f"Unknown method {item!r}; choose from {', '.join(ALL_METHODS)}.")
    return list(dict.fromkeys(names))


def _boil_has_configure() -> bool:
    """Whether the installed optuna_boil's ``BOILSampler`` takes variant overrides."""
    try:
        boil = importlib.import_module("optuna_boil")
    except ImportError:
        return True  # the factory then raises the import error itself
    return hasattr(boil.BOILSampler, "_configure")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods",
        default="all",
        help="comma list of methods, or the groups 'all', 'baselines', 'variants' (optuna-boil "
        "and its ablations) (default: all; "
        "boil variants are dropped from 'all' when optuna_boil is not importable)",
    )
    parser.add_argument(
        "--tasks", help=f"comma list (default: the {len(DEV_TASKS)} development tasks)"
    )
    parser.add_argument(
        "--allow-heldout",
        action="store_true",
        help="allow tasks outside the development tasks (only for the independent evaluation)",
    )
    parser.add_argument("--seeds", help="comma list of seeds or ranges a-b (default: 0-2)")
    parser.add_argument("--budget", type=int, help="epochs per run (default: 1000)")
    parser.add_argument(
        "--quick", action="store_true", help=f"2 tasks, 2 seeds, 200 epochs, out {QUICK_OUT}"
    )
    parser.add_argument("--out", type=Path, help=f"results folder (default: {DEFAULT_OUT})")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--data-dir", help="LCBench surrogate folder")
    parser.add_argument("--dehb-python", help=f"Python with dehb installed (${DEHB_PYTHON_ENV})")
    parser.add_argument("--rec-interval", type=int, default=10, help="epochs between recommends")
    args = parser.parse_args(argv)

    quick = args.quick
    tasks = args.tasks.split(",") if args.tasks else list(DEV_TASKS[:2] if quick else DEV_TASKS)
    seeds = parse_seeds(args.seeds or ("0-1" if quick else "0-2"))
    settings = RunSettings(
        budget=args.budget or (200 if quick else 1000),
        rec_interval=args.rec_interval,
        data_dir=args.data_dir,
        allow_heldout=args.allow_heldout,
    )
    try:
        tasks = check_tasks(tasks, settings.allow_heldout)
    except ValueError as exc:
        parser.error(str(exc))
    if args.dehb_python:
        settings.dehb_python = args.dehb_python
    methods = _select_methods(args.methods)
    if args.methods == "all" and importlib.util.find_spec("optuna_boil") is None:
        print("optuna_boil is not importable: skipping the boil variants", file=sys.stderr)
        methods = [m for m in methods if m not in BOIL_VARIANTS]
    configured = [m for m in methods if BOIL_VARIANTS.get(m)]
    if configured and not _boil_has_configure():
        print(
            "this optuna_boil's BOILSampler has no _configure: skipping " + ", ".join(configured),
            file=sys.stderr,
        )
        methods = [m for m in methods if m not in configured]
    get_surrogate(settings.data_dir)  # fail early with a clear message when data is missing
    out = args.out or (QUICK_OUT if quick else DEFAULT_OUT)
    start = time.perf_counter()
    records = run_all(methods, tasks, seeds, settings, out=out, jobs=args.jobs)
    print(f"{len(records)} runs in {time.perf_counter() - start:.0f}s -> {out}")


if __name__ == "__main__":
    main()

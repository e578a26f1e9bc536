"""DyHPO (syne-tune 0.13.0) on the LCBench surrogate, in the style of ``dehb_worker.py``.

syne-tune 0.13.0 is the last release with ``syne_tune.optimizer.baselines.DyHPO`` (0.14 needs
botorch, 0.16 dropped it) and pins ``numpy<2``, so it lives in its own venv::

    python3 -m venv /tmp/synetune-venv
    /tmp/synetune-venv/bin/pip install "syne-tune[gpsearchers]==0.13.0"

This file has two roles.

* **Worker** (``--serve``, run by the syne-tune Python; imports only the standard library and
  ``syne_tune``): one JSON request per stdin line, one JSON reply per stdout line. The
  scheduler is driven without a trial backend, through ``suggest`` / ``on_trial_result`` /
  ``on_trial_complete``. A request with a ``space`` (re)starts DyHPO::

      {"space": {name: ["int" | "float", low, high, log]}, "seed": 0, "max_t": 52,
       "rung_increment": 1 | null, "probability_sh": 0.25 | null}

  then ``{"cmd": "ask"}`` -> ``{"trial_id": i, "config": {...}, "resume": bool,
  "milestone": m}`` (train trial ``i`` from its last epoch up to epoch ``m``),
  ``{"cmd": "tell", "trial_id": i, "results": [[epoch, value], ...]}`` -> ``{"decision":
  "PAUSE" | "STOP" | "CONTINUE"}`` (the new epochs only; a trial reaching ``max_t`` is
  completed), ``{"cmd": "cpu"}`` -> ``{}``, ``{"cmd": "quit"}``. Every reply also carries
  ``"cpu"``, the worker's CPU seconds so far.

* **Driver** (``--task``, run by the project's Python from the repository root): evaluates
  the surrogate, runs one DyHPO worker and charges the epoch budget like ``run_lcbench.py``
  (every epoch trained counts; a resumed trial only pays its new epochs). It prints one
  ``run_lcbench``-style JSON record and can append it to ``<out>/dyhpo.jsonl``::

      python -m benchmarks.dyhpo_worker --task 3945 --seed 0 --budget 1000 \\
          --data-dir /work/shared/data/yahpo_lcbench \\
          --synetune-python /tmp/synetune-venv/bin/python --out /tmp/dyhpo-results
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any


METHOD = "dyhpo"
SYNETUNE_PYTHON_ENV = "OPTUNA_BOIL_SYNETUNE_PYTHON"
RESOURCE = "epoch"
MAX_RESOURCE = "epochs"
OBJECTIVE = "objective"


# --------------------------------------------------------------------------- worker side


def _plain(config: Mapping[str, Any], names: list[str]) -> dict[str, int | float]:
    """Keep the search-space entries of a syne-tune config as built-in numbers."""
    return {k: (int(config[k]) if isinstance(config[k], int) else float(config[k])) for k in names}


def _make_scheduler(request: Mapping[str, Any]) -> Any:
    """Build a fresh DyHPO scheduler from a setup request."""
    from syne_tune import config_space as cs
    from syne_tune.optimizer.baselines import DyHPO

    space: dict[str, Any] = {}
    for name, (kind, low, high, log) in request["space"].items():
        if kind == "int":
            space[name] = cs.lograndint(low, high) if log else cs.randint(low, high)
        else:
            space[name] = cs.loguniform(low, high) if log else cs.uniform(low, high)
    space[MAX_RESOURCE] = int(request["max_t"])
    kwargs: dict[str, Any] = {}
    if request.get("rung_increment") is not None:
        kwargs["grace_period"] = kwargs["rung_increment"] = int(request["rung_increment"])
    if request.get("probability_sh") is not None:
        kwargs["probability_sh"] = float(request["probability_sh"])
    return DyHPO(
        space,
        metric=OBJECTIVE,
        mode="max",
        resource_attr=RESOURCE,
        max_resource_attr=MAX_RESOURCE,
        random_seed=int(request["seed"]),
        **kwargs,
    )


def serve() -> None:
    """Serve DyHPO requests on stdin/stdout until ``quit`` or the end of stdin."""
    protocol = sys.stdout
    sys.stdout = sys.stderr  # keep library prints out of the protocol
    import logging

    logging.disable(logging.INFO)  # keep syne-tune's warnings (on stderr)
    from syne_tune.backend.trial_status import Trial

    def reply(message: dict[str, Any]) -> None:
        protocol.write(json.dumps({**message, "cpu": time.process_time()}) + "\n")
        protocol.flush()

    scheduler: Any = None
    names: list[str] = []
    max_t = 0
    trials: dict[int, Any] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if "space" in request:
            scheduler = _make_scheduler(request)
            names, max_t, trials = list(request["space"]), int(request["max_t"]), {}
            reply({"ok": True})
        elif request["cmd"] == "ask":
            trial_id = len(trials)
            suggestion = scheduler.suggest(trial_id)
            if suggestion is None:
                reply({"trial_id": None})
                continue
            resume = suggestion.spawn_new_trial_id is False
            if resume:
                trial = trials[suggestion.checkpoint_trial_id]
                trial.config = dict(suggestion.config or trial.config)
            else:
                trial = trials[trial_id] = Trial(
                    trial_id=trial_id, config=dict(suggestion.config), creation_time=None
                )
                scheduler.on_trial_add(trial)
            reply(
                {
                    "trial_id": trial.trial_id,
                    "config": _plain(trial.config, names),
                    "resume": resume,
                    "milestone": int(trial.config.get(MAX_RESOURCE, max_t)),
                }
            )
        elif request["cmd"] == "tell":
            trial = trials[request["trial_id"]]
            decision, result = "CONTINUE", None
            for epoch, value in request["results"]:
                result = {RESOURCE: int(epoch), OBJECTIVE: float(value)}
                decision = scheduler.on_trial_result(trial, result)
            if result is not None and result[RESOURCE] >= max_t:
                scheduler.on_trial_complete(trial, result)
                decision = "STOP"
            reply({"decision": str(decision).upper()})
        elif request["cmd"] == "cpu":
            reply({})
        else:
            break


# --------------------------------------------------------------------------- driver side


class _Worker:
    """A ``dyhpo_worker.py --serve`` subprocess on JSON lines."""

    def __init__(self, python: str, home: str) -> None:
        self.python = python
        self._stderr = tempfile.TemporaryFile("w+")
        env = {**os.environ, "HOME": home, "OMP_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )

    def call(self, message: Mapping[str, Any]) -> Any:
        """Send one request and return the decoded reply.

        Raises:
            RuntimeError: If the worker has died; the message carries its stderr.
        """
        from benchmarks.run_lcbench import pipe_request

        return pipe_request(
            self._proc,
            self._stderr,
            message,
            f"DyHPO worker ({self.python}) died. It needs `pip install "
            f"'syne-tune[gpsearchers]==0.13.0'`; set ${SYNETUNE_PYTHON_ENV} or "
            "--synetune-python.",
        )

    def close(self) -> str:
        """End the worker (it exits when its stdin closes).

        Returns:
            The worker's stderr (syne-tune's warnings).
        """
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._stderr.seek(0)
        return self._stderr.read()


def run_dyhpo(
    task: str,
    seed: int,
    budget: int = 1000,
    data_dir: str | None = None,
    python: str | None = None,
    rung_increment: int | None = None,
    probability_sh: float | None = None,
    progress_every: int = 0,
    allow_heldout: bool = False,
) -> dict[str, Any]:
    """Run DyHPO once on one LCBench task and return a ``run_lcbench``-style record.

    The recommendation (``recommended``) is the trial with the highest value at its last
    trained epoch (ties: the larger epoch), as for the Optuna methods in ``run_lcbench.py``.

    Args:
        task: OpenML task id (one of the development tasks unless ``allow_heldout``).
        seed: Seed of DyHPO.
        budget: Epochs per run, counted over all trials.
        data_dir: LCBench surrogate folder.
        python: Python with syne-tune 0.13.0; default ``$OPTUNA_BOIL_SYNETUNE_PYTHON`` or this
            Python.
        rung_increment: Epochs per DyHPO step (grace period too); ``None`` keeps syne-tune's
            default (2).
        probability_sh: Probability of a successive-halving promotion; ``None`` keeps
            syne-tune's default (0.25).
        progress_every: Print timing to stderr every this many decisions (0: never).
        allow_heldout: Allow a held-out task (only for the independent evaluation, as in
            ``run_lcbench --allow-heldout``).

    Returns:
        The record, with extra fields ``method_options``, ``n_decisions``, ``n_resumed``,
        ``decision_time_by_epochs`` (mean seconds per decision in windows of 100 epochs),
        ``regret`` and ``regret_complete``.
    """
    from optuna.distributions import FloatDistribution
    from optuna.distributions import IntDistribution

    from benchmarks import run_lcbench as rl
    from benchmarks.lcbench import N_EPOCHS
    from benchmarks.lcbench import epoch_costs
    from benchmarks.lcbench import search_space

    rl.check_tasks([task], allow_heldout)
    surrogate = rl.get_surrogate(data_dir)
    space = {}
    for name, d in search_space().items():
        assert isinstance(d, (IntDistribution, FloatDistribution))
        space[name] = ["int" if isinstance(d, IntDistribution) else "float", d.low, d.high, d.log]
    python = python or os.environ.get(SYNETUNE_PYTHON_ENV, sys.executable)
    with tempfile.TemporaryDirectory(prefix="dyhpo-home-") as home:
        worker = _Worker(python, home)
        try:
            setup = {
                "space": space,
                "seed": seed,
                "max_t": N_EPOCHS,
                "rung_increment": rung_increment,
                "probability_sh": probability_sh,
            }
            worker_cpu_start = worker.call(setup)["cpu"]
            start, cpu_start = time.perf_counter(), time.process_time()
            last: dict[int, tuple[float, int]] = {}  # trial -> (value, epoch) at its last epoch
            configs: dict[int, dict[str, Any]] = {}
            curves: dict[int, tuple[Any, Any]] = {}

            def recommend() -> dict[str, Any] | None:
                if not last:
                    return None
                return configs[max(last, key=lambda t: last[t])]

            recorder = rl.Recorder(
                budget, 10, recommend, lambda c: rl.true_value(surrogate, task, c)
            )
            surrogate_time, n_decisions, n_resumed = 0.0, 0, 0
            window: dict[int, list[float]] = {}
            while not recorder.exhausted:
                t0 = time.perf_counter()
                job = worker.call({"cmd": "ask"})
                ask_time = time.perf_counter() - t0
                window.setdefault(recorder.epochs // 100 * 100, []).append(ask_time)
                n_decisions += 1
                if job["trial_id"] is None:
                    raise RuntimeError("DyHPO made no suggestion.")
                trial = int(job["trial_id"])
                n_resumed += bool(job["resume"])
                if trial not in curves:
                    configs[trial] = job["config"]
                    t0 = time.perf_counter()
                    curve = surrogate.curve(task, job["config"])
                    surrogate_time += time.perf_counter() - t0
                    curves[trial] = (curve[rl.METRIC], epoch_costs(curve["time"]))
                values, costs = curves[trial]
                done = recorder.trial_epochs.get(trial, 0)
                results = []
                for epoch in range(done + 1, min(int(job["milestone"]), N_EPOCHS) + 1):
                    if recorder.exhausted:
                        break
                    value = float(values[epoch - 1])
                    recorder.spend(float(costs[epoch - 1]), value, trial)
                    last[trial] = (value, epoch)
                    results.append([epoch, value])
                    if epoch == N_EPOCHS:
                        recorder.complete(value, trial)
                if results and not recorder.exhausted:
                    worker.call({"cmd": "tell", "trial_id": trial, "results": results})
                if progress_every and n_decisions % progress_every == 0:
                    print(
                        f"decisions {n_decisions} epochs {recorder.epochs} trials {len(curves)} "
                        f"last ask {ask_time:.3f}s wall {time.perf_counter() - start:.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            cpu += worker.call({"cmd": "cpu"})["cpu"] - worker_cpu_start  # DyHPO's own CPU
        finally:
            log = worker.close()
            if progress_every and log.strip():
                print(f"worker stderr:\n{log[-3000:]}", file=sys.stderr)
    n_trials = len(curves)
    counts = {
        "n_trials": n_trials,
        "n_complete": recorder.n_complete,
        "n_pruned": n_trials - recorder.n_complete,
    }
    record = rl._record(
        METHOD, task, seed, recorder, (wall, cpu, surrogate_time), counts, surrogate
    )
    y_star, y_min = record["y_star"], record["y_min"]
    complete = record["best_complete"]
    record.update(
        method_options={"rung_increment": rung_increment, "probability_sh": probability_sh},
        n_decisions=n_decisions,
        n_resumed=n_resumed,
        decision_time_by_epochs={
            str(k): round(sum(v) / len(v), 4) for k, v in sorted(window.items())
        },
        regret=(y_star - record["best_observed"]) / (y_star - y_min),
        regret_complete=None if complete is None else (y_star - complete) / (y_star - y_min),
    )
    return record


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``--serve`` for the worker, otherwise one driver run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="run as the JSON-lines worker")
    parser.add_argument("--task", default="3945", help="OpenML task id (default: 3945)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=1000, help="epochs per run")
    parser.add_argument("--data-dir", help="LCBench surrogate folder")
    parser.add_argument(
        "--synetune-python", help=f"Python with syne-tune 0.13.0 (${SYNETUNE_PYTHON_ENV})"
    )
    parser.add_argument("--rung-increment", type=int, help="epochs per step (syne-tune: 2)")
    parser.add_argument("--probability-sh", type=float, help="SH promotion rate (syne-tune: 0.25)")
    parser.add_argument(
        "--allow-heldout",
        action="store_true",
        help="allow a task outside the development tasks (only for the independent evaluation)",
    )
    parser.add_argument(
        "--progress-every", type=int, default=0, help="decisions per progress line"
    )
    parser.add_argument("--out", type=Path, help="append the record to <out>/dyhpo.jsonl")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return
    from benchmarks import run_lcbench as rl

    try:
        rl.check_tasks([args.task], args.allow_heldout)
    except ValueError as exc:
        parser.error(str(exc))
    record = run_dyhpo(
        args.task,
        args.seed,
        budget=args.budget,
        data_dir=args.data_dir,
        python=args.synetune_python,
        rung_increment=args.rung_increment,
        probability_sh=args.probability_sh,
        progress_every=args.progress_every,
        allow_heldout=args.allow_heldout,
    )
    line = json.dumps(record, separators=(",", ":"))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / f"{METHOD}.jsonl", "a") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

"""Worker process for the distributed tests (run as a script, one study per call).

``python _dist_worker.py '<json config>'`` opens the study described by ``config["study"]``
(see :class:`StudySpec`), runs trials with :class:`~optuna_boil.BOILSampler` and
:class:`~optuna_boil.BOILPruner` on a cheap synthetic learning curve, and appends every event
(trial start, each report, the end state) as one JSON line to ``config["log"]``, flushed at
once, so that the parent can compare what the worker reported with what the storage holds, and
can see how far a worker got before killing it.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import random
import sys
import time
from typing import Any
import warnings

import optuna
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback


@dataclass(frozen=True)
class StudySpec:
    """Where a test study lives; plain strings, so it crosses process boundaries as JSON."""

    backend: str  # "postgresql", "mariadb", "sqlite" or "journal"
    location: str  # an SQLAlchemy URL, or the journal file's path
    study_name: str

    def storage(self, heartbeat: bool = False, inherit: bool = False) -> BaseStorage | str:
        """The storage: a URL for plain RDB use, a heartbeat RDBStorage, or a JournalStorage."""
        if self.backend == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            return JournalStorage(JournalFileBackend(self.location))
        if not heartbeat:
            return self.location
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                self.location,
                heartbeat_interval=1,
                grace_period=2,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=1, inherit_intermediate_values=inherit
                ),
            )

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def curve_value(x: float, lr: float, step: int) -> float:
    """Deterministic synthetic learning curve: quality times a saturating progress term."""
    quality = 1.0 - (x - 0.3) ** 2 - 0.05 * (math.log10(lr) + 2.0) ** 2
    return quality * (1.0 - math.exp(-step / (1.0 + 4.0 * x)))


class Log:
    """Append-only JSON-lines event log, flushed and fsynced per line (survives SIGKILL)."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, **event: Any) -> None:
        self._f.write(json.dumps(event) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_objective(config: dict[str, Any], log: Log) -> Any:
    from optuna_boil import get_budget

    max_resource = int(config["max_resource"])
    noise = float(config.get("noise", 0.0))
    kill_at = config.get("wait_for_kill_at_step")
    step_sleep = float(config.get("step_sleep", 0.0))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        budget = get_budget(trial)
        log.write(event="start", number=trial.number, params={"x": x, "lr": lr}, budget=budget)
        rng = random.Random(f"{os.getpid()}-{trial.number}")
        value = float("nan")
        for step in range(1, max_resource + 1):
            value = curve_value(x, lr, step) + noise * rng.gauss(0.0, 1.0)
            trial.report(value, step)
            log.write(event="report", number=trial.number, step=step, value=value)
            if kill_at is not None and step == kill_at:
                log.write(event="waiting_for_kill", number=trial.number, pid=os.getpid())
                time.sleep(600)
            if step_sleep:
                time.sleep(step_sleep)
            if trial.should_prune():
                log.write(event="end", number=trial.number, state="PRUNED", value=value)
                raise optuna.TrialPruned()
        log.write(event="end", number=trial.number, state="COMPLETE", value=value)
        return value

    return objective


def load(config: dict[str, Any], spec: StudySpec) -> optuna.Study:
    from optuna_boil import BOILPruner
    from optuna_boil import BOILSampler

    storage = spec.storage(
        heartbeat=bool(config.get("heartbeat")), inherit=bool(config.get("inherit"))
    )
    return optuna.load_study(
        study_name=spec.study_name,
        storage=storage,
        sampler=BOILSampler(
            seed=int(config["seed"]),
            n_startup_trials=int(config["n_startup_trials"]),
            startup_budget=config.get("startup_budget"),
        ),
        pruner=BOILPruner(
            min_resource=int(config["min_resource"]), max_resource=int(config["max_resource"])
        ),
    )


def run(config: dict[str, Any]) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = StudySpec(**config["study"])
    log = Log(config["log"])
    study = load(config, spec)
    log.write(event="ready", pid=os.getpid())
    study.optimize(make_objective(config, log), n_trials=int(config["n_trials"]))
    if config.get("copy_to"):
        # Restart test: snapshot the study, then let this process make one more decision with
        # the sampler and pruner objects that made all the previous ones.
        optuna.copy_study(
            from_study_name=spec.study_name,
            from_storage=spec.location,
            to_storage=config["copy_to"],
        )
        log.write(event="copied")
        study.optimize(make_objective(config, log), n_trials=1)
    log.write(event="done", pid=os.getpid())


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(json.loads(sys.argv[1]))

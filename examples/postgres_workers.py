"""Run several BOIL workers (processes or machines) on one PostgreSQL study.

All of BOIL's state (budgets, published parameters, the model fit) lives in the storage, so every
worker only needs the same storage URL, study name and sampler/pruner settings. Running trials
count as pending at their budget, so workers do not pick the same point. Each worker here tunes a
scikit-learn ``SGDClassifier`` on the digits data, one ``partial_fit`` epoch per step.

Start workers yourself (see ``docs/parallel.md``), e.g. in four shells or on four machines::

    python examples/postgres_workers.py --n-trials 10

or let this script spawn them as processes and wait for them::

    python examples/postgres_workers.py --workers 4 --n-trials 10

The storage uses Optuna's heartbeat, so trials of a worker that dies are marked FAIL and retried
once by another worker (``RetryHeartbeatStaleTrialCallback``). Needs a PostgreSQL driver:
``pip install psycopg2-binary`` (or ``psycopg[binary]``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import recommend


DEFAULT_STORAGE = "postgresql://postgres@127.0.0.1:5432/test"


def normalise_url(url: str) -> str:
    """Pick the installed PostgreSQL driver for a plain ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; with only ``psycopg2-binary`` installed,
    the URL must say ``postgresql+psycopg2://``. URLs naming a driver are left alone.
    """
    if not url.startswith("postgresql://"):
        return url
    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://") :]
    return url


def make_storage(url: str) -> RDBStorage:
    """An RDB storage with a heartbeat, so trials of crashed workers are failed and retried."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            normalise_url(url),
            heartbeat_interval=10,
            grace_period=30,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def make_study(args: argparse.Namespace) -> optuna.Study:
    """Create the study, or load it when another worker created it first."""
    return optuna.create_study(
        study_name=args.study_name,
        storage=make_storage(args.storage),
        load_if_exists=True,
        direction="maximize",
        # Every worker must use the same seed and settings: decisions are derived from them and
        # from the storage, so any worker (or a restarted one) decides the same way.
        sampler=BOILSampler(seed=args.seed, n_startup_trials=args.n_startup_trials),
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )


def objective(trial: optuna.Trial, data: tuple[np.ndarray, ...], max_epochs: int) -> float:
    """Train an SGD classifier epoch by epoch, reporting validation accuracy."""
    X_train, X_val, y_train, y_val = data
    model = SGDClassifier(
        alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        eta0=trial.suggest_float("eta0", 1e-4, 1.0, log=True),
        power_t=trial.suggest_float("power_t", 0.1, 0.9),
        learning_rate="invscaling",
        loss="log_loss",
        random_state=trial.number,
    )
    classes = np.unique(y_train)
    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(X_train, y_train, classes=classes)
        accuracy = float(model.score(X_val, y_val))
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def run_worker(args: argparse.Namespace) -> None:
    """Run ``args.n_trials`` trials of the shared study in this process."""
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    data = (scaler.transform(X_train), scaler.transform(X_val), y_train, y_val)
    study = make_study(args)
    study.optimize(lambda t: objective(t, data, args.max_epochs), n_trials=args.n_trials)
    print(f"worker {os.getpid()}: done, study has {len(study.trials)} trials", flush=True)


def spawn_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """Start ``args.workers`` copies of this script as worker processes and wait for them."""
    make_study(args)  # Create the study once, before the workers race to create it.
    child_argv = [a for a in argv if not a.startswith("--workers")]
    if "--workers" in argv:  # Drop the value of a "--workers N" pair as well.
        i = argv.index("--workers")
        child_argv = argv[:i] + argv[i + 2 :]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    procs = [
        subprocess.Popen([sys.executable, os.path.abspath(__file__), *child_argv], env=env)
        for _ in range(args.workers)
    ]
    codes = [p.wait() for p in procs]
    print(f"{args.workers} workers finished with exit codes {codes}")
    return max(codes, key=abs)


def main() -> None:
    """Parse the command line; run one worker here or spawn several."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="an RDB storage URL")
    parser.add_argument("--study-name", default="boil-postgres-workers")
    parser.add_argument("--workers", type=int, default=1, help="processes to spawn (1: run here)")
    parser.add_argument("--n-trials", type=int, default=10, help="trials per worker")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--n-startup-trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 trials per worker, 4 epochs")
    args = parser.parse_args()
    if args.smoke:
        args.n_trials, args.max_epochs, args.n_startup_trials = 2, 4, 2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.workers > 1:
        code = spawn_workers(args, sys.argv[1:])
        if code != 0:
            sys.exit(code)
    else:
        run_worker(args)
    study = optuna.load_study(study_name=args.study_name, storage=normalise_url(args.storage))
    if args.workers > 1:
        states = [t.state.name for t in study.trials]
        print(f"{len(states)} trials: " + ", ".join(f"{s} {states.count(s)}" for s in set(states)))
        trial, predicted, std = recommend(study)[:3]
        print(
            f"Recommended: trial {trial.number} (predicted accuracy {predicted:.4f} ± {std:.4f})"
        )
        print(f"  {trial.params}")


if __name__ == "__main__":
    main()

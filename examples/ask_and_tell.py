"""Use BOIL through Optuna's ask-and-tell interface, without ``study.optimize``.

The training loop stays in your code: ``study.ask()`` creates a trial, the ``suggest_*`` calls
let BOIL choose the configuration and its epoch budget, the loop reports validation accuracy
after every epoch of a scikit-learn ``SGDClassifier`` (``partial_fit``), and the trial is told
PRUNED when ``trial.should_prune()`` says its budget is used up (Optuna then records its last
reported value), or told its final value when it trained for ``--max-epochs``.

    python examples/ask_and_tell.py                 # 40 trials, up to 40 epochs each
    python examples/ask_and_tell.py --smoke         # 3 trials, up to 5 epochs (seconds)
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import optuna
from optuna.trial import TrialState
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend


def load_data() -> tuple[np.ndarray, ...]:
    """Standardised digits, split 70/30 into training and validation sets."""
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


def run_one(study: optuna.Study, data: tuple[np.ndarray, ...], max_epochs: int) -> None:
    """Ask for one trial, train it epoch by epoch and tell the study how it ended."""
    X_train, X_val, y_train, y_val = data
    trial = study.ask()
    alpha = trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
    eta0 = trial.suggest_float("eta0", 1e-4, 1.0, log=True)
    loss = trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"])
    # None when no budget applies yet (e.g. max_resource="auto" before any trial finished).
    budget = get_budget(trial) or max_epochs
    print(f"trial {trial.number}: budget {budget} epochs, {trial.params}")

    model = SGDClassifier(
        alpha=alpha, eta0=eta0, loss=loss, learning_rate="invscaling", random_state=trial.number
    )
    classes = np.unique(y_train)
    rng = np.random.default_rng(trial.number)
    accuracy = 0.0
    try:
        for epoch in range(1, max_epochs + 1):
            order = rng.permutation(len(X_train))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(X_train[order], y_train[order], classes=classes)
            accuracy = float(model.score(X_val, y_val))
            trial.report(accuracy, epoch)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                print(f"  pruned after {epoch} epochs at accuracy {accuracy:.4f}")
                return
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    study.tell(trial, accuracy)
    print(f"  complete at accuracy {accuracy:.4f}")


def main() -> None:
    """Parse the command line and run the ask-and-tell loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///ask_and_tell.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 trials, up to 5 epochs")
    args = parser.parse_args()
    if args.smoke:
        args.n_trials, args.max_epochs = 3, 5

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data()
    study = optuna.create_study(
        study_name="boil-ask-and-tell",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(8, args.n_trials)),
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )
    for _ in range(args.n_trials):
        run_one(study, data, args.max_epochs)

    trial, predicted, std = recommend(study)[:3]
    print(
        f"Recommended: trial {trial.number} (predicted accuracy {predicted:.4f} ± {std:.4f}) "
        f"{trial.params}"
    )


if __name__ == "__main__":
    main()

"""Tell BOIL what training really costs with ``report_cost``, when steps are not equally priced.

By default BOIL counts cost in steps. Here an epoch of a wide network costs more than an epoch of
a narrow one: a simulated network's epoch costs ``0.5 + width / 64`` GPU-seconds. The objective
reports the *cumulative* cost after every ``trial.report`` with ``optuna_boil.report_cost``, so
BOIL's cost model learns how cost depends on the hyperparameters and the budget, and its
acquisition (expected improvement per unit of cost) trades accuracy against GPU time.

The learning curves are simulated (no training happens), so the example runs in seconds per
trial and shows only the bookkeeping. In a real objective, report measured cost instead (GPU
seconds, tokens, money).

    python examples/cost_reporting.py               # 30 trials, up to 40 epochs each
    python examples/cost_reporting.py --smoke       # 3 trials, up to 8 epochs
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import optuna

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import recommend
from optuna_boil import report_cost


def epoch_cost(width: int) -> float:
    """Simulated GPU-seconds of one epoch of a network of the given width."""
    return 0.5 + width / 64.0


def simulated_accuracy(width: int, lr: float, epoch: int, rng: np.random.Generator) -> float:
    """A noisy, saturating learning curve: wide networks end higher, good lrs converge faster."""
    ceiling = 0.80 + 0.15 * (1.0 - math.exp(-width / 128.0))
    speed = 2.0 + 6.0 * abs(math.log10(lr) + 2.0)  # lr = 1e-2 learns fastest.
    accuracy = ceiling * (1.0 - math.exp(-epoch / speed))
    return float(accuracy + rng.normal(0.0, 0.005))


def objective(trial: optuna.Trial, max_epochs: int) -> float:
    """Simulate training; report accuracy and the cumulative cost after every epoch."""
    width = trial.suggest_int("width", 8, 1024, log=True)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    rng = np.random.default_rng(trial.number)
    cost = 0.0
    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        accuracy = simulated_accuracy(width, lr, epoch, rng)
        cost += epoch_cost(width)
        trial.report(accuracy, epoch)
        report_cost(trial, cost)  # Cumulative, after the report of the same step.
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def main() -> None:
    """Parse the command line, run the study and summarise where the GPU time went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///cost.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 trials, up to 8 epochs")
    args = parser.parse_args()
    if args.smoke:
        args.n_trials, args.max_epochs = 3, 8

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="boil-cost-reporting",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(8, args.n_trials)),
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )
    study.optimize(lambda t: objective(t, args.max_epochs), n_trials=args.n_trials)

    total = 0.0
    for t in study.trials:
        cost = (t.last_step or 0) * epoch_cost(t.params["width"])
        total += cost
        print(
            f"trial {t.number:3d} width {t.params['width']:4d} lr {t.params['lr']:.2e} "
            f"epochs {t.last_step:3d} cost {cost:7.1f}s accuracy {t.value:.4f} {t.state.name}"
        )
    trial, predicted, std = recommend(study)[:3]
    print(f"Total simulated GPU time: {total:.0f}s")
    print(
        f"Recommended: trial {trial.number} (predicted accuracy {predicted:.4f} ± {std:.4f}) "
        f"{trial.params}"
    )


if __name__ == "__main__":
    main()

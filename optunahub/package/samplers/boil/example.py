"""Tune a toy learning curve with BOIL loaded from OptunaHub.

Each trial reports a (simulated) validation accuracy after every epoch; BOIL chooses the
hyperparameters *and* how many epochs each trial trains, and stops it at that budget unless
continuing it is worth more per unit of cost than starting a new configuration.
"""

from __future__ import annotations

import math

import optuna

import optunahub


module = optunahub.load_module("samplers/boil")
MAX_EPOCHS = 30


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    width = trial.suggest_int("width", 16, 256, log=True)
    budget = module.get_budget(trial)  # Epochs BOIL allows this trial (grows if it continues).
    print(f"Trial {trial.number}: budget {budget} epochs")
    accuracy = 0.0
    for epoch in range(1, MAX_EPOCHS + 1):
        ceiling = 0.95 - 0.05 * (math.log10(lr) + 2.0) ** 2 - 8.0 / width
        accuracy = ceiling * (1.0 - math.exp(-epoch / 5.0))
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


if __name__ == "__main__":
    study = optuna.create_study(
        direction="maximize",
        sampler=module.BOILSampler(seed=0),
        pruner=module.BOILPruner(min_resource=1, max_resource=MAX_EPOCHS),
    )
    study.optimize(objective, n_trials=20)
    best = study.best_trial  # trained to MAX_EPOCHS
    print(f"Best fully trained: {best.params} (value {best.value:.3f})")
    rec = module.recommend(study)
    print(f"Model's choice: trial {rec.trial.number} ({rec.value:.3f} ± {rec.std:.3f})")

"""OptunaHub entry point for BOIL: re-exports the sampler, pruner and helpers of ``optuna_boil``.

The implementation lives in the ``optuna-boil`` package (``pip install optuna-boil``), so that
the OptunaHub module and the pip package never diverge.
"""

from __future__ import annotations

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import get_budget
from optuna_boil import recommend
from optuna_boil import report_cost


__all__ = ["BOILPruner", "BOILSampler", "get_budget", "recommend", "report_cost"]

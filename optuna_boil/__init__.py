"""BOIL (Bayesian Optimization for Iterative Learning) for Optuna."""

from optuna_boil._dashboard import publish_to_dashboard
from optuna_boil._helpers import Recommendation
from optuna_boil._helpers import Resume
from optuna_boil._helpers import get_budget
from optuna_boil._helpers import recommend
from optuna_boil._helpers import report_cost
from optuna_boil._helpers import resume_from
from optuna_boil._pruner import BOILPruner
from optuna_boil._sampler import BOILSampler


__version__ = "0.1.0"

__all__ = [
    "BOILPruner",
    "BOILSampler",
    "Recommendation",
    "Resume",
    "get_budget",
    "publish_to_dashboard",
    "recommend",
    "report_cost",
    "resume_from",
    "__version__",
]

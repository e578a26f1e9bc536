"""Acquisition functions over encoded ``(x, u)`` rows, as small callables.

* :class:`AugmentedLogEI`: the log expected improvement of the score at the full budget,
  weighted by how much a run of ``x`` to ``u`` tells about it (augmented EI, Huang et al., 2006):
  ``log EI_T(x) + log |corr(f(x, u), f(x, T))| + log(1 - s_n / sqrt(s^2(x, u) + s_n^2))``.
* :class:`LogEIAtFull`: the log expected improvement of *having* ``x`` trained to the full
  budget over a given incumbent (what a user of the study gets).
* :class:`CostAware`: any of them minus the log cost of the run (value per unit of cost), as
  BoTorch keeps cost apart from the acquisition.

``log EI`` is computed stably for very negative standardised improvements (Ament et al., 2023,
"Unexpected improvements to expected improvement"), so it never returns ``-inf``.
"""

from __future__ import annotations

from collections.abc import Callable
import math

import numpy as np
import torch

from optuna_boil._model.gp import Posterior


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2)
_SQRT2 = math.sqrt(2.0)

Acquisition = Callable[[torch.Tensor], torch.Tensor]


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate on both sides of ``-log 2``."""
    return torch.where(
        x > -math.log(2.0),
        torch.log(-torch.expm1(x)),
        torch.log1p(-torch.exp(x)),
    )


def log_h(z: torch.Tensor) -> torch.Tensor:
    """``log(phi(z) + z Phi(z))`` without overflow or ``-inf`` for any finite ``z``."""
    z_hi = z.clamp_min(-1.0)
    upper = torch.log(
        torch.exp(-0.5 * z_hi.pow(2) - _LOG_SQRT_2PI) + z_hi * torch.special.ndtr(z_hi)
    )
    z_lo = z.clamp_max(-1.0)
    lower = (
        -0.5 * z_lo.pow(2)
        - _LOG_SQRT_2PI
        + _log1mexp(torch.log(torch.special.erfcx(-z_lo / _SQRT2) * (-z_lo)) + _LOG_SQRT_PI_2)
    )
    return torch.where(z > -1.0, upper, lower)


def log_ei(mean: torch.Tensor, var: torch.Tensor, best: float) -> torch.Tensor:
    """Log expected improvement over ``best`` of a Gaussian with ``mean`` and ``var``."""
    std = var.sqrt()
    return log_h((mean - best) / std) + std.log()


def log_information(var: torch.Tensor, noise: torch.Tensor | float) -> torch.Tensor:
    """``log(1 - s_n / sqrt(s^2 + s_n^2))`` for latent variance ``s^2 = var``, noise ``s_n^2``.

    Computed as ``log r - log sqrt(1 + r) - log(1 + sqrt(1 + r))`` with ``r = var / noise``,
    which stays accurate when the noise dominates (``r -> 0``).
    """
    r = (var / noise).clamp_min(1e-300)
    root = torch.sqrt(1.0 + r)
    return r.log() - root.log() - torch.log1p(root)


class AugmentedLogEI:
    """``log EI_T(x) + log |corr(f(x, u), f(x, 1))| + log_information(var(x, u))``.

    Args:
        posterior: The GP posterior.
        best: Incumbent at the full budget (standardised units).
    """

    def __init__(self, posterior: Posterior, best: float) -> None:
        self.posterior = posterior
        self.best = best

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        mean_f, var_f, var, cov = self.posterior.predict_pair(X, 1.0)
        return (
            log_ei(mean_f, var_f, self.best)
            + 0.5 * (cov.pow(2) / (var * var_f)).clamp(1e-300, 1.0).log()
            + log_information(var, self.posterior.noise)
        )


class LogEIAtFull:
    """Log expected improvement at the full budget over ``incumbent``; the step column of ``X``
    is ignored (the value is that of a configuration trained to the end).

    Args:
        posterior: The GP posterior.
        incumbent: Best value of a fully trained configuration (standardised units).
    """

    def __init__(self, posterior: Posterior, incumbent: float) -> None:
        self.posterior = posterior
        self.incumbent = incumbent

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        full = torch.cat([X[:, :-1], torch.ones_like(X[:, -1:])], dim=-1)
        mean, var = self.posterior.predict(full)
        return log_ei(mean, var, self.incumbent)


class CostAware:
    """An acquisition per unit of cost: ``acqf(X) - log cost(X)``; NaN becomes ``-inf`` (a
    numerically broken point is never chosen).

    Args:
        acqf: The acquisition.
        cost: Cost of each row, ``(m, D) -> (m,)``, positive.
    """

    def __init__(self, acqf: Acquisition, cost: Acquisition) -> None:
        self.acqf = acqf
        self.cost = cost

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        value = self.acqf(X) - self.cost(X).log()
        return torch.where(torch.isnan(value), torch.full_like(value, -np.inf), value)

"""Selective augmentation: which points of the observed curves join the GP.

BOIL adds a few points of each observed curve (its score truncated at earlier steps) as extra GP
observations, chosen greedily where the posterior is most uncertain. Compared with the reference
code this version

* checks the repeat rule per curve (a point already in the GP is never a candidate again), so
  every curve can be augmented, not just the first one;
* checks the condition number *with the candidate added*: by Cauchy interlacing, adding a point
  never lowers ``cond(K + noise I)``, so the longest greedy prefix with
  ``ln cond <= max_log_cond`` is found by bisection;
* caps the points per curve (``int(10 * scaled length)``, as in the paper) and the total GP size.

Shapes: ``K_xx`` is the ``(n, n)`` covariance of the points already in the GP, ``K_xc`` the
``(n, m)`` covariance with the ``m`` candidates and ``K_cc`` the ``(m, m)`` candidate covariance.
"""

from __future__ import annotations

import numpy as np
import torch


def per_curve_cap(scaled_length: float) -> int:
    """Points a curve of the given scaled length (in ``[0, 1]``) may add: ``int(10 * length)``."""
    return int(10.0 * max(min(scaled_length, 1.0), 0.0))


def log_condition(K: torch.Tensor) -> float:
    """Natural log of the 2-norm condition number of a symmetric positive matrix."""
    eig = torch.linalg.eigvalsh(K)
    return float(torch.log(eig[-1] / eig[0].clamp_min(1e-300)))


def select(
    K_xx: torch.Tensor,
    K_xc: torch.Tensor,
    K_cc: torch.Tensor,
    noise: float,
    owner: np.ndarray,
    caps: np.ndarray,
    max_new: int,
    max_log_cond: float = 15.0,
    min_std: float = 1.5e-3,
) -> list[int]:
    """Greedy maximum-variance selection of candidates, in the order they were chosen.

    Args:
        K_xx: Covariance of the current GP inputs (without noise).
        K_xc: Cross-covariance of current inputs and candidates.
        K_cc: Covariance of the candidates (without noise).
        noise: Observation noise variance (standardised units).
        owner: Curve index of each candidate, shape ``(m,)``.
        caps: Maximum number of points per curve, indexed by curve.
        max_new: Maximum number of points to add in total.
        max_log_cond: Upper bound on ``ln cond(K + noise I)`` of the augmented matrix.
        min_std: Stop once the largest posterior standard deviation falls below this.

    Returns:
        Indices of the chosen candidates.
    """
    m = K_cc.shape[0]
    if m == 0 or max_new <= 0:
        return []
    n = K_xx.shape[0]
    eye = torch.eye(n, dtype=K_xx.dtype)
    L = torch.linalg.cholesky(K_xx + noise * eye)
    V = torch.linalg.solve_triangular(L, K_xc, upper=False)
    S = K_cc - V.T @ V  # posterior covariance of the candidates
    var = S.diagonal().clone()
    used = np.zeros(int(caps.size), dtype=np.int64)
    available = torch.ones(m, dtype=torch.bool)
    chosen: list[int] = []
    while len(chosen) < max_new:
        blocked = torch.from_numpy(used[owner] >= caps[owner])
        score = torch.where(available & ~blocked, var, torch.full_like(var, -np.inf))
        j = int(torch.argmax(score))
        if not np.isfinite(float(score[j])) or float(score[j]) < min_std**2:
            break
        chosen.append(j)
        available[j] = False
        used[owner[j]] += 1
        s = S[:, j].clone()
        S = S - torch.outer(s, s) / (s[j] + noise)
        var = S.diagonal().clone()
    if not chosen:
        return []

    def log_cond_with(k: int) -> float:
        idx = torch.as_tensor(chosen[:k])
        top = torch.cat([K_xx, K_xc[:, idx]], dim=1)
        bottom = torch.cat([K_xc[:, idx].T, K_cc[idx][:, idx]], dim=1)
        full = torch.cat([top, bottom], dim=0)
        return log_condition(full + noise * torch.eye(full.shape[0], dtype=full.dtype))

    if log_cond_with(len(chosen)) <= max_log_cond:
        return chosen
    lo, hi = 0, len(chosen)  # invariant: prefix lo is fine, prefix hi is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if log_cond_with(mid) <= max_log_cond:
            lo = mid
        else:
            hi = mid
    return chosen[:lo]

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

Shapes: ``K_xx`` is the ``(n, n)`` covariance of the points already in the GP and ``K_xc`` the
``(n, m)`` covariance with the ``m`` candidates; the candidates' own covariance is only evaluated
for the columns of chosen candidates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg


def per_curve_cap(scaled_length: float) -> int:
    """Points a curve of the given scaled length (in ``[0, 1]``) may add: ``int(10 * length)``."""
    return int(10.0 * max(min(scaled_length, 1.0), 0.0))


def log_condition(K: np.ndarray) -> float:
    """Natural log of the 2-norm condition number of a symmetric positive matrix."""
    eig = np.linalg.eigvalsh(K)
    return float(np.log(eig[-1] / max(eig[0], 1e-300)))


def select(
    K_xx: np.ndarray,
    K_xc: np.ndarray,
    k_cc: Callable[[np.ndarray], np.ndarray],
    diag_cc: np.ndarray,
    noise: float,
    owner: np.ndarray,
    caps: np.ndarray,
    max_new: int,
    max_log_cond: float = 15.0,
    min_std: float = 1.5e-3,
) -> list[int]:
    """Greedy maximum-variance selection of candidates, in the order they were chosen.

    Args:
        K_xx: Covariance of the current GP inputs (without noise), ``(n, n)``.
        K_xc: Cross-covariance of current inputs and candidates, ``(n, m)``.
        k_cc: ``idx -> K(candidates, candidates[idx])``, ``(m, len(idx))``; only the columns of
            chosen candidates are ever built.
        diag_cc: Prior variances of the candidates, ``(m,)``.
        noise: Observation noise variance (standardised units).
        owner: Curve index of each candidate, shape ``(m,)``.
        caps: Maximum number of points per curve, indexed by curve.
        max_new: Maximum number of points to add in total.
        max_log_cond: Upper bound on ``ln cond(K + noise I)`` of the augmented matrix.
        min_std: Stop once the largest posterior standard deviation falls below this.

    Returns:
        Indices of the chosen candidates.
    """
    m = int(diag_cc.shape[0])
    if m == 0 or max_new <= 0:
        return []
    n = K_xx.shape[0]
    L = np.linalg.cholesky(K_xx + noise * np.eye(n))
    V = scipy.linalg.solve_triangular(L, K_xc, lower=True)
    # Posterior variances of the candidates. The posterior covariance columns of the chosen ones
    # are built on demand, scaled as rows of a Cholesky factor of the noisy covariance (a pivoted
    # Cholesky), so a step costs O(m (n + chosen)) instead of O(m^2).
    var = diag_cc - np.einsum("ij,ij->j", V, V)
    C = np.zeros((max_new, m))
    used = np.zeros(int(caps.size), dtype=np.int64)
    owner = np.asarray(owner)
    open_ = np.asarray(caps)[owner] > 0
    chosen: list[int] = []
    while len(chosen) < max_new:
        score = np.where(open_, var, -np.inf)
        j = int(np.argmax(score))
        if not np.isfinite(score[j]) or score[j] < min_std**2:
            break
        k = len(chosen)
        chosen.append(j)
        open_[j] = False
        used[owner[j]] += 1
        if used[owner[j]] >= caps[owner[j]]:
            open_ &= owner != owner[j]
        s = k_cc(np.array([j]))[:, 0] - V.T @ V[:, j] - C[:k].T @ C[:k, j]
        C[k] = s / np.sqrt(var[j] + noise)
        var = var - C[k] ** 2
    return _well_conditioned_prefix(chosen, K_xx, K_xc, k_cc, noise, max_log_cond)


def _well_conditioned_prefix(
    chosen: list[int],
    K_xx: np.ndarray,
    K_xc: np.ndarray,
    k_cc: Callable[[np.ndarray], np.ndarray],
    noise: float,
    max_log_cond: float,
) -> list[int]:
    """The longest prefix of ``chosen`` whose augmented ``K + noise I`` has
    ``ln cond <= max_log_cond`` (adding a point never lowers it, so bisection finds it)."""
    if not chosen:
        return []

    def augmented(k: int) -> np.ndarray:
        idx = np.asarray(chosen[:k], dtype=np.int64)
        K_xs = K_xc[:, idx]
        full = np.block([[K_xx, K_xs], [K_xs.T, k_cc(idx)[idx]]])
        return full + noise * np.eye(full.shape[0])

    full = augmented(len(chosen))
    # Cheap bound first: every eigenvalue is at least ``noise`` and at most the largest absolute
    # row sum (Gershgorin), so the exact check is only needed when the bound is too loose.
    bound = float(np.log(np.abs(full).sum(1).max() / noise))
    if bound <= max_log_cond or log_condition(full) <= max_log_cond:
        return chosen
    lo, hi = 0, len(chosen)  # invariant: prefix lo is fine, prefix hi is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if log_condition(augmented(mid)) <= max_log_cond:
            lo = mid
        else:
            hi = mid
    return chosen[:lo]

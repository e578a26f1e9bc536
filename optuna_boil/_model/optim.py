"""Temporary: the previous joint maximiser (replaced by the independent-start one)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.optimize
from scipy.stats import qmc
import torch


def maximise(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    sample: Callable[[int, np.random.RandomState], np.ndarray],
    round_fn: Callable[[np.ndarray], np.ndarray],
    continuous: np.ndarray,
    rng: np.random.RandomState,
    n_samples: int = 1024,
    n_local: int = 8,
    maxiter: int = 10,
    neighbours: Callable[[np.ndarray], np.ndarray] | None = None,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``acqf`` over the unit box.

    Args:
        acqf: Batched acquisition, ``(m, D) -> (m,)``, differentiable in its input.
        sample: ``(n, rng) -> (n, D)`` uniform draws (categoricals as indices).
        round_fn: Snap ``(m, D)`` points onto valid values.
        continuous: Boolean mask of the coordinates refined by L-BFGS-B.
        rng: Random state; the only source of randomness.
        n_samples: Number of preliminary points.
        n_local: Number of best preliminary points refined locally.
        maxiter: L-BFGS-B iterations of the joint refinement. On the speed benchmark's model at
            100 trials the mean best log value was -5.893 / -5.885 / -5.880 / -5.879 after
            8 / 10 / 15 / 30 iterations (-6.242 without refinement): 10 is enough.

    Returns:
        All rounded candidates and their acquisition values, sorted best first.
    """
    X0 = sample(n_samples, rng)
    sobol = qmc.Sobol(d=X0.shape[1], scramble=True, seed=rng.randint(2**31)).random(n_samples)
    X0[:, continuous] = sobol[:, continuous]
    X0 = np.unique(round_fn(X0), axis=0)
    with torch.no_grad():
        f0 = acqf(torch.from_numpy(X0)).numpy()
    order = np.argsort(-f0, kind="stable")[:n_local]
    starts = X0[order]

    cont_idx = np.flatnonzero(continuous)
    refined = starts.copy()
    if cont_idx.size:
        base = torch.from_numpy(starts)

        def neg_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
            X = base.clone()
            Xc = torch.from_numpy(flat.reshape(len(starts), cont_idx.size)).requires_grad_(True)
            X[:, cont_idx] = Xc
            f = acqf(X)
            total = -f.sum()
            total.backward()
            assert Xc.grad is not None
            return float(total.detach()), Xc.grad.numpy().ravel()

        res = scipy.optimize.minimize(
            neg_and_grad,
            starts[:, cont_idx].ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * (len(starts) * cont_idx.size),
            options={"maxiter": maxiter},
        )
        refined[:, cont_idx] = res.x.reshape(len(starts), cont_idx.size)
    refined = round_fn(refined)
    with torch.no_grad():
        f1 = acqf(torch.from_numpy(refined)).numpy()
    X = np.vstack([refined, X0])
    f = np.concatenate([f1, f0])
    order = np.argsort(-f, kind="stable")
    return X[order], f[order]

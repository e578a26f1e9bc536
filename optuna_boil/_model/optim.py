"""Maximisation of a batched acquisition function over a mixed unit box.

Three stages:

1. A batch of preliminary points: uniform draws whose continuous coordinates are replaced by a
   scrambled Sobol sequence, rounded onto valid values and evaluated together.
2. The best few finite points (plus optional warm starts) are refined on the continuous
   coordinates, each by its own L-BFGS-B run (own line search, own stopping test), so a start
   that stalls or hits a non-finite value does not hold the others back. The runs drive SciPy's
   reverse-communication routine in lockstep, so that every round of requests costs one batched
   call of the acquisition, as one joint problem would; when that private routine is missing or
   has another signature, the runs go one after the other through ``scipy.optimize.minimize``.
3. The refined points are rounded and then moved, one discrete coordinate at a time, to their
   best neighbour while that improves the acquisition (integer, stepped and categorical values
   that rounding after the fact would miss).

Every candidate seen is returned, best first, so that the caller can skip those it must not
propose.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.optimize
from scipy.stats import qmc
import torch


_MAX_SWEEPS = 5  # Discrete moves per refined point at most (10 gained little, cost time).


def _finite_or_minus_inf(f: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(f), f, -np.inf)


def _value_and_grad(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    starts: np.ndarray,
    cont_idx: np.ndarray,
    keys: list[int],
    Z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Values and gradients (continuous coordinates) of rows ``starts[keys]`` with ``Z`` put in.

    Returns :obj:`None` when the acquisition raised.
    """
    X = starts[keys]
    X[:, cont_idx] = Z
    try:
        Xt = torch.from_numpy(X).requires_grad_(True)
        f = acqf(Xt)
        f.sum().backward()
        assert Xt.grad is not None
        values = f.detach().numpy().astype(np.float64)
        grads = Xt.grad.numpy()[:, cont_idx].astype(np.float64)
    except Exception:
        return None
    return values, grads


class _Run:
    """One L-BFGS-B run driven through SciPy's reverse-communication routine ``setulb``.

    :meth:`advance` steps the routine until it asks for the objective at :attr:`x` or stops, so
    that many independent runs can share one batched evaluation per request.
    """

    _MAXCOR = 10
    _FACTR = 2.2204460492503131e-09 / np.finfo(float).eps  # scipy's default ftol
    _PGTOL = 1e-5
    _MAXLS = 20
    _FG, _NEW_X = 3, 1

    def __init__(self, setulb: Callable[..., None], z0: np.ndarray, maxiter: int) -> None:
        n, m = z0.size, self._MAXCOR
        self._setulb = setulb
        self.x = np.clip(np.array(z0, dtype=np.float64), 0.0, 1.0)
        self._low = np.zeros(n)
        self._high = np.ones(n)
        self._nbd = np.full(n, 2, dtype=np.int32)  # both bounds
        self._wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
        self._iwa = np.zeros(3 * n, dtype=np.int32)
        self._task = np.zeros(2, dtype=np.int32)
        self._ln_task = np.zeros(2, dtype=np.int32)
        self._lsave = np.zeros(4, dtype=np.int32)
        self._isave = np.zeros(44, dtype=np.int32)
        self._dsave = np.zeros(29)
        self._f = 0.0
        self._g = np.zeros(n)
        self._maxiter = maxiter
        self._n_iter = 0
        self._n_eval = 0
        self._max_eval = 10 * (maxiter + 1)
        self.done = False

    def advance(self) -> None:
        """Step until the routine asks for ``f`` and ``g`` at :attr:`x` (or sets :attr:`done`)."""
        while not self.done:
            self._setulb(
                self._MAXCOR,
                self.x,
                self._low,
                self._high,
                self._nbd,
                self._f,
                self._g,
                self._FACTR,
                self._PGTOL,
                self._wa,
                self._iwa,
                self._task,
                self._lsave,
                self._isave,
                self._dsave,
                self._MAXLS,
                self._ln_task,
            )
            if self._task[0] == self._FG:
                if self._n_eval >= self._max_eval:
                    self.done = True
                return
            if self._task[0] == self._NEW_X:
                self._n_iter += 1
                if self._n_iter >= self._maxiter:
                    self.done = True
                continue
            self.done = True  # converged, or stopped with a warning or an error

    def tell(self, neg_value: float, neg_grad: np.ndarray) -> None:
        self._f = neg_value
        self._g = np.asarray(neg_grad, dtype=np.float64)
        self._n_eval += 1


def _private_setulb() -> Callable[..., None] | None:
    """SciPy's L-BFGS-B routine, if it has the reverse-communication signature known here."""
    try:
        from scipy.optimize import _lbfgsb
    except ImportError:  # pragma: no cover - depends on the SciPy version
        return None
    setulb = getattr(_lbfgsb, "setulb", None)
    doc = getattr(setulb, "__doc__", None) or ""
    if not doc.startswith(_SETULB_SIGNATURE):  # pragma: no cover - depends on the SciPy version
        return None
    return setulb


_SETULB_SIGNATURE = (
    "setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,lsave,isave,dsave,maxls,ln_task)"
)
_USE_SETULB = True  # Tests switch it off to exercise the fallback.


def _refine(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    starts: np.ndarray,
    cont_idx: np.ndarray,
    maxiter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One L-BFGS-B run per start on the continuous coordinates.

    Returns, per start, the best finite point each run evaluated (continuous coordinates only)
    and its value (``-inf`` when it evaluated none). A run ends at ``maxiter`` iterations, on
    convergence, when the acquisition raises or when a value or gradient is not finite.
    """
    n = len(starts)
    best_z = starts[:, cont_idx].copy()
    best_f = np.full(n, -np.inf)

    def record(keys: list[int], Z: np.ndarray) -> list[tuple[float, np.ndarray] | None]:
        out = _value_and_grad(acqf, starts, cont_idx, keys, Z)
        if out is None:
            return [None] * len(keys)
        values, grads = out
        results: list[tuple[float, np.ndarray] | None] = []
        for j, k in enumerate(keys):
            if not (np.isfinite(values[j]) and np.all(np.isfinite(grads[j]))):
                results.append(None)
                continue
            if values[j] > best_f[k]:
                best_f[k], best_z[k] = values[j], Z[j]
            results.append((-float(values[j]), -grads[j]))
        return results

    setulb = _private_setulb() if _USE_SETULB else None
    if setulb is not None:
        # All runs advance in lockstep: one batched evaluation per round of requests.
        runs = [_Run(setulb, best_z[k], maxiter) for k in range(n)]
        active = list(range(n))
        while active:
            for k in active:
                runs[k].advance()
            active = [k for k in active if not runs[k].done]
            if not active:
                break
            results = record(active, np.stack([runs[k].x for k in active]))
            for k, res in zip(active, results, strict=True):
                if res is None:
                    runs[k].done = True
                else:
                    runs[k].tell(*res)
            active = [k for k in active if not runs[k].done]
        return best_z, best_f

    # Fallback through the public interface: the runs one after the other.
    class _Stop(Exception):
        pass

    for k in range(n):

        def fun(z: np.ndarray, k: int = k) -> tuple[float, np.ndarray]:
            res = record([k], z[None].copy())[0]
            if res is None:
                raise _Stop
            return res

        try:
            scipy.optimize.minimize(
                fun,
                best_z[k].copy(),
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * cont_idx.size,
                options={"maxiter": maxiter},
            )
        except Exception:
            pass  # The run keeps the best point it evaluated.
    return best_z, best_f


def _evaluate(acqf: Callable[[torch.Tensor], torch.Tensor], X: np.ndarray) -> np.ndarray:
    if len(X) == 0:
        return np.empty(0)
    with torch.no_grad():
        return acqf(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))).numpy()


def _discrete_step(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    round_fn: Callable[[np.ndarray], np.ndarray],
    neighbours: Callable[[np.ndarray], np.ndarray],
    points: np.ndarray,
    values: np.ndarray,
    cache: dict[bytes, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Move each point to its best neighbour while that improves it (at most ``_MAX_SWEEPS``).

    Each sweep evaluates the neighbours of all points still moving in one batch, skipping rows
    already in ``cache`` (row bytes to value, updated here). Returns the rows evaluated here.
    """
    dim = points.shape[1]
    current, f_cur = points.copy(), _finite_or_minus_inf(values)
    # Points that coincide move together: only the first of each is stepped.
    _, first = np.unique(current, axis=0, return_index=True)
    moving = np.zeros(len(current), dtype=bool)
    moving[first] = True
    moving &= np.isfinite(f_cur)
    new_X: list[np.ndarray] = []
    new_f: list[np.ndarray] = []
    for _ in range(_MAX_SWEEPS):
        blocks, owner = [], []
        for k in np.flatnonzero(moving):
            nb = np.asarray(neighbours(current[k]), dtype=np.float64).reshape(-1, dim)
            blocks.append(nb)
            owner.append(np.full(len(nb), k))
        if sum(len(b) for b in blocks) == 0:
            break
        N = round_fn(np.vstack(blocks))
        who = np.concatenate(owner)
        keys = [row.tobytes() for row in N]
        todo = {key: j for j, key in enumerate(keys) if key not in cache}
        if todo:
            rows = N[list(todo.values())]
            f_rows = _evaluate(acqf, rows)
            new_X.append(rows)
            new_f.append(f_rows)
            cache.update(zip(todo, f_rows.tolist(), strict=True))
        gN = _finite_or_minus_inf(np.array([cache[key] for key in keys]))
        moved = np.zeros(len(current), dtype=bool)
        for k in np.flatnonzero(moving):
            rows_k = np.flatnonzero(who == k)
            if rows_k.size == 0:
                continue
            j = rows_k[np.argmax(gN[rows_k])]
            if gN[j] > f_cur[k]:
                current[k], f_cur[k], moved[k] = N[j], gN[j], True
        moving = moved
        if not moving.any():
            break
    if not new_X:
        return np.empty((0, dim)), np.empty(0)
    return np.vstack(new_X), np.concatenate(new_f)


def _preliminary(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    sample: Callable[[int, np.random.RandomState], np.ndarray],
    round_fn: Callable[[np.ndarray], np.ndarray],
    continuous: np.ndarray,
    rng: np.random.RandomState,
    n_samples: int,
    warm: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rounded preliminary points (continuous coordinates from a scrambled Sobol sequence)
    and the rounded warm rows, each with its acquisition values."""
    X0 = np.asarray(sample(n_samples, rng), dtype=np.float64)
    dim = X0.shape[1]
    sobol = qmc.Sobol(d=dim, scramble=True, seed=rng.randint(2**31)).random(n_samples)
    X0[:, continuous] = sobol[:, continuous]
    X0 = np.unique(round_fn(X0), axis=0)
    f0 = _evaluate(acqf, X0)
    if warm is not None and len(warm):
        W = round_fn(np.asarray(warm, dtype=np.float64).reshape(-1, dim))
        return X0, f0, W, _evaluate(acqf, W)
    return X0, f0, np.empty((0, dim)), np.empty(0)


def maximise(
    acqf: Callable[[torch.Tensor], torch.Tensor],
    sample: Callable[[int, np.random.RandomState], np.ndarray],
    round_fn: Callable[[np.ndarray], np.ndarray],
    continuous: np.ndarray,
    rng: np.random.RandomState,
    n_samples: int = 512,
    n_local: int = 8,
    maxiter: int = 10,
    neighbours: Callable[[np.ndarray], np.ndarray] | None = None,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``acqf`` over the unit box with discrete coordinates.

    Args:
        acqf:
            Batched acquisition, ``(m, D) -> (m,)`` in float64, differentiable in its input.
            Rows must be independent (the value of a row does not depend on the others).
        sample:
            ``(n, rng) -> (n, D)`` uniform draws (categoricals as indices).
        round_fn:
            Snaps ``(m, D)`` rows onto valid values.
        continuous:
            Boolean mask of shape ``(D,)`` of the coordinates refined by L-BFGS-B (bounds
            ``[0, 1]``).
        rng:
            Random state; the only source of randomness.
        n_samples:
            Number of preliminary points.
        n_local:
            Number of best finite preliminary points refined locally.
        maxiter:
            L-BFGS-B iterations of each local run.
        neighbours:
            One full row ``(D,) -> (k, D)`` rows that differ from it in one discrete coordinate.
            When given, every refined point moves to its best neighbour while that improves it.
        warm:
            Optional ``(w, D)`` extra starting rows (e.g. the previous decision's best). They are
            rounded and refined whatever their rank, unless their value is not finite.

    Returns:
        Every distinct rounded candidate seen (preliminary, refined, moved) and its acquisition
        value, sorted best first; non-finite values count as ``-inf`` and come last.
    """
    continuous = np.asarray(continuous, dtype=bool)
    X0, f0, W, fw = _preliminary(acqf, sample, round_fn, continuous, rng, n_samples, warm)
    g0 = _finite_or_minus_inf(f0)
    order = np.argsort(-g0, kind="stable")
    order = order[np.isfinite(g0[order])][:n_local]
    keep_w = np.isfinite(fw)
    starts = np.vstack([X0[order], W[keep_w]])
    f_starts = np.concatenate([f0[order], fw[keep_w]])

    cont_idx = np.flatnonzero(continuous)
    refined = starts.copy()
    if cont_idx.size and len(starts) and maxiter > 0:
        best_z, best_f = _refine(acqf, starts, cont_idx, maxiter)
        # A run keeps its start unless it evaluated a better finite point.
        better = best_f > f_starts
        refined[np.ix_(better, cont_idx)] = best_z[better]
    refined = round_fn(refined)
    f1 = _evaluate(acqf, refined)

    seen_X = [refined, W, X0]
    seen_f = [f1, fw, f0]
    if neighbours is not None and len(refined):
        cache: dict[bytes, float] = {}
        for X_, f_ in zip(seen_X, seen_f, strict=True):
            cache.update(zip([row.tobytes() for row in X_], f_.tolist(), strict=True))
        N, fN = _discrete_step(acqf, round_fn, neighbours, refined, f1, cache)
        seen_X.append(N)
        seen_f.append(fN)

    X = np.vstack(seen_X)
    f = np.concatenate(seen_f).astype(np.float64)
    X, first = np.unique(X, axis=0, return_index=True)
    f = f[first]
    order = np.argsort(-_finite_or_minus_inf(f), kind="stable")
    return X[order], f[order]

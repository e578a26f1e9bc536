from collections.abc import Callable

import numpy as np
import pytest

from optuna_boil._model import augment


def _kernel(A, B, lx=0.3, lt=0.3):
    A, B = np.asarray(A), np.asarray(B)
    dx = ((A[:, None, :-1] - B[None, :, :-1]) ** 2).sum(-1) / lx**2
    dt = (A[:, None, -1] - B[None, :, -1]) ** 2 / lt**2
    return np.exp(-0.5 * dx - 0.5 * dt)


def _problem(n_curves=4, n_cand=8, seed=0):
    rng = np.random.RandomState(seed)
    xs = rng.uniform(size=(n_curves, 2))
    Xp = np.column_stack([xs, np.ones(n_curves)])
    ts = np.linspace(0.1, 0.9, n_cand)
    Xc = np.array([np.append(x, t) for x in xs for t in ts])
    owner = np.repeat(np.arange(n_curves), n_cand)
    return Xp, Xc, owner


def _tensors(
    Xp: np.ndarray, Xc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """The arguments ``select`` takes before the noise: K_xx, K_xc, columns of K_cc, diag."""
    K_cc = _kernel(Xc, Xc)
    return _kernel(Xp, Xp), _kernel(Xp, Xc), lambda idx: K_cc[:, idx], np.diag(K_cc).copy()


def _ln_cond(Xp, Xc, chosen, noise):
    X = np.vstack([Xp, Xc[chosen]]) if len(chosen) else Xp
    K = _kernel(X, X) + noise * np.eye(len(X))
    eig = np.linalg.eigvalsh(K)
    return float(np.log(eig[-1] / eig[0]))


@pytest.mark.parametrize(
    "length,cap", [(0.0, 0), (-0.3, 0), (0.05, 0), (0.1, 1), (0.55, 5), (0.999, 9), (1.0, 10)]
)
def test_per_curve_cap(length, cap):
    assert augment.per_curve_cap(length) == cap
    assert augment.per_curve_cap(1.7) == 10


def test_fresh_long_curve_gets_a_point():
    Xp = np.array([[0.5, 0.5, 1.0]])
    Xc = np.array([[0.5, 0.5, t] for t in np.linspace(0.05, 0.95, 10)])
    chosen = augment.select(*_tensors(Xp, Xc), 1e-3, np.zeros(10, dtype=int), np.array([10]), 64)
    assert len(chosen) >= 1
    # The first pick is the most uncertain candidate: the one furthest from t = 1.
    assert chosen[0] == 0


def test_respects_caps_max_new_and_no_duplicates():
    Xp, Xc, owner = _problem()
    K = _tensors(Xp, Xc)
    caps = np.array([2, 0, 1, 3])
    chosen = augment.select(*K, 1e-4, owner, caps, 64, max_log_cond=40.0)
    counts = np.bincount(owner[chosen], minlength=4)
    assert np.all(counts <= caps)
    assert len(set(chosen)) == len(chosen)
    assert counts.sum() == caps.sum()  # with a loose condition bound every cap is used
    for max_new in (1, 3):
        c = augment.select(*K, 1e-4, owner, np.full(4, 8), max_new, max_log_cond=40.0)
        assert len(c) == max_new and len(set(c)) == max_new


def test_never_returns_duplicates_large_caps():
    Xp, Xc, owner = _problem(3, 6, seed=1)
    chosen = augment.select(*_tensors(Xp, Xc), 1e-2, owner, np.full(3, 100), 100, 1e9, 0.0)
    assert len(set(chosen)) == len(chosen) == len(Xc)


@pytest.mark.parametrize("threshold", [4.0, 7.0, 10.0])
def test_log_condition_threshold(threshold):
    noise = 1e-4
    Xp, Xc, owner = _problem(4, 8, seed=2)
    K = _tensors(Xp, Xc)
    caps = np.full(4, 8)
    loose = augment.select(*K, noise, owner, caps, 64, max_log_cond=1e9)
    chosen = augment.select(*K, noise, owner, caps, 64, max_log_cond=threshold)
    assert len(chosen) < len(loose)  # the bound is binding in this problem
    assert _ln_cond(Xp, Xc, chosen, noise) <= threshold + 1e-9
    # Longest greedy prefix: same order as unconstrained, one more point breaks the bound.
    assert chosen == loose[: len(chosen)]
    assert _ln_cond(Xp, Xc, loose[: len(chosen) + 1], noise) > threshold


def test_log_condition_helper():
    K = np.diag([2.0, 5.0, 0.5])
    assert augment.log_condition(K) == pytest.approx(np.log(10.0))


def test_min_std_stops_selection():
    # Candidates identical to a point already in the GP have tiny posterior variance.
    Xp = np.array([[0.2, 0.2, 0.5]])
    Xc = np.array([[0.2, 0.2, 0.5], [0.2, 0.2, 0.5]])
    chosen = augment.select(*_tensors(Xp, Xc), 1e-8, np.zeros(2, dtype=int), np.array([5]), 5)
    assert chosen == []


def test_empty_inputs():
    Xp, Xc, owner = _problem(2, 3)
    K = _tensors(Xp, Xc)
    assert augment.select(*K, 1e-3, owner, np.full(2, 3), 0) == []
    empty = np.zeros(0)
    assert augment.select(K[0], K[1][:, :0], K[2], empty, 1e-3, owner[:0], np.full(2, 3), 5) == []


def test_cheap_condition_bound_agrees_with_the_exact_check():
    # A threshold between the exact ln cond and its Gershgorin bound: the bound alone would
    # reject the selection, the exact check must keep it.
    Xp, Xc, owner = _problem(4, 8, seed=3)
    noise, caps = 1e-2, np.full(4, 8)
    loose = augment.select(*_tensors(Xp, Xc), noise, owner, caps, 6, max_log_cond=1e9)
    exact = _ln_cond(Xp, Xc, loose, noise)
    X = np.vstack([Xp, Xc[loose]])
    K = _kernel(X, X) + noise * np.eye(len(X))
    bound = np.log(np.abs(K).sum(1).max() / noise)
    assert exact < bound
    threshold = 0.5 * (exact + bound)
    assert augment.select(*_tensors(Xp, Xc), noise, owner, caps, 6, threshold) == loose

import math

import numpy as np
import pytest
import torch

from optuna_boil._model import curve


def _w(step, t_lo, t_hi, m0, g0):
    z = -6.0 + 12.0 * (step - t_lo) / (t_hi - t_lo)
    return 1.0 / (1.0 + math.exp(-g0 * (z - m0)))


def test_burn_in_hand_values():
    assert curve.burn_in(12, 0.0) == 4  # floor(4 * 12 / 12)
    assert curve.burn_in(10, 0.5) == 3  # floor(4.5 * 10 / 12) = floor(3.75)
    assert curve.burn_in(7, -2.0) == 1  # floor(2 * 7 / 12) = floor(1.1667)
    assert curve.burn_in(1, 3.0) == 0  # never drops the only point


def test_score_paper_hand_computed():
    steps = np.arange(1, 11, dtype=float)
    values = np.array([0.1, 0.5, 0.2, 0.7, 0.3, 0.9, 0.4, 0.6, 0.8, 1.0])
    t_lo, t_hi, m0, g0 = 1.0, 20.0, 0.5, 1.3
    k = 3  # floor((0.5 + 4) * 10 / 12)
    terms = [_w(s, t_lo, t_hi, m0, g0) * v for s, v in zip(steps[k:], values[k:], strict=True)]
    expected = sum(terms) / len(terms)
    got = curve.score(steps, values, t_lo, t_hi, m0, g0, target="paper")
    assert got == pytest.approx(expected, rel=1e-12)


def test_score_logistic_and_final_hand_computed():
    steps = np.array([2.0, 4.0, 7.0, 11.0])
    values = np.array([0.3, -0.2, 0.8, 0.5])
    t_lo, t_hi, m0, g0 = 1.0, 11.0, -1.0, 0.7
    w = [_w(s, t_lo, t_hi, m0, g0) for s in steps]
    expected = sum(wi * v for wi, v in zip(w, values, strict=True)) / sum(w)
    got = curve.score(steps, values, t_lo, t_hi, m0, g0, target="logistic")
    assert got == pytest.approx(expected, rel=1e-12)
    assert curve.score(steps, values, t_lo, t_hi, target="final") == 0.5


def test_score_rejects_bad_input():
    with pytest.raises(ValueError):
        curve.score(np.zeros(0), np.zeros(0), 1, 10)
    with pytest.raises(ValueError):
        curve.score(np.arange(3.0), np.ones(3), 1, 10, target="nope")


def test_sparse_steps_match_dense_restricted():
    rng = np.random.RandomState(0)
    dense_steps = np.arange(1, 51, dtype=float)
    dense_values = np.cumsum(rng.uniform(size=50)) / 50
    sparse_idx = np.arange(4, 50, 5)  # steps 5, 10, ..., 50
    sparse = curve.score(
        dense_steps[sparse_idx], dense_values[sparse_idx], 1, 50, 0.7, 1.4, "logistic"
    )
    # Independent: weights from the step *values* on the full budget grid.
    w = np.array([_w(s, 1, 50, 0.7, 1.4) for s in dense_steps[sparse_idx]])
    expected = float(np.sum(w * dense_values[sparse_idx]) / np.sum(w))
    assert sparse == pytest.approx(expected, rel=1e-12)
    # Not the same as treating the sparse points as if they were steps 1..10.
    naive = curve.score(np.arange(1.0, 11.0), dense_values[sparse_idx], 1, 50, 0.7, 1.4)
    assert abs(naive - sparse) > 1e-3


@pytest.mark.parametrize("target", curve.TARGETS)
def test_steps_from_zero_or_one_by_value(target):
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.9])
    s1 = curve.score(np.arange(1.0, 7.0), values, 1, 12, 0.3, 1.2, target)
    s0 = curve.score(np.arange(0.0, 6.0), values, 0, 11, 0.3, 1.2, target)
    assert s0 == pytest.approx(s1, rel=1e-12)
    if target != "final":
        # Step values matter: the same points at later steps of the budget weigh differently.
        s_shift = curve.score(np.arange(3.0, 9.0), values, 1, 12, 0.3, 1.2, target)
        assert abs(s_shift - s1) > 1e-4


def _random_curves(rng, n=6, max_len=15, t_lo=1):
    curves, lengths = [], []
    for _ in range(n):
        full = rng.randint(2, max_len + 1)
        steps = t_lo + np.sort(rng.choice(np.arange(30), size=full, replace=False)).astype(float)
        curves.append((steps, rng.normal(size=full)))
        lengths.append(rng.randint(1, full + 1))
    return curves, lengths


@pytest.mark.parametrize("target", curve.TARGETS)
@pytest.mark.parametrize("m0,g0", [(0.0, 1.0), (-1.7, 0.6), (2.4, 1.9)])
def test_compress_matches_score(target, m0, g0):
    rng = np.random.RandomState(1)
    curves, lengths = _random_curves(rng)
    padded = curve.PaddedCurves(curves, lengths, 1.0, 30.0)
    got = curve.compress(
        padded,
        torch.tensor(m0, dtype=torch.float64),
        torch.tensor(g0, dtype=torch.float64),
        target,
    ).numpy()
    assert got.shape == (len(curves),)
    for p, ((steps, vals), length) in enumerate(zip(curves, lengths, strict=True)):
        ref = curve.score(steps[:length], vals[:length], 1.0, 30.0, m0, g0, target)
        assert got[p] == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_logistic_affine_equivariance():
    rng = np.random.RandomState(2)
    steps = np.arange(1.0, 21.0)
    v = rng.normal(size=20)
    base = curve.score(steps, v, 1, 20, 0.4, 1.5, "logistic")
    for a, b in [(2.0, 3.0), (0.01, -7.0), (13.0, 0.0)]:
        got = curve.score(steps, a * v + b, 1, 20, 0.4, 1.5, "logistic")
        assert got == pytest.approx(a * base + b, rel=1e-10, abs=1e-10)


def test_normalise_curves_affine_invariant_and_range():
    rng = np.random.RandomState(3)
    curves = [(np.arange(1.0, k + 1), rng.normal(size=k)) for k in (3, 7, 5)]
    out, low, span = curve.normalise_curves(curves)
    flat = np.concatenate([v for _, v in out])
    assert flat.min() == pytest.approx(0.0) and flat.max() == pytest.approx(1.0)
    all_v = np.concatenate([v for _, v in curves])
    assert low == pytest.approx(all_v.min())
    assert span == pytest.approx(all_v.max() - all_v.min())
    a, b = 37.0, -4.5
    out2, _, _ = curve.normalise_curves([(s, a * v + b) for s, v in curves])
    for (_, v1), (_, v2) in zip(out, out2, strict=True):
        np.testing.assert_allclose(v1, v2, rtol=1e-12, atol=1e-12)
    scores1 = [curve.score(s, v, 1, 7) for s, v in out]
    scores2 = [curve.score(s, v, 1, 7) for s, v in out2]
    np.testing.assert_allclose(scores1, scores2, atol=1e-12)


def test_normalise_curves_non_finite_policy():
    curves = [
        (np.arange(1.0, 5.0), np.array([2.0, np.nan, 4.0, np.inf])),
        (np.arange(1.0, 4.0), np.array([-np.inf, 3.0, 6.0])),
    ]
    out, low, span = curve.normalise_curves(curves)
    assert low == 2.0 and span == 4.0
    np.testing.assert_allclose(out[0][1], [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[1][1], [0.0, 0.25, 1.0])
    assert all(np.all(np.isfinite(v)) for _, v in out)


@pytest.mark.parametrize("target", ["logistic", "paper"])
def test_compress_gradient_finite(target):
    rng = np.random.RandomState(4)
    curves, lengths = _random_curves(rng)
    padded = curve.PaddedCurves(curves, lengths, 1.0, 30.0)
    m0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    g0 = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    out = curve.compress(padded, m0, g0, target)
    (out * torch.arange(1.0, len(out) + 1, dtype=torch.float64)).sum().backward()
    assert m0.grad is not None and g0.grad is not None
    assert torch.isfinite(m0.grad) and torch.isfinite(g0.grad)
    assert float(m0.grad.abs() + g0.grad.abs()) > 0
    # Check d/dm0 against a central finite difference of the numpy reference.
    if target == "logistic":
        h = 1e-6
        weights = np.arange(1.0, len(curves) + 1)

        def f(m):
            return sum(
                wt * curve.score(s[:n], v[:n], 1.0, 30.0, m, 1.1, target)
                for wt, (s, v), n in zip(weights, curves, lengths, strict=True)
            )

        fd = (f(0.3 + h) - f(0.3 - h)) / (2 * h)
        assert float(m0.grad) == pytest.approx(fd, rel=1e-5, abs=1e-8)

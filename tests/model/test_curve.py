import math

import numpy as np
import pytest
import torch

from optuna_boil._model import curve


def _w(step, t_lo, t_hi, m0, g0):
    z = -6.0 + 12.0 * (step - t_lo) / (t_hi - t_lo)
    return 1.0 / (1.0 + math.exp(-g0 * (z - m0)))


def test_score_logistic_hand_computed():
    steps = np.array([2.0, 4.0, 7.0, 11.0])
    values = np.array([0.3, -0.2, 0.8, 0.5])
    t_lo, t_hi, m0, g0 = 1.0, 11.0, -1.0, 0.7
    w = [_w(s, t_lo, t_hi, m0, g0) for s in steps]
    expected = sum(wi * v for wi, v in zip(w, values, strict=True)) / sum(w)
    got = curve.score(steps, values, t_lo, t_hi, m0, g0)
    assert got == pytest.approx(expected, rel=1e-12)


def test_score_rejects_bad_input():
    with pytest.raises(ValueError):
        curve.score(np.zeros(0), np.zeros(0), 1, 10)


def test_sparse_steps_match_dense_restricted():
    rng = np.random.RandomState(0)
    dense_steps = np.arange(1, 51, dtype=float)
    dense_values = np.cumsum(rng.uniform(size=50)) / 50
    sparse_idx = np.arange(4, 50, 5)  # steps 5, 10, ..., 50
    sparse = curve.score(dense_steps[sparse_idx], dense_values[sparse_idx], 1, 50, 0.7, 1.4)
    # Independent: weights from the step *values* on the full budget grid.
    w = np.array([_w(s, 1, 50, 0.7, 1.4) for s in dense_steps[sparse_idx]])
    expected = float(np.sum(w * dense_values[sparse_idx]) / np.sum(w))
    assert sparse == pytest.approx(expected, rel=1e-12)
    # Not the same as treating the sparse points as if they were steps 1..10.
    naive = curve.score(np.arange(1.0, 11.0), dense_values[sparse_idx], 1, 50, 0.7, 1.4)
    assert abs(naive - sparse) > 1e-3


def test_steps_from_zero_or_one_by_value():
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.9])
    s1 = curve.score(np.arange(1.0, 7.0), values, 1, 12, 0.3, 1.2)
    s0 = curve.score(np.arange(0.0, 6.0), values, 0, 11, 0.3, 1.2)
    assert s0 == pytest.approx(s1, rel=1e-12)
    # Step values matter: the same points at later steps of the budget weigh differently.
    s_shift = curve.score(np.arange(3.0, 9.0), values, 1, 12, 0.3, 1.2)
    assert abs(s_shift - s1) > 1e-4


def _random_curves(rng, n=6, max_len=15, t_lo=1):
    curves, lengths = [], []
    for _ in range(n):
        full = rng.randint(2, max_len + 1)
        steps = t_lo + np.sort(rng.choice(np.arange(30), size=full, replace=False)).astype(float)
        curves.append((steps, rng.normal(size=full)))
        lengths.append(rng.randint(1, full + 1))
    return curves, lengths


@pytest.mark.parametrize("m0,g0", [(0.0, 1.0), (-1.7, 0.6), (2.4, 1.9)])
def test_compress_matches_score(m0, g0):
    rng = np.random.RandomState(1)
    curves, lengths = _random_curves(rng)
    padded = curve.PaddedCurves(curves, lengths, 1.0, 30.0)
    got = curve.compress(
        padded,
        torch.tensor(m0, dtype=torch.float64),
        torch.tensor(g0, dtype=torch.float64),
    ).numpy()
    assert got.shape == (len(curves),)
    for p, ((steps, vals), length) in enumerate(zip(curves, lengths, strict=True)):
        ref = curve.score(steps[:length], vals[:length], 1.0, 30.0, m0, g0)
        assert got[p] == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_logistic_affine_equivariance():
    rng = np.random.RandomState(2)
    steps = np.arange(1.0, 21.0)
    v = rng.normal(size=20)
    base = curve.score(steps, v, 1, 20, 0.4, 1.5)
    for a, b in [(2.0, 3.0), (0.01, -7.0), (13.0, 0.0)]:
        got = curve.score(steps, a * v + b, 1, 20, 0.4, 1.5)
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


def test_compress_gradient_finite():
    rng = np.random.RandomState(4)
    curves, lengths = _random_curves(rng)
    padded = curve.PaddedCurves(curves, lengths, 1.0, 30.0)
    m0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    g0 = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    out = curve.compress(padded, m0, g0)
    (out * torch.arange(1.0, len(out) + 1, dtype=torch.float64)).sum().backward()
    assert m0.grad is not None and g0.grad is not None
    assert torch.isfinite(m0.grad) and torch.isfinite(g0.grad)
    assert float(m0.grad.abs() + g0.grad.abs()) > 0
    # Check d/dm0 against a central finite difference of the numpy reference.
    h = 1e-6
    weights = np.arange(1.0, len(curves) + 1)

    def f(m):
        return sum(
            wt * curve.score(s[:n], v[:n], 1.0, 30.0, m, 1.1)
            for wt, (s, v), n in zip(weights, curves, lengths, strict=True)
        )

    fd = (f(0.3 + h) - f(0.3 - h)) / (2 * h)
    assert float(m0.grad) == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_thin_keeps_short_curves_and_spreads_long_ones():
    np.testing.assert_array_equal(curve.thin(1), [0])
    np.testing.assert_array_equal(curve.thin(curve.MAX_POINTS), np.arange(curve.MAX_POINTS))
    for length in (curve.MAX_POINTS + 1, 1000, 100_000):
        idx = curve.thin(length)
        assert 2 <= idx.size <= curve.MAX_POINTS
        assert idx[0] == 0 and idx[-1] == length - 1  # the first and the last point are kept
        assert np.all(np.diff(idx) > 0)
        gaps = np.diff(idx)
        # Evenly spread: the gaps differ by rounding only.
        assert gaps.max() - gaps.min() <= 1
        assert gaps.max() <= int(np.ceil((length - 1) / (curve.MAX_POINTS - 1)))


def test_long_curve_is_thinned_and_compresses_like_the_whole_curve():
    n = 100_000
    steps = np.arange(1.0, n + 1)
    values = 1.0 - np.exp(-steps / 20_000.0) + 0.1 * np.sin(steps / 7_000.0)
    short_steps = np.arange(1.0, 11.0)
    short_values = np.linspace(0.0, 0.5, 10)
    half = n // 2
    padded = curve.PaddedCurves(
        [(steps, values), (steps, values), (short_steps, short_values)],
        [n, half, 10],
        1.0,
        float(n),
    )
    assert padded.values.shape[1] <= curve.MAX_POINTS
    np.testing.assert_array_equal(
        padded.mask.sum(-1).numpy(), [curve.MAX_POINTS, curve.MAX_POINTS, 10]
    )
    np.testing.assert_array_equal(padded.lengths.numpy(), [n, half, 10])
    m0, g0 = 0.7, 1.3
    got = curve.compress(
        padded, torch.tensor(m0, dtype=torch.float64), torch.tensor(g0, dtype=torch.float64)
    ).numpy()
    full = curve.score(steps, values, 1.0, float(n), m0, g0)
    prefix = curve.score(steps[:half], values[:half], 1.0, float(n), m0, g0)
    assert got[0] == pytest.approx(full, abs=2e-3)
    assert got[1] == pytest.approx(prefix, abs=2e-3)
    assert abs(full - prefix) > 2e-2  # the prefix is represented by its own points
    # A short row of the same batch is not thinned: exact.
    ref = curve.score(short_steps, short_values, 1.0, float(n), m0, g0)
    assert got[2] == pytest.approx(ref, rel=1e-12)

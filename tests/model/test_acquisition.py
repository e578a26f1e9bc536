import math

import numpy as np
import pytest
from scipy.stats import norm
import torch

from optuna_boil._model import acquisition as acq


mpmath = pytest.importorskip("mpmath")


def _log_h_exact(z):
    mpmath.mp.dps = 60
    z = mpmath.mpf(z)
    return float(mpmath.log(mpmath.npdf(z) + z * mpmath.ncdf(z)))


def test_log_h_matches_closed_form():
    z = np.linspace(-8.0, 8.0, 65)
    closed = np.log(norm.pdf(z) + z * norm.cdf(z))
    got = acq.log_h(torch.from_numpy(z)).numpy()
    ok = np.isfinite(closed)
    assert ok.all()
    np.testing.assert_allclose(got[ok], closed[ok], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("z", [-1.0, -1.0001, -0.9999, -3.0, -15.0, -40.0, -200.0])
def test_log_h_matches_high_precision(z):
    got = float(acq.log_h(torch.tensor([z], dtype=torch.float64))[0])
    assert math.isfinite(got)
    assert got == pytest.approx(_log_h_exact(z), rel=1e-6)


def test_log_h_at_minus_40_finite_and_asymptotic():
    z = -40.0
    got = float(acq.log_h(torch.tensor([z], dtype=torch.float64))[0])
    assert math.isfinite(got)
    # h(z) = phi(z) (1/z^2 - 3/z^4 + 15/z^6 - ...) for z -> -inf.
    approx = norm.logpdf(z) - 2 * math.log(-z) + math.log1p(-3 / z**2 + 15 / z**4)
    assert got == pytest.approx(approx, rel=1e-8)


def test_log_h_gradient_finite():
    z = torch.tensor([-60.0, -40.0, -1.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    acq.log_h(z).sum().backward()
    assert z.grad is not None
    assert torch.all(torch.isfinite(z.grad))
    assert torch.all(z.grad > 0)  # h is increasing


def test_log_ei_matches_closed_form_and_is_monotone():
    mean = np.linspace(-3.0, 3.0, 41)
    var = np.full_like(mean, 0.49)
    best = 0.5
    std = math.sqrt(0.49)
    z = (mean - best) / std
    ei = std * (norm.pdf(z) + z * norm.cdf(z))
    got = acq.log_ei(torch.from_numpy(mean), torch.from_numpy(var), best).numpy()
    np.testing.assert_allclose(got, np.log(ei), rtol=1e-7, atol=1e-9)
    assert np.all(np.diff(got) > 0)
    far = acq.log_ei(
        torch.tensor([-40.0, -39.0], dtype=torch.float64),
        torch.tensor([1.0, 1.0], dtype=torch.float64),
        0.0,
    )
    assert torch.all(torch.isfinite(far)) and far[1] > far[0]


def test_log_ei_increases_with_variance_below_best():
    var = torch.tensor([0.01, 0.1, 1.0, 4.0], dtype=torch.float64)
    got = acq.log_ei(torch.zeros(4, dtype=torch.float64), var, 1.0).numpy()
    assert np.all(np.diff(got) > 0)


def test_maximise_finds_quadratic_maximum():
    c = torch.tensor([0.3, 0.72], dtype=torch.float64)

    def acqf(X):
        return -((X - c) ** 2).sum(-1)

    def sample(n, rng):
        return rng.uniform(size=(n, 2))

    X, f = acq.maximise(
        acqf, sample, lambda a: a, np.array([True, True]), np.random.RandomState(0), 256, 4
    )
    assert np.all(np.diff(f) <= 0)  # sorted best first
    np.testing.assert_allclose(X[0], c.numpy(), atol=1e-4)
    assert f[0] == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(f, acqf(torch.from_numpy(X)).numpy())


def test_maximise_respects_rounding_and_box():
    # Maximum outside the box at (1.4, ...) -> the boundary; second coordinate on a grid.
    def acqf(X):
        return -((X[:, 0] - 1.4) ** 2) - (X[:, 1] - 0.37) ** 2

    def round_fn(a):
        out = a.copy()
        out[:, 1] = np.round(out[:, 1] * 4) / 4
        return out

    X, _ = acq.maximise(
        acqf,
        lambda n, rng: rng.uniform(size=(n, 2)),
        round_fn,
        np.array([True, True]),
        np.random.RandomState(1),
        128,
        4,
    )
    assert X[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert X[0, 1] == pytest.approx(0.25)
    assert np.all((X >= 0) & (X <= 1))

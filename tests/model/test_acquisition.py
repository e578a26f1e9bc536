import math

import numpy as np
import pytest
from scipy.stats import norm
import torch

from optuna_boil._model import acquisition as acq
from optuna_boil._model import curve
from optuna_boil._model.cost import TrainingCost
from optuna_boil._model.gp import JointGP


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


def test_log_information_matches_its_formula():
    var = np.array([1e-4, 0.01, 0.3, 1.0, 5.0])
    noise = 0.02
    want = np.log(1.0 - math.sqrt(noise) / np.sqrt(var + noise))
    got = acq.log_information(torch.from_numpy(var), noise).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert np.all(np.diff(got) > 0)  # a run whose outcome the noise hides tells less


def _fitted_posterior():
    """A small GP fitted to curves of different lengths, so the step coordinate varies."""
    rng = np.random.RandomState(0)
    n, t_hi = 10, 20
    x = rng.uniform(size=(n, 2))
    lengths = rng.randint(3, t_hi + 1, n)
    curves = []
    for xi, length in zip(x, lengths, strict=True):
        s = np.arange(1.0, length + 1)
        curves.append((s, (1.0 - (xi[0] - 0.3) ** 2 - xi[1] ** 2) * (1 - np.exp(-s / 4.0))))
    curves, _, _ = curve.normalise_curves(curves)
    span = math.log1p(t_hi - 1)
    u = np.log1p(lengths - 1.0) / span
    X = torch.from_numpy(np.column_stack([x, u]))
    padded = curve.PaddedCurves(curves, list(lengths), 1.0, float(t_hi))
    gp = JointGP(X, padded, np.zeros(2, dtype=bool), True, span)
    gp.fit([None], np.random.RandomState(0), n_random_starts=0, maxiter=50)
    return gp.posterior(), rng


def _joint(post, Z):
    """Joint posterior mean and covariance at ``Z`` by dense linear algebra (a reference)."""
    K = post.covariance(post.X).numpy() + post.noise * np.eye(len(post.X))
    ks = post.covariance(Z, post.X).numpy()
    resid = (post.y - post.prior_mean(post.X)).numpy()
    mean = post.prior_mean(Z).numpy() + ks @ np.linalg.solve(K, resid)
    return mean, post.covariance(Z).numpy() - ks @ np.linalg.solve(K, ks.T)


def _log_ei_ref(mean, var, best):
    s = np.sqrt(var)
    z = (mean - best) / s
    return np.log(s * (norm.pdf(z) + z * norm.cdf(z)))


def test_augmented_log_ei_matches_its_formula():
    post, rng = _fitted_posterior()
    m = 6
    X = torch.from_numpy(np.column_stack([rng.uniform(size=(m, 2)), rng.uniform(size=m)]))
    X[0, -1] = 1.0  # a run to the full budget: correlation 1
    best = 0.4
    with torch.no_grad():
        got = acq.AugmentedLogEI(post, best)(X).numpy()
    finals = X.clone()
    finals[:, -1] = 1.0
    mean, C = _joint(post, torch.cat([X, finals]))
    var, var_f = np.diag(C)[:m], np.diag(C)[m:]
    cov = np.diag(C[:m, m:])
    s_n = math.sqrt(post.noise)
    want = (
        _log_ei_ref(mean[m:], var_f, best)
        + np.log(np.abs(cov) / np.sqrt(var * var_f))
        + np.log(1.0 - s_n / np.sqrt(var + s_n**2))
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # At the full budget the run is all there is to know about the final score.
    assert got[0] == pytest.approx(
        _log_ei_ref(mean[m], var_f[0], best) + math.log(1.0 - s_n / math.sqrt(var_f[0] + s_n**2)),
        rel=1e-6,
    )
    # A larger incumbent leaves less to improve on.
    with torch.no_grad():
        assert torch.all(acq.AugmentedLogEI(post, best + 0.5)(X) < torch.from_numpy(got))


def test_augmented_log_ei_is_differentiable_in_the_step():
    post, _ = _fitted_posterior()
    X = torch.tensor([[0.3, 0.2, 0.4]], dtype=torch.float64, requires_grad=True)
    acq.AugmentedLogEI(post, 0.2)(X).sum().backward()
    assert X.grad is not None and torch.all(torch.isfinite(X.grad))
    h = 1e-6
    with torch.no_grad():
        f = acq.AugmentedLogEI(post, 0.2)
        up = f(torch.tensor([[0.3, 0.2, 0.4 + h]], dtype=torch.float64))
        dn = f(torch.tensor([[0.3, 0.2, 0.4 - h]], dtype=torch.float64))
    assert float(X.grad[0, 2]) == pytest.approx(float((up - dn) / (2 * h)), rel=1e-4, abs=1e-6)


def test_log_ei_at_full_ignores_the_step_and_matches_its_formula():
    post, rng = _fitted_posterior()
    m = 5
    X = torch.from_numpy(np.column_stack([rng.uniform(size=(m, 2)), rng.uniform(size=m)]))
    incumbent = 0.3
    with torch.no_grad():
        got = acq.LogEIAtFull(post, incumbent)(X).numpy()
        other_steps = X.clone()
        other_steps[:, -1] = torch.from_numpy(rng.uniform(size=m))
        again = acq.LogEIAtFull(post, incumbent)(other_steps).numpy()
    np.testing.assert_array_equal(got, again)
    finals = X.clone()
    finals[:, -1] = 1.0
    mean, C = _joint(post, finals)
    np.testing.assert_allclose(got, _log_ei_ref(mean, np.diag(C), incumbent), rtol=1e-6)
    # The step column is not used even for a run that is not trained to the end: the value is
    # not that of the posterior at the row's own step.
    mean_t, C_t = _joint(post, X)
    assert not np.allclose(got, _log_ei_ref(mean_t, np.diag(C_t), incumbent))


def test_cost_aware_subtracts_the_log_cost_and_never_returns_nan():
    values = torch.tensor([0.5, -2.0, float("nan"), 1.0], dtype=torch.float64)
    costs = torch.tensor([1.0, 4.0, 2.0, -1.0], dtype=torch.float64)  # -1: log is NaN
    X = torch.zeros(4, 3, dtype=torch.float64)
    got = acq.CostAware(lambda _: values, lambda _: costs)(X).numpy()
    assert got[0] == 0.5 and got[1] == pytest.approx(-2.0 - math.log(4.0))
    assert got[2] == -np.inf and got[3] == -np.inf


def test_cost_aware_of_augmented_ei_per_step():
    post, rng = _fitted_posterior()
    t_lo, t_hi = 1.0, 20.0
    span = math.log1p(t_hi - t_lo)

    def steps_of(u):
        return t_lo + torch.expm1(u * span)

    X = torch.from_numpy(np.column_stack([rng.uniform(size=(4, 2)), rng.uniform(size=4)]))
    aug = acq.AugmentedLogEI(post, 0.1)
    with torch.no_grad():
        per_cost = acq.CostAware(aug, TrainingCost(steps_of, t_hi, 0.0, None))(X).numpy()
        base = aug(X).numpy()
        t = steps_of(X[:, -1]).numpy()
    np.testing.assert_allclose(per_cost, base - np.log(np.maximum(t, 0.5)), rtol=1e-10)
    # Gradients flow through both parts.
    Xg = X.clone().requires_grad_(True)
    acq.CostAware(aug, TrainingCost(steps_of, t_hi, 0.0, None))(Xg).sum().backward()
    assert Xg.grad is not None and torch.all(torch.isfinite(Xg.grad))

import math

from gpytorch.constraints import Positive
import numpy as np
import pytest
import torch

from optuna_boil._model import curve
from optuna_boil._model.gp import JointGP
from optuna_boil._model.gp import JointKernel
from optuna_boil._model.gp import _GaussianLogLikelihood


torch.set_num_threads(1)


def _single_point_gp(x, y, is_cat=None, target="final", learn=False):
    """A GP whose targets are one-point curves with the given values (t = 1 for all)."""
    n, d = x.shape
    X = torch.from_numpy(np.column_stack([x, np.ones(n)]))
    curves = [(np.array([10.0]), np.array([v])) for v in y]
    padded = curve.PaddedCurves(curves, [1] * n, 1.0, 10.0)
    is_cat = np.zeros(d, dtype=bool) if is_cat is None else is_cat
    return JointGP(X, padded, is_cat, target, learn)


def test_ard_recovers_relevant_input():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(30, 2))
    y = np.sin(6.0 * x[:, 0])
    gp = _single_point_gp(x, y)
    gp.fit([None], np.random.RandomState(0), n_random_starts=1)
    ls = gp.hyperparameters()["x_lengthscale"]
    assert ls[0] < 0.5 * ls[1]
    # Swapping the roles of the inputs swaps the conclusion.
    gp2 = _single_point_gp(x[:, ::-1].copy(), y)
    gp2.fit([None], np.random.RandomState(0), n_random_starts=1)
    ls2 = gp2.hyperparameters()["x_lengthscale"]
    assert ls2[1] < 0.5 * ls2[0]


def _plain_kernel(is_cat):
    """A kernel with outputscale 1 and (practically) no late term."""
    k = JointKernel(is_cat).double()
    with torch.no_grad():
        k.raw_outputscale.fill_(float(Positive().inverse_transform(torch.tensor(1.0))))
        k.raw_late.fill_(-60.0)
    return k


def test_categorical_kernel_is_hamming():
    k = _plain_kernel(np.array([True, False]))
    X = torch.tensor(
        [[0.0, 0.5, 1.0], [1.0, 0.5, 1.0], [2.0, 0.5, 1.0], [0.0, 0.5, 1.0]], dtype=torch.float64
    )
    K = k(X, X).to_dense().detach()
    assert K[0, 1] == pytest.approx(float(K[0, 2]), rel=1e-12)
    assert K[1, 2] == pytest.approx(float(K[0, 2]), rel=1e-12)
    assert float(K[0, 3]) == pytest.approx(1.0)
    # Matern 5/2 at r = 1 / l with the default-free lengthscale (softplus(0) = ln 2).
    r = 1.0 / math.log(2.0)
    want = (1 + math.sqrt(5) * r + 5 / 3 * r**2) * math.exp(-math.sqrt(5) * r)
    assert float(K[0, 2]) == pytest.approx(want, rel=1e-8)
    # The same inputs treated as continuous *are* ordered.
    kc = _plain_kernel(np.array([False, False]))
    Kc = kc(X, X).to_dense().detach()
    assert float(Kc[0, 2]) < float(Kc[0, 1])


def test_kernel_time_factor():
    k = _plain_kernel(np.array([False]))
    X1 = torch.tensor([[0.3, 0.2]], dtype=torch.float64)
    X2 = torch.tensor([[0.3, 0.9]], dtype=torch.float64)
    lt = math.log(2.0)  # softplus(0)
    want = math.exp(-0.5 * 0.7**2 / lt**2)
    assert float(k(X1, X2).to_dense().detach()[0, 0]) == pytest.approx(want, rel=1e-8)


def test_predict_interpolates_with_small_noise():
    rng = np.random.RandomState(1)
    x = rng.uniform(size=(15, 2))
    y = np.cos(3 * x[:, 0]) + x[:, 1]
    gp = _single_point_gp(x, y)
    gp.load_hyperparameters(
        {
            "m0": 0.0,
            "g0": 1.0,
            "x_lengthscale": [0.5, 0.5],
            "t_lengthscale": 0.5,
            "outputscale": 1.0,
            "noise": 1e-5,
            "mean": 0.0,
        }
    )
    gp.finalise()
    X = gp.train_inputs[0]
    with torch.no_grad():
        mean, var = gp.predict(X)
    target = (y - y.mean()) / y.std(ddof=1)
    np.testing.assert_allclose(mean.numpy(), target, atol=1e-2)
    assert torch.all(var > 0)
    assert float(var.max()) < 1e-3
    far = torch.tensor([[5.0, 5.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        m_far, v_far = gp.predict(far)
    # Prior variance: outputscale plus the late term (w = 1 without a step range).
    assert float(v_far[0]) == pytest.approx(1.0 + float(gp.covar_module.late), rel=1e-3)
    assert float(m_far[0]) == pytest.approx(0.0, abs=1e-3)  # prior mean
    assert gp.y_mean == pytest.approx(y.mean()) and gp.y_std == pytest.approx(y.std(ddof=1))


def test_predict_is_differentiable_in_inputs():
    rng = np.random.RandomState(2)
    x = rng.uniform(size=(10, 1))
    gp = _single_point_gp(x, np.sin(4 * x[:, 0]))
    gp.finalise()
    Xq = torch.tensor([[0.37, 1.0]], dtype=torch.float64, requires_grad=True)
    mean, var = gp.predict(Xq)
    (mean + var).sum().backward()
    h = 1e-6
    with torch.no_grad():
        up = sum(gp.predict(torch.tensor([[0.37 + h, 1.0]], dtype=torch.float64)))
        dn = sum(gp.predict(torch.tensor([[0.37 - h, 1.0]], dtype=torch.float64)))
    assert Xq.grad is not None
    assert float(Xq.grad[0, 0]) == pytest.approx(float((up - dn) / (2 * h)), rel=1e-4)


def _late_preference_gp(learn=True):
    rng = np.random.RandomState(3)
    n, length = 24, 20
    x = rng.uniform(size=(n, 1))
    steps = np.arange(1.0, length + 1)
    curves = []
    for xi in x[:, 0]:
        early = rng.normal(scale=1.0, size=length)  # uninformative about x
        late = np.sin(5.0 * xi) + 0.01 * rng.normal(size=length)
        v = np.where(steps > 14, late, early)
        curves.append((steps, v))
    curves, _, _ = curve.normalise_curves(curves)
    padded = curve.PaddedCurves(curves, [length] * n, 1.0, float(length))
    X = torch.from_numpy(np.column_stack([x, np.ones(n)]))
    return JointGP(X, padded, np.zeros(1, dtype=bool), "logistic", learn)


def test_planted_late_preference_is_recovered():
    gp = _late_preference_gp()
    loss = gp.fit([None], np.random.RandomState(0), n_random_starts=1)
    hp = gp.hyperparameters()
    # Later midpoint (and/or sharper weights) explains the data better.
    assert hp["m0"] > curve.DEFAULT_M0 + 0.5
    assert hp["g0"] >= curve.DEFAULT_G0
    with torch.no_grad():
        learned = float(gp.neg_log_posterior())
        assert learned == pytest.approx(loss, rel=1e-6, abs=1e-8)
        gp.compression.set(curve.DEFAULT_M0, curve.DEFAULT_G0)
        default = float(gp.neg_log_posterior())
    assert learned < default


def test_fixed_compression_is_not_fitted():
    gp = _late_preference_gp(learn=False)
    gp.fit([None], np.random.RandomState(0), n_random_starts=0, maxiter=30)
    hp = gp.hyperparameters()
    assert hp["m0"] == pytest.approx(curve.DEFAULT_M0, abs=1e-5)
    assert hp["g0"] == pytest.approx(curve.DEFAULT_G0, abs=1e-5)


def test_fit_is_reproducible():
    rng = np.random.RandomState(4)
    x = rng.uniform(size=(20, 2))
    y = x[:, 0] ** 2 - x[:, 1]
    hps = []
    for _ in range(2):
        gp = _single_point_gp(x, y)
        gp.fit([None], np.random.RandomState(7), n_random_starts=2, maxiter=50)
        hps.append(gp.hyperparameters())
    assert hps[0] == hps[1]


def test_warm_start_round_trip():
    rng = np.random.RandomState(5)
    x = rng.uniform(size=(12, 2))
    gp = _single_point_gp(x, x.sum(1))
    gp.fit([None], np.random.RandomState(0), n_random_starts=0, maxiter=50)
    hp = gp.hyperparameters()
    gp2 = _single_point_gp(x, x.sum(1))
    gp2.load_hyperparameters(hp)
    for key, value in gp2.hyperparameters().items():
        assert value == pytest.approx(hp[key], rel=1e-6, abs=1e-12), key
    # Loading parameters restores the fitted loss (the fit did move away from the defaults).
    gp3 = _single_point_gp(x, x.sum(1))
    with torch.no_grad():
        assert float(gp2.neg_log_posterior()) < float(gp3.neg_log_posterior())


def test_distance_cache_not_stale_after_memory_reuse():
    k = _plain_kernel(np.zeros(1, dtype=bool))
    for trial in range(5):
        A = torch.from_numpy(np.array([[0.0, 0.0], [1.0, 0.0]]))
        k.forward(A, A)
        del A
        B = torch.from_numpy(np.array([[0.0, 0.0], [0.0, 0.0]]))
        assert float(k.forward(B, B)[0, 1]) == pytest.approx(1.0), trial


@pytest.mark.parametrize("run_noise", [False, True])
def test_kernel_matrix_matches_the_gpytorch_kernel(run_noise):
    # The fast path used for predictions and augmentation must be the same kernel as the one
    # fitted through GPyTorch, categorical (Hamming) columns and the per-run term included.
    rng = np.random.RandomState(5)
    x = np.column_stack([rng.uniform(size=(12, 2)), rng.randint(0, 3, size=12)])
    n = len(x)
    X = torch.from_numpy(np.column_stack([x, np.ones(n)]))
    curves = [(np.array([10.0]), np.array([v])) for v in rng.normal(size=n)]
    padded = curve.PaddedCurves(curves, [1] * n, 1.0, 10.0)
    is_cat = np.array([False, False, True])
    gp = JointGP(X, padded, is_cat, "final", False, math.log1p(9.0), run_noise=run_noise)
    gp.load_hyperparameters(
        {
            "m0": 0.0,
            "g0": 1.0,
            "x_lengthscale": [0.3, 0.7, 0.9],
            "t_lengthscale": 0.4,
            "outputscale": 1.7,
            "noise": 1e-3,
            "mean": 0.0,
            "late": 0.6,
            "run": 0.8,
        }
    )
    assert float(gp.covar_module.run.detach()) == (pytest.approx(0.8) if run_noise else 0.0)
    A = torch.from_numpy(np.column_stack([x, rng.uniform(size=12)]))
    B = A[rng.permutation(12)[:7]].clone()
    B[3:, 0] += 0.05  # the first three rows of B are configurations of A (the same runs)
    B[:, -1] = torch.from_numpy(rng.uniform(size=7))
    expected = gp.covar_module(A, B).to_dense().detach()
    np.testing.assert_allclose(
        gp.covariance(A, B).numpy(), expected.numpy(), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        gp.covariance(A).numpy(), gp.covar_module(A).to_dense().detach().numpy(), atol=1e-12
    )
    np.testing.assert_allclose(
        gp.prior_variance(A).numpy(),
        gp.covar_module(A, diag=True).detach().numpy(),
        rtol=1e-12,
    )


def test_log_likelihood_gradient_is_exact():
    rng = np.random.RandomState(6)
    A = rng.normal(size=(6, 6))
    K = torch.from_numpy(A @ A.T + 6 * np.eye(6)).requires_grad_(True)
    r = torch.from_numpy(rng.normal(size=6)).requires_grad_(True)
    # Symmetrised input: the gradient of a function of a symmetric matrix is symmetric.
    assert torch.autograd.gradcheck(
        lambda M, v: _GaussianLogLikelihood.apply(0.5 * (M + M.T), v), (K, r)
    )
    value = _GaussianLogLikelihood.apply(K, r)
    expected = torch.distributions.MultivariateNormal(torch.zeros(6, dtype=K.dtype), K).log_prob(r)
    assert float(value) == pytest.approx(float(expected) + 3 * math.log(2 * math.pi))


def test_late_term_adds_variance_at_long_budgets_only():
    # w(t) = (t - t_lo) / (t_hi - t_lo): no late variance at t_lo, all of it at t_hi, and a
    # covariance between budgets of s * SE + late * w w'.
    span = 99.0
    k = JointKernel(np.zeros(1, dtype=bool), math.log1p(span)).double()
    s, late = float(k.outputscale), float(k.late)
    u = torch.tensor([0.0, math.log1p(9.0) / math.log1p(span), 1.0], dtype=torch.float64)
    X = torch.stack([torch.full_like(u, 0.3), u], dim=-1)
    K = k(X, X).to_dense().detach()
    w = np.array([0.0, 9.0 / span, 1.0])
    np.testing.assert_allclose(np.diag(K.numpy()), s + late * w**2, rtol=1e-10)
    lt = float(k.t_lengthscale)
    want = s * math.exp(-0.5 * float(u[1] - 1.0) ** 2 / lt**2) + late * w[1]
    assert float(K[1, 2]) == pytest.approx(want, rel=1e-10)
    np.testing.assert_allclose(k(X, X, diag=True).detach().numpy(), np.diag(K.numpy()))


def test_inlined_prior_densities_match_gpytorch():
    from gpytorch.priors import GammaPrior
    from gpytorch.priors import NormalPrior

    from optuna_boil._model.gp import _log_prior

    value = torch.tensor([0.05, 0.7, 3.0], dtype=torch.float64)
    for prior in (GammaPrior(3.0, 6.0), GammaPrior(1.1, 0.05), NormalPrior(0.5, 2.0)):
        prior = prior.double()
        np.testing.assert_allclose(
            _log_prior(prior)(value).numpy(), prior.log_prob(value).numpy(), rtol=1e-6
        )


def _runs_gp(run_noise: bool, floor: float, seed: int) -> JointGP:
    """30 runs of a 1-d configuration whose late scores are a smooth function of x plus a large
    run-to-run offset (as in reinforcement learning), three prefixes of each run."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(size=30)
    steps = np.arange(1.0, 11.0)
    curves = [
        (steps, (np.sin(4.0 * xi) + rng.normal()) * steps / 10.0 + 1e-3 * rng.normal(size=10))
        for xi in x
    ]
    curves, _, _ = curve.normalise_curves(curves)
    lengths = [4, 7, 10]
    X = torch.from_numpy(
        np.array([[xi, math.log1p(L - 1) / math.log1p(9.0)] for xi in x for L in lengths])
    )
    padded = curve.PaddedCurves([c for c in curves for _ in lengths], lengths * len(x), 1.0, 10.0)
    is_cat = np.zeros(1, dtype=bool)
    return JointGP(X, padded, is_cat, "logistic", True, math.log1p(9.0), floor, run_noise)


def test_run_noise_keeps_runs_of_nearby_configurations_related():
    # One run per configuration cannot tell run-to-run noise from structure at the scale of the
    # spacing: without a term for it the x lengthscale collapses and every configuration is on
    # its own. With the per-run late term and the barrier the run variance takes the offsets.
    for seed in range(3):
        plain = _runs_gp(False, 0.0, seed)
        plain.fit([None], np.random.RandomState(0), n_random_starts=1)
        runs = _runs_gp(True, 0.01, seed)
        runs.fit([None], np.random.RandomState(0), n_random_starts=1)
        hp_plain, hp_runs = plain.hyperparameters(), runs.hyperparameters()
        assert hp_plain["x_lengthscale"][0] < 0.02, seed
        assert hp_runs["x_lengthscale"][0] > 3 * hp_plain["x_lengthscale"][0], seed
        assert hp_runs["run"] > 0.3 and hp_plain["run"] == 0.0, seed


def _irrelevant_dims_gp(prior: str, seed: int) -> JointGP:
    """12 full runs in 3-d whose scores depend on the first coordinate only."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(size=(12, 3))
    steps = np.arange(1.0, 11.0)
    curves = [(steps, (np.sin(3.0 * xi[0]) + 0.3 * rng.normal()) * steps / 10.0) for xi in x]
    curves, _, _ = curve.normalise_curves(curves)
    X = torch.from_numpy(np.column_stack([x, np.ones(12)]))
    padded = curve.PaddedCurves(curves, [10] * 12, 1.0, 10.0)
    is_cat = np.zeros(3, dtype=bool)
    return JointGP(X, padded, is_cat, "logistic", True, math.log1p(9.0), lengthscale_prior=prior)


def test_dimension_scaled_prior_is_botorchs_lognormal():
    kernel = JointKernel(np.zeros(4, dtype=bool), lengthscale_prior="dim_lognormal")
    prior = dict((name, p) for name, _, p, _, _ in kernel.named_priors())["x_lengthscale_prior"]
    loc, scale = math.sqrt(2.0) + 0.5 * math.log(4.0), math.sqrt(3.0)
    ell = torch.tensor([0.3, 4.0], dtype=torch.float64)
    expected = -torch.log(ell * scale * math.sqrt(2 * math.pi)) - (ell.log() - loc) ** 2 / (
        2 * scale**2
    )
    assert torch.allclose(prior.log_prob(ell), expected)
    with pytest.raises(ValueError, match="'wide'"):
        JointKernel(np.zeros(2, dtype=bool), lengthscale_prior="wide")


def test_dimension_scaled_prior_lets_irrelevant_dimensions_go_long():
    # Gamma(3, 6) holds every lengthscale near 1/3; the dimension-scaled prior lets the fit make
    # the coordinates the scores do not depend on smoother while the relevant one stays short.
    for seed in range(4):
        gamma = _irrelevant_dims_gp("gamma", seed)
        gamma.fit([None], np.random.RandomState(0), n_random_starts=1)
        wide = _irrelevant_dims_gp("dim_lognormal", seed)
        wide.fit([None], np.random.RandomState(0), n_random_starts=1)
        lg = np.asarray(gamma.hyperparameters()["x_lengthscale"])
        lw = np.asarray(wide.hyperparameters()["x_lengthscale"])
        assert lw[1:].sum() > 1.2 * lg[1:].sum(), (seed, lg, lw)
        assert lw[0] < lw[1:].min(), (seed, lw)

import math

import numpy as np
import pytest
from scipy.stats import norm
import torch

from optuna_boil._model import acquisition as acq
from optuna_boil._model.gp import kernel
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import CurveData
from optuna_boil._model.model import ModelConfig
from tests._helpers import curve_data
from tests._helpers import quality
from tests._helpers import space2


torch.set_num_threads(1)

T_LO, T_HI = 1, 20
FAST = ModelConfig(
    n_samples=128, n_local=2, n_random_restarts=0, max_augmented=8, max_gp_points=60
)


def _rows(fm, x, ts):
    return torch.from_numpy(np.column_stack([np.tile(x, (len(ts), 1)), fm.model.scale_t(ts)]))


def test_cost_in_steps_divides_the_value_by_steps():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    fm = BOILModel(space2(), T_LO, T_HI, FAST).fit(curve_data(x, rng.randint(3, 21, 8)), rng)
    ts = np.array([1.0, 5.0, 20.0])
    X = _rows(fm, [0.4, 0.4], ts)
    got = np.array([fm.acquisition(np.array([0.4, 0.4]), t) for t in ts])
    with torch.no_grad():
        value = acq.AugmentedLogEI(fm.posterior, fm.best)(X).numpy()
        mean, var = (v.numpy() for v in fm.posterior.predict(X[-1:]))
    np.testing.assert_allclose(got, value - np.log(ts), rtol=1e-6)
    # Having x fully trained costs t_hi steps; continuing from step 4 costs t_hi - 4.
    s = np.sqrt(var[0])
    z = (mean[0] - fm.delivered) / s
    ei = math.log(s * (norm.pdf(z) + z * norm.cdf(z)))
    assert float(fm.delivery(np.array([0.4, 0.4]))[0]) == pytest.approx(
        ei - math.log(T_HI), rel=1e-6
    )
    cont = fm.delivery(np.array([[0.4, 0.4], [0.7, 0.1]]), start=4.0)
    assert cont.shape == (2,)
    assert float(cont[0]) == pytest.approx(ei - math.log(T_HI - 4), rel=1e-6)


def test_steps_from_zero_count_one_more_step():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(6, 2))
    model = BOILModel(space2(), 0, 19, FAST)
    fm = model.fit(curve_data(x, np.full(6, 10), step0=0), rng)
    assert fm.offset == 1.0
    X = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        value = float(acq.AugmentedLogEI(fm.posterior, fm.best)(X)[0])
        full = float(acq.LogEIAtFull(fm.posterior, fm.delivered)(X)[0])
    # Step 0 is one step of training (cost 1), a full run 20 steps.
    assert fm.acquisition(np.array([0.5, 0.5]), 0) == pytest.approx(value, rel=1e-10)
    assert float(fm.delivery(np.array([0.5, 0.5]))[0]) == pytest.approx(
        full - math.log(20.0), rel=1e-10
    )


def test_cost_decides_how_long_not_which_configuration():
    # Mirror-symmetric data in x0 -> identical posteriors at x0 and 1 - x0.
    rng = np.random.RandomState(1)
    half = rng.uniform(size=(5, 2))
    half[:, 0] *= 0.45
    x = np.vstack([half, np.column_stack([1.0 - half[:, 0], half[:, 1]])])
    lengths = np.tile(rng.randint(4, 21, 5), 2)
    costs = np.exp(2.0 * x[:, 0]) * lengths + 0.5
    data = curve_data(x, lengths, costs=costs)
    q = 1.0 - (x[:, 1] - 0.6) ** 2  # quality independent of x0 keeps the symmetry
    data.values = [q[i] * (1 - np.exp(-s / 4.0)) for i, s in enumerate(data.steps)]
    fm = BOILModel(space2(), T_LO, T_HI, FAST, cost_in_steps=False).fit(data, rng)
    X = torch.tensor([[0.2, 0.5, 0.6], [0.8, 0.5, 0.6]], dtype=torch.float64)
    t = float(fm.model.unscale_t_torch(torch.tensor(0.6, dtype=torch.float64)))
    with torch.no_grad():
        mean, var = fm.posterior.predict(X)
    values = np.array([fm.acquisition(X[i, :2].numpy(), t) for i in range(2)])
    assert float(mean[0]) == pytest.approx(float(mean[1]), abs=1e-6)
    assert float(var[0]) == pytest.approx(float(var[1]), rel=1e-5)
    assert fm.cost.rate(np.array([[0.8, 0.5]]))[0] > fm.cost.rate(np.array([[0.2, 0.5]]))[0]
    # The cost enters relative to a full run of the same configuration, so a configuration
    # that is cheaper per step gains nothing from it (only the overhead's share differs).
    rate = fm.cost.rate(np.array([[0.2, 0.5], [0.8, 0.5]]))
    rel = (rate * t + fm.cost.overhead) / (rate * T_HI + fm.cost.overhead)
    assert values[0] - values[1] == pytest.approx(math.log(rel[1] / rel[0]), abs=1e-6)
    assert abs(values[0] - values[1]) < 0.1


def test_predict_and_to_metric_units():
    rng = np.random.RandomState(6)
    x = rng.uniform(size=(8, 2))
    q = quality(x)
    # One report each, at the full budget: the compression of a one-point curve is its value.
    data = CurveData(
        x=x,
        steps=[np.array([float(T_HI)]) for _ in range(8)],
        values=[np.array([100.0 + 50.0 * qi]) for qi in q],
        costs=np.full(8, np.nan),
        running=np.zeros(8, dtype=bool),
        budgets=np.full(8, np.nan),
    )
    fm = BOILModel(
        space2(),
        T_LO,
        T_HI,
        ModelConfig(n_samples=64, n_local=1, n_random_restarts=0, augmentation=False),
    ).fit(data, rng)
    mean, std = fm.predict(x, np.full(8, T_HI))
    finals = np.array([v[-1] for v in data.values])
    np.testing.assert_allclose(fm.to_metric(mean), finals, atol=0.05 * np.ptp(finals))
    assert np.all(std > 0)
    assert fm.span == pytest.approx(np.ptp(np.concatenate(data.values)))
    assert fm.low == pytest.approx(finals.min())


def test_gp_size_capped():
    rng = np.random.RandomState(4)
    n = 50
    x = rng.uniform(size=(n, 2))
    lengths = rng.randint(1, 21, n)
    running = np.zeros(n, dtype=bool)
    running[-4:] = True
    budgets = np.full(n, np.nan)
    budgets[-4:] = 20.0
    lengths[-4:] = np.minimum(lengths[-4:], 5)
    data = curve_data(x, lengths, running=running, budgets=budgets)
    cfg = ModelConfig(n_samples=64, n_local=1, n_random_restarts=0, max_gp_points=30)
    fm = BOILModel(space2(), T_LO, T_HI, cfg).fit(data, rng)
    assert len(fm.points) <= 30
    assert fm.n_real <= 30
    assert fm.gp.train_inputs[0].shape[0] == len(fm.points)
    kept = {i for i, _ in fm.points}
    assert set(range(n - 4, n)) <= kept  # running trials are kept
    best = int(np.argmax([v[-1] for v in data.values]))
    assert best in kept
    # One fantasy per pending run, in the posterior only.
    assert fm.posterior.X.shape[0] == len(fm.points) + 4
    np.testing.assert_allclose(fm.posterior.X[-4:, -1].numpy(), 1.0)


def test_add_pending_conditions_the_posterior_on_the_run():
    rng = np.random.RandomState(9)
    x = rng.uniform(size=(6, 2))
    fm = BOILModel(space2(), T_LO, T_HI, FAST).fit(curve_data(x, np.full(6, 5)), rng)
    new = np.array([0.55, 0.45])
    mean0, std0 = fm.predict(new[None], np.array([T_HI]))
    n0 = fm.posterior.X.shape[0]
    fm.add_pending(new, T_HI)
    mean1, std1 = fm.predict(new[None], np.array([T_HI]))
    assert fm.posterior.X.shape[0] == n0 + 1
    assert len(fm.extra_pending) == 1 and fm.extra_pending[0][1] == T_HI
    assert float(mean1[0]) == pytest.approx(float(mean0[0]), abs=1e-6)
    assert float(std1[0]) < 0.5 * float(std0[0])
    # The value of another new run there drops with it.
    before = fm.acquisition(np.array([0.56, 0.45]), T_HI)
    fm.add_pending(np.array([0.56, 0.45]), T_HI)
    assert fm.acquisition(np.array([0.56, 0.45]), T_HI) < before


def test_search_returns_candidates_best_first():
    rng = np.random.RandomState(10)
    x = rng.uniform(size=(8, 2))
    fm = BOILModel(space2(), T_LO, T_HI, FAST).fit(curve_data(x, rng.randint(2, 21, 8)), rng)
    X, T, F = fm.search(np.random.RandomState(0))
    assert X.shape[1] == 2 and len(X) == len(T) == len(F) > 1
    assert np.all(np.diff(F) <= 0)
    assert np.all((T >= T_LO) & (T <= T_HI)) and T.dtype.kind == "i"
    for k in (0, 1, len(F) - 1):
        assert F[k] == pytest.approx(fm.acquisition(X[k], T[k]), rel=1e-8, abs=1e-10)
    _, T5, _ = fm.search(np.random.RandomState(0), fixed_t=5)
    assert np.all(T5 == 5)
    X_fixed, _, F_fixed = fm.search(np.random.RandomState(0), fixed_x=x[0])
    np.testing.assert_allclose(X_fixed, np.tile(x[0], (len(X_fixed), 1)))
    assert np.all(np.diff(F_fixed) <= 0)


def test_augmentation_adds_points_within_room():
    rng = np.random.RandomState(7)
    x = rng.uniform(size=(6, 2))
    data = curve_data(x, np.full(6, 20))
    cfg = ModelConfig(n_samples=64, n_local=1, n_random_restarts=0, max_augmented=5)
    fm = BOILModel(space2(), T_LO, T_HI, cfg).fit(data, rng)
    assert fm.n_real == 6
    assert 1 <= fm.n_augmented <= 5
    for _, length in fm.points[6:]:
        assert 1 <= length < 20
    assert len(set(fm.points)) == len(fm.points)


def test_acquisition_at_the_full_budget_consistent_with_acquisition_module():
    rng = np.random.RandomState(8)
    x = rng.uniform(size=(6, 2))
    fm = BOILModel(space2(), T_LO, T_HI, FAST).fit(curve_data(x, np.full(6, 10)), rng)
    X = torch.tensor([[0.1, 0.2, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        # At t_hi the run is the final score itself: correlation 1.
        mean, var = fm.posterior.predict(X)
        want = (
            acq.log_ei(mean, var, fm.best)
            + acq.log_information(var, fm.posterior.noise)
            - math.log(20.0)
        )
    assert fm.acquisition(np.array([0.1, 0.2]), T_HI) == pytest.approx(float(want[0]), rel=1e-8)


def test_fit_requires_data():
    data = CurveData(
        x=np.zeros((2, 2)),
        steps=[np.zeros(0), np.zeros(0)],
        values=[np.zeros(0), np.zeros(0)],
        costs=np.full(2, np.nan),
        running=np.ones(2, dtype=bool),
        budgets=np.full(2, np.nan),
    )
    with pytest.raises(ValueError):
        BOILModel(space2(), T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    with pytest.raises(ValueError):
        BOILModel(space2(), 5, 4)


def _posterior(fm, X):
    """Joint posterior mean and covariance at ``X`` by dense linear algebra (a reference)."""
    post = fm.posterior
    params = fm.gp.covar_module.params()
    Xtr = post.X
    with torch.no_grad():
        K = kernel(Xtr, Xtr, params).numpy() + float(fm.gp.noise) * np.eye(len(Xtr))
        ks = kernel(X, Xtr, params).numpy()
        Kss = kernel(X, X, params).numpy()
        resid = (post.y - fm.gp.mean_module(Xtr)).numpy()
        mean = fm.gp.mean_module(X).numpy() + ks @ np.linalg.solve(K, resid)
    return mean, Kss - ks @ np.linalg.solve(K, ks.T)


def test_final_budget_acquisition_matches_its_formula():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    fm = BOILModel(space2(), T_LO, T_HI, FAST).fit(curve_data(x, rng.randint(3, 21, 8)), rng)
    ts = np.array([1.0, 5.0, 12.0, 20.0])
    X = _rows(fm, [0.4, 0.7], ts)
    got = np.array([fm.acquisition(np.array([0.4, 0.7]), t) for t in ts])
    with torch.no_grad():
        mean_f, var_f, var, cov = (v.numpy() for v in fm.posterior.predict_pair(X, 1.0))
    mean, C = _posterior(fm, X)  # the last row is (x, t_hi) itself
    np.testing.assert_allclose(mean_f, mean[-1], rtol=1e-7)
    np.testing.assert_allclose(var_f, C[-1, -1], rtol=1e-6)
    np.testing.assert_allclose(var, np.diag(C), rtol=1e-6)
    np.testing.assert_allclose(cov, C[:, -1], rtol=1e-6, atol=1e-12)
    s, s_n = np.sqrt(C[-1, -1]), math.sqrt(float(fm.gp.noise))
    z = (mean[-1] - fm.best) / s
    log_ei = np.log(s * (norm.pdf(z) + z * norm.cdf(z)))
    corr = np.abs(C[:, -1]) / np.sqrt(np.diag(C) * C[-1, -1])
    info = 1.0 - s_n / np.sqrt(np.diag(C) + s_n**2)
    want = log_ei + np.log(corr) + np.log(info) - np.log(ts)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The incumbent is the best posterior mean at the full budget among observed configurations.
    observed = torch.from_numpy(np.column_stack([x, np.ones(8)]))
    assert fm.best == pytest.approx(float(_posterior(fm, observed)[0].max()), rel=1e-7)


def test_delivered_incumbent_is_the_best_fully_trained_configuration():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    none_full = BOILModel(space2(), T_LO, T_HI, FAST).fit(
        curve_data(x, np.full(6, 8)), np.random.RandomState(0)
    )
    lengths = np.array([8, 8, 8, T_HI, T_HI, 8])
    some_full = BOILModel(space2(), T_LO, T_HI, FAST).fit(
        curve_data(x, lengths), np.random.RandomState(0)
    )
    for fm, rows in ((none_full, np.arange(6)), (some_full, np.array([3, 4]))):
        X = torch.from_numpy(np.column_stack([x[rows], np.ones(len(rows))]))
        with torch.no_grad():
            mean = fm.posterior.predict(X)[0].numpy()
        # While none is fully trained: the worst observed configuration.
        want = mean.min() if fm is none_full else mean.max()
        assert fm.delivered == pytest.approx(float(want), rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(some_full.fully_trained(), [3, 4])

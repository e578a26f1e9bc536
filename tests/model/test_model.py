import dataclasses
import math

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
from scipy.stats import norm
import torch

from optuna_boil._model import acquisition as acq
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import CurveData
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace


torch.set_num_threads(1)

T_LO, T_HI = 1, 20
FAST = ModelConfig(
    n_samples=128, n_local=2, n_random_restarts=0, max_augmented=8, max_gp_points=60
)
FAST_BUDGET = dataclasses.replace(FAST, acquisition="budget")  # BOIL's EI of the score at t


def _space2():
    return SearchSpace({"x0": FloatDistribution(0.0, 1.0), "x1": FloatDistribution(0.0, 1.0)})


def _quality(x):
    return 1.0 - (x[:, 0] - 0.3) ** 2 - (x[:, 1] - 0.6) ** 2


def _data(x, lengths, running=None, budgets=None, costs=None, step0=1):
    n = len(x)
    q = _quality(x) if x.shape[1] == 2 else np.zeros(n)
    steps, values = [], []
    for i in range(n):
        s = np.arange(step0, step0 + lengths[i], dtype=float)
        steps.append(s)
        values.append(q[i] * (1.0 - np.exp(-(s - step0 + 1) / 4.0)))
    return CurveData(
        x=np.asarray(x, dtype=float),
        steps=steps,
        values=values,
        costs=np.full(n, np.nan) if costs is None else costs,
        running=np.zeros(n, dtype=bool) if running is None else running,
        budgets=np.full(n, np.nan) if budgets is None else budgets,
    )


def test_cost_in_steps_divides_ei_by_steps():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    fm = BOILModel(_space2(), T_LO, T_HI, FAST_BUDGET).fit(_data(x, rng.randint(3, 21, 8)), rng)
    ts = np.array([1.0, 5.0, 20.0])
    X = torch.from_numpy(np.column_stack([np.tile([0.4, 0.4], (3, 1)), fm.model.scale_t(ts)]))
    with torch.no_grad():
        got = fm.log_acq(X).numpy()
        mean_t, var_t = fm.gp.predict(X)
    mean, std = mean_t.numpy(), np.sqrt(var_t.numpy())
    z = (mean - fm.best) / std
    want = np.log(std * (norm.pdf(z) + z * norm.cdf(z))) - np.log(ts)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Continuing from step 4 to t costs t - 4 steps.
    with torch.no_grad():
        cont = fm.log_acq(X[1:], start=torch.tensor(4.0, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(cont, want[1:] + np.log(ts[1:]) - np.log(ts[1:] - 4), rtol=1e-6)


def test_steps_from_zero_count_one_more_step():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(6, 2))
    model = BOILModel(_space2(), 0, 19, FAST)
    fm = model.fit(_data(x, np.full(6, 10), step0=0), rng)
    assert fm.offset == 1.0
    X = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        c = fm._cost(X)
    assert float(c[0]) == 1.0  # step 0 is one step of training


def test_cost_decides_how_long_not_which_configuration():
    # Mirror-symmetric data in x0 -> identical posteriors at x0 and 1 - x0.
    rng = np.random.RandomState(1)
    half = rng.uniform(size=(5, 2))
    half[:, 0] *= 0.45
    x = np.vstack([half, np.column_stack([1.0 - half[:, 0], half[:, 1]])])
    lengths = np.tile(rng.randint(4, 21, 5), 2)
    costs = np.exp(2.0 * x[:, 0]) * lengths + 0.5
    data = _data(x, lengths, costs=costs)
    q = 1.0 - (x[:, 1] - 0.6) ** 2  # quality independent of x0 keeps the symmetry
    data.values = [q[i] * (1 - np.exp(-s / 4.0)) for i, s in enumerate(data.steps)]
    fm = BOILModel(_space2(), T_LO, T_HI, FAST, cost_in_steps=False).fit(data, rng)
    X = torch.tensor([[0.2, 0.5, 0.6], [0.8, 0.5, 0.6]], dtype=torch.float64)
    with torch.no_grad():
        mean, var = fm.gp.predict(X)
        values = fm.log_acq(X).numpy()
    assert float(mean[0]) == pytest.approx(float(mean[1]), abs=1e-6)
    assert float(var[0]) == pytest.approx(float(var[1]), rel=1e-5)
    assert fm.cost.rate(np.array([[0.8, 0.5]]))[0] > fm.cost.rate(np.array([[0.2, 0.5]]))[0]
    # The cost enters relative to a full run of the same configuration, so a configuration
    # that is cheaper per step gains nothing from it (only the overhead's share differs).
    t = float(fm.model.unscale_t_torch(torch.tensor(0.6)))
    rate = fm.cost.rate(np.array([[0.2, 0.5], [0.8, 0.5]]))
    rel = (rate * t + fm.cost.overhead) / (rate * T_HI + fm.cost.overhead)
    assert values[0] - values[1] == pytest.approx(math.log(rel[1] / rel[0]), abs=1e-6)
    assert abs(values[0] - values[1]) < 0.1


def _grid_space():
    return SearchSpace({"c": CategoricalDistribution(["a", "b"]), "i": IntDistribution(1, 3)})


def test_suggest_never_repeats_observed_runs():
    space = _grid_space()
    # Five of the six configurations observed, some of them to the full budget.
    params = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]
    x = space.encode_many([{"c": c, "i": i} for c, i in params])
    lengths = np.array([20, 20, 7, 20, 3])
    steps = [np.arange(1.0, n + 1) for n in lengths]
    quality = np.array([0.9, 0.2, 0.5, 0.95, 0.6])
    values = [q * (1 - np.exp(-s / 4)) for q, s in zip(quality, steps, strict=True)]
    data = CurveData(
        x=x,
        steps=steps,
        values=values,
        costs=np.full(5, np.nan),
        running=np.zeros(5, dtype=bool),
        budgets=np.full(5, np.nan),
        numbers=np.arange(10, 15),
    )
    fm = BOILModel(space, T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    for seed in range(4):
        for fixed_t in (None, 20, 5):
            d = fm.suggest(np.random.RandomState(seed), fixed_t=fixed_t)
            same = np.all(np.abs(x - d.x) < 1e-9, axis=1)
            # A configuration seen before trains again from the start, and the decision says
            # which trial it repeats.
            assert d.retrain_of == (int(data.numbers[same][0]) if same.any() else None)
            if same.any():
                assert d.t > lengths[same].max()
            assert T_LO <= d.t <= T_HI
            if fixed_t is not None:
                assert d.t == fixed_t
            assert np.isfinite(d.log_acq)


def test_a_configuration_seen_before_names_the_trial_it_repeats():
    space = _grid_space()
    x = space.encode_many([{"c": c, "i": i} for c in "ab" for i in (1, 2, 3)])
    data = _data(x, np.array([3, 5, 3, 4, 3, 2]))  # every configuration seen, none to the end
    data.numbers = np.array([7, 3, 9, 4, 8, 2])
    fm = BOILModel(space, T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    for seed in range(3):
        d = fm.suggest(np.random.RandomState(seed))
        same = np.flatnonzero(np.all(np.abs(x - d.x) < 1e-9, axis=1))
        assert same.size == 1 and d.retrain_of == data.numbers[same[0]]


def test_suggest_respects_pending_budgets():
    space = _grid_space()
    x = space.encode_many([{"c": c, "i": i} for c in "ab" for i in (1, 2, 3)])
    lengths = np.array([2, 2, 2, 2, 2, 2])
    running = np.array([True, True, True, True, True, False])
    budgets = np.array([20.0, 20.0, 20.0, 20.0, 20.0, np.nan])
    data = _data(x, lengths, running=running, budgets=budgets)
    fm = BOILModel(space, T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    for seed in range(3):
        d = fm.suggest(np.random.RandomState(seed))
        np.testing.assert_allclose(d.x, x[5])  # every other configuration is booked
        assert d.t > 2


def test_fixed_seed_gives_identical_decisions():
    rng = np.random.RandomState(2)
    x = rng.uniform(size=(10, 2))
    data = _data(x, rng.randint(2, 21, 10))
    out = []
    for _ in range(2):
        fm = BOILModel(_space2(), T_LO, T_HI, FAST).fit(data, np.random.RandomState(5))
        d = fm.suggest(np.random.RandomState(9))
        out.append((d.x.tolist(), d.t, d.log_acq, fm.hyperparameters()))
    assert out[0] == out[1]


def test_continuation():
    rng = np.random.RandomState(3)
    x = rng.uniform(size=(8, 2))
    lengths = np.array([20, 5, 8, 12, 3, 20, 6, 10])
    cfg = dataclasses.replace(FAST, continue_inform=0.0)  # stop or train to the end
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(_data(x, lengths), rng)
    done = fm.continuation(0, 20.0, np.random.RandomState(0))
    assert done.extend_to is None and done.log_value == -np.inf
    assert fm.continuation(5, 25.0, np.random.RandomState(0)).extend_to is None
    c = fm.continuation(1, 5.0, np.random.RandomState(0))
    assert np.isfinite(c.log_value) and np.isfinite(c.log_new)
    if c.extend_to is None:
        assert c.log_value < c.log_new
    else:
        assert c.log_value >= c.log_new and c.extend_to == T_HI


def test_continuation_trains_the_best_configuration_to_the_end():
    """Nothing is fully trained and one configuration is clearly best: train it to T."""
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = _data(x, np.full(6, 8))
    fm = BOILModel(_space2(), T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    best = int(np.argmax([v[-1] for v in data.values]))
    c = fm.continuation(best, 8.0, np.random.RandomState(0))
    assert c.extend_to == T_HI, c
    worst = int(np.argmin([v[-1] for v in data.values]))
    assert fm.log_delivery(x[worst], 8.0) < fm.log_delivery(x[best], 8.0)


def test_delivery_is_measured_against_the_best_fully_trained_configuration():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    none_full = BOILModel(_space2(), T_LO, T_HI, FAST).fit(
        _data(x, np.full(6, 8)), np.random.RandomState(0)
    )
    lengths = np.array([T_HI, 8, 8, 8, 8, 8])  # the best configuration is fully trained
    best_full = BOILModel(_space2(), T_LO, T_HI, FAST).fit(
        _data(x, lengths), np.random.RandomState(0)
    )
    assert list(best_full.fully_trained()) == [0]
    assert best_full.delivered > none_full.delivered
    # Once the best is delivered, a poor configuration is not worth training to the end.
    c = best_full.continuation(2, 8.0, np.random.RandomState(0))
    assert c.extend_to is None


def test_recommend_best_curve():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = _data(x, np.full(6, 20))
    fm = BOILModel(_space2(), T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    idx, value, std = fm.recommend()
    assert idx == 0 and std >= 0
    finals = np.array([v[-1] for v in data.values])
    assert value == pytest.approx(finals[0], abs=0.1 * (finals.max() - finals.min()))


def test_predict_and_to_metric_units():
    rng = np.random.RandomState(6)
    x = rng.uniform(size=(8, 2))
    data = _data(x, np.full(8, 20))
    data.values = [100.0 + 50.0 * v for v in data.values]
    fm = BOILModel(
        _space2(),
        T_LO,
        T_HI,
        ModelConfig(
            target="final", n_samples=64, n_local=1, n_random_restarts=0, augmentation=False
        ),
    ).fit(data, rng)
    mean, std = fm.predict(x, np.full(8, T_HI))
    finals = np.array([v[-1] for v in data.values])
    np.testing.assert_allclose(fm.to_metric(mean), finals, atol=0.05 * np.ptp(finals))
    assert np.all(std > 0)
    assert fm.span == pytest.approx(np.ptp(np.concatenate(data.values)))


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
    data = _data(x, lengths, running=running, budgets=budgets)
    cfg = ModelConfig(n_samples=64, n_local=1, n_random_restarts=0, max_gp_points=30)
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, rng)
    assert len(fm.points) <= 30
    assert fm.n_real <= 30
    assert fm.gp.train_inputs[0].shape[0] <= 30 + 4
    kept = {i for i, _ in fm.points}
    assert set(range(n - 4, n)) <= kept  # running trials are kept
    best = int(np.argmax([v[-1] for v in data.values]))
    assert best in kept
    assert fm.gp.train_inputs[0].shape[0] == len(fm.points) + 4  # one fantasy per pending run


def test_augmentation_adds_points_within_room():
    rng = np.random.RandomState(7)
    x = rng.uniform(size=(6, 2))
    data = _data(x, np.full(6, 20))
    cfg = ModelConfig(n_samples=64, n_local=1, n_random_restarts=0, max_augmented=5)
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, rng)
    assert fm.n_real == 6
    assert 1 <= fm.n_augmented <= 5
    for _, length in fm.points[6:]:
        assert 1 <= length < 20
    assert len(set(fm.points)) == len(fm.points)


def test_log_ei_consistent_with_acquisition_module():
    rng = np.random.RandomState(8)
    x = rng.uniform(size=(6, 2))
    fm = BOILModel(_space2(), T_LO, T_HI, FAST_BUDGET).fit(_data(x, np.full(6, 10)), rng)
    X = torch.tensor([[0.1, 0.2, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        mean, var = fm.gp.predict(X)
        want = acq.log_ei(mean, var, fm.best) - math.log(20.0)
        assert float(fm.log_acq(X)[0]) == pytest.approx(float(want[0]), rel=1e-10)


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
        BOILModel(_space2(), T_LO, T_HI, FAST).fit(data, np.random.RandomState(0))
    with pytest.raises(ValueError):
        BOILModel(_space2(), 5, 4)


def _posterior(fm, X):
    """Joint posterior mean and covariance at ``X`` by dense linear algebra (a reference)."""
    gp = fm.gp
    Xtr = gp.train_inputs[0]
    K = gp.covariance(Xtr).numpy() + float(gp.noise) * np.eye(len(Xtr))
    ks = gp.covariance(X, Xtr).numpy()
    Kss = gp.covariance(X).numpy()
    resid = (gp.train_targets - gp.mean_module(Xtr)).detach().numpy()
    mean = gp.mean_module(X).detach().numpy() + ks @ np.linalg.solve(K, resid)
    return mean, Kss - ks @ np.linalg.solve(K, ks.T)


@pytest.mark.parametrize("run_noise", [False, True])
def test_final_budget_acquisition_matches_its_formula(run_noise):
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    config = dataclasses.replace(FAST, run_noise=run_noise, lengthscale_floor=0.01 * run_noise)
    fm = BOILModel(_space2(), T_LO, T_HI, config).fit(_data(x, rng.randint(3, 21, 8)), rng)
    ts = np.array([1.0, 5.0, 12.0, 20.0])
    X = torch.from_numpy(np.column_stack([np.tile([0.4, 0.7], (4, 1)), fm.model.scale_t(ts)]))
    with torch.no_grad():
        got = fm.log_acq(X).numpy()
        mean_f, var_f, var, cov = (v.numpy() for v in fm.gp.predict_pair(X, 1.0))
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


def _noise_then_signal(n, seed, t_lo=10, t_hi=150, every=10, short=20):
    """Short runs (to step ``short``) of a task whose reports are noise until step 40."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(size=(n, 2))
    steps = [np.arange(t_lo, short + 1, every, dtype=float) for _ in range(n)]
    values = [20.0 + 5.0 * rng.normal(size=s.size) for s in steps]
    data = CurveData(
        x=x,
        steps=steps,
        values=values,
        costs=np.full(n, np.nan),
        running=np.zeros(n, dtype=bool),
        budgets=np.full(n, np.nan),
    )
    # The acquisition's own budget (``first_full`` would make the first one full anyway).
    config = ModelConfig(first_full=False)
    return BOILModel(_space2(), t_lo, t_hi, config, t_new_lo=short), data


@pytest.mark.parametrize("seed", [0, 1])
def test_uninformative_short_runs_lead_to_a_longer_budget(seed):
    # Early reports that do not depend on x (RL before learning starts) say nothing about the
    # final score: the default acquisition asks for a longer run, BOIL's EI of the score at t
    # keeps paying for the cheapest budget.
    model, data = _noise_then_signal(40, seed)
    fitted = model.fit(data, np.random.RandomState(seed))
    assert fitted.suggest(np.random.RandomState(seed)).t > 40
    model.config = dataclasses.replace(model.config, acquisition="budget")
    fitted = model.fit(data, np.random.RandomState(seed))
    assert fitted.suggest(np.random.RandomState(seed)).t == 20


def test_fully_trained_on_a_sparse_report_grid():
    """Reports every 7 steps up to 52 end at 49: such a run is fully trained."""
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9]])
    steps = [np.arange(7.0, 50.0, 7.0), np.array([7.0, 14.0]), np.array([7.0]), np.array([7.0])]
    q = _quality(x)
    data = CurveData(
        x=x,
        steps=steps,
        values=[q[i] * (1 - np.exp(-s / 10)) for i, s in enumerate(steps)],
        costs=np.full(4, np.nan),
        running=np.zeros(4, dtype=bool),
        budgets=np.full(4, np.nan),
    )
    fm = BOILModel(_space2(), 1, 52, FAST).fit(data, np.random.RandomState(0))
    assert fm.model.step_interval == 7
    assert list(fm.fully_trained()) == [0]
    assert fm.recommend()[0] == 0


def test_deliver_new_trains_a_new_configuration_fully_only_when_delivery_wins():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = _data(x, np.full(6, 4))
    cfg = ModelConfig(
        n_samples=128,
        n_local=2,
        n_random_restarts=0,
        max_augmented=8,
        deliver_new=True,
        first_full=False,
    )
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    d = fm.suggest(np.random.RandomState(1))
    if d.t == T_HI:
        assert d.log_acq == pytest.approx(fm.log_delivery(d.x))
    else:
        assert d.log_acq >= fm.log_delivery(d.x)


def test_deliver_best_trains_the_configuration_worth_most_fully_trained():
    """``deliver_best`` over the whole space (``delivery_candidates="any"``): the full run of
    the configuration whose delivery is worth most competes with the acquisition's choice; it
    matches a brute-force search of the delivery value, lands near the best configuration while
    none is fully trained, and repeats no full run."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(10, 2))
    data = _data(x, np.full(10, 6))
    cfg = dataclasses.replace(FAST, deliver_best=True, delivery_candidates="any")
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    found = fm._best_delivery(np.random.RandomState(1))
    assert found is not None
    row, value = found
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    brute = np.array([fm.log_delivery(g) for g in grid])
    assert value == pytest.approx(fm.log_delivery(row[:2]))
    assert value >= brute.max() - 0.05
    # While nothing is fully trained the incumbent is the worst configuration seen: delivery
    # follows the posterior mean, i.e. the best region of this quality (0.3, 0.6).
    assert np.max(np.abs(row[:2] - np.array([0.3, 0.6]))) < 0.25
    d = fm.suggest(np.random.RandomState(1))
    assert d.t == T_HI and d.log_acq >= value - 1e-9
    # A worker deciding at the same moment as another takes the next distinct candidate.
    second = fm._best_delivery(np.random.RandomState(1), skip=1)
    assert second is not None and np.max(np.abs(second[0] - row)) >= 0.05
    assert second[1] <= value + 1e-9
    # Once that configuration is fully trained it is not delivered again.
    data2 = _data(np.vstack([x, row[None, :2]]), np.append(np.full(10, 6), T_HI))
    fm2 = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data2, np.random.RandomState(0))
    again = fm2._best_delivery(np.random.RandomState(1))
    assert again is None or np.max(np.abs(again[0][:2] - row[:2])) > 1e-3


def test_deliver_observed_trains_again_the_best_configuration_seen():
    """``delivery_candidates="observed"``: the configuration trained fully is the observed one
    whose delivery is worth most, never a fully trained one."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(10, 2))
    lengths = np.full(10, 6)
    best = int(np.argmax(_quality(x)))
    lengths[best] = T_HI  # the best is fully trained: the next one is delivered
    cfg = dataclasses.replace(FAST, deliver_best=True, delivery_candidates="observed")
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(_data(x, lengths), np.random.RandomState(0))
    found = fm._best_delivery(np.random.RandomState(1))
    assert found is not None
    row, value = found
    values = [fm.log_delivery(x[i]) if i != best else -np.inf for i in range(10)]
    assert np.allclose(row[:2], x[int(np.argmax(values))]) and row[2] == 1.0
    assert value == pytest.approx(max(values))
    with pytest.raises(ValueError, match="'nearby'"):
        dataclasses.replace(cfg, delivery_candidates="nearby")
    # The trial a retraining repeats is the longest run of that configuration.
    data = _data(np.vstack([x, x[:1]]), np.append(lengths, 9))
    data.numbers = np.arange(11) + 100
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    assert fm._earlier_run(x[0]) == (100 if lengths[0] > 9 else 110)
    assert fm._earlier_run(x[1]) == 101
    assert fm._earlier_run(np.array([2.0, 2.0])) is None
    data.numbers = np.zeros(0, dtype=np.int64)  # data without trial numbers
    assert fm._earlier_run(x[0]) is None


def test_first_full_trains_a_configuration_fully_while_none_is():
    """``first_full``: while no configuration is fully trained and no running trial is budgeted
    to the end, the next new run is a full one (its value is then that of delivery); once one
    is, or while one runs to ``t_hi``, the acquisition decides the budget again."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    base = dataclasses.replace(FAST, deliver_best=False)

    def suggest(data, first_full):
        cfg = dataclasses.replace(base, first_full=first_full)
        fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
        return fm, fm.suggest(np.random.RandomState(1))

    data = _data(x, np.full(8, 2))
    _, free = suggest(data, False)
    assert free.t < T_HI  # what the acquisition alone picks on these short curves
    fm, forced = suggest(data, True)
    assert forced.t == T_HI
    assert forced.log_acq == pytest.approx(fm.log_delivery(forced.x))
    # Continuing a run is compared with the acquisition's own choice, not the forced one.
    assert fm.suggest(np.random.RandomState(1), comparison=True).t == free.t
    # A running trial is already budgeted to the end: no second full run is forced.
    running = np.zeros(9, dtype=bool)
    running[8] = True
    pending = _data(np.vstack([x, rng.uniform(size=(1, 2))]), np.append(np.full(8, 2), 1),
                    running=running, budgets=np.where(running, float(T_HI), np.nan))  # fmt: skip
    assert suggest(pending, True)[1].t < T_HI
    # A configuration is fully trained: nothing is forced.
    done = _data(np.vstack([x, rng.uniform(size=(1, 2))]), np.append(np.full(8, 2), T_HI))
    assert suggest(done, True)[1].t == suggest(done, False)[1].t


def test_parallel_runs_never_train_one_configuration_fully_twice():
    """With several workers, a configuration is trained fully by one trial only: a run whose
    configuration another trial already trains to the end stops at its decision point, and a
    configuration with a running trial is left to that trial rather than started again."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(10, 2))
    x[3] = [0.3, 0.6]  # the best configuration of this quality
    cfg = dataclasses.replace(FAST, deliver_best=True, delivery_candidates="observed")
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(_data(x, np.full(10, 6)), rng)
    assert fm.continuation(3, 6.0, np.random.RandomState(0)).extend_to == T_HI
    found = fm._best_delivery(np.random.RandomState(1))
    assert found is not None and np.allclose(found[0][:2], x[3])
    # Another worker trains x[3] again to the full budget (running, nothing reported yet).
    data = _data(np.vstack([x, x[3:4]]), np.append(np.full(10, 6), 0))
    data.running[10], data.budgets[10] = True, T_HI
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    c = fm.continuation(3, 6.0, np.random.RandomState(0))
    assert c.extend_to is None and "another trial" in c.reason
    assert fm.continuation(0, 6.0, np.random.RandomState(0)).extend_to == T_HI
    # x[3]'s first run is still running, short of its decision point: no second run of it.
    running = np.zeros(10, dtype=bool)
    running[3] = True
    data = _data(x, np.full(10, 6), running=running, budgets=np.where(running, 8.0, np.nan))
    fm = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    found = fm._best_delivery(np.random.RandomState(1))
    assert found is not None and not np.allclose(found[0][:2], x[3])


def test_continuation_may_train_on_short_of_the_end_to_learn_more():
    """``continue_inform=r``: a run may go on to any reported step of at least ``r`` times the
    step reached, valued by the acquisition with only the remaining steps as cost."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    data = _data(x, np.array([T_HI, 3, 3, 3, 3, 3, 3, 3]))
    cfg = dataclasses.replace(FAST, continue_inform=0.0)
    base = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    cfg = dataclasses.replace(FAST, continue_inform=2.0)
    inform = BOILModel(_space2(), T_LO, T_HI, cfg).fit(data, np.random.RandomState(0))
    later = np.arange(6, T_HI + 1)  # at least twice the step reached (3)
    short = 0
    for i in range(1, 8):
        X = torch.from_numpy(
            np.column_stack([np.tile(x[i], (later.size, 1)), inform.model.scale_t(later)])
        )
        with torch.no_grad():
            brute = inform.log_acq(X, torch.tensor(3.0, dtype=torch.float64)).numpy()
        step, value = inform._best_extension(x[i], 3.0, 2.0)
        assert step == later[np.argmax(brute)] and value == pytest.approx(brute.max())
        c0 = base.continuation(i, 3.0, np.random.RandomState(0))
        c = inform.continuation(i, 3.0, np.random.RandomState(0))
        assert c0.extend_to in (None, T_HI)  # without it: the full budget or stop
        assert c.log_new == pytest.approx(c0.log_new)
        assert c.log_value == pytest.approx(max(c0.log_value, value))
        if c.extend_to is not None and c.extend_to < T_HI:
            short += 1
            assert c.extend_to == step >= 6 and "learn more" in c.reason
    assert short > 0

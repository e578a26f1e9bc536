"""The policy on top of a fitted model: new runs, retraining, delivery, continuation, the
recommendation."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
import pytest
import torch

from optuna_boil import _policy
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import CurveData
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._policy import Policy
from tests._helpers import curve_data
from tests._helpers import quality
from tests._helpers import space2


torch.set_num_threads(1)

T_LO, T_HI = 1, 20
FAST = ModelConfig(
    n_samples=128, n_local=2, n_random_restarts=0, max_augmented=8, max_gp_points=60
)


def _grid_space():
    return SearchSpace({"c": CategoricalDistribution(["a", "b"]), "i": IntDistribution(1, 3)})


def _fit(data, cfg=FAST, space=None, seed=0):
    space = space2() if space is None else space
    fm = BOILModel(space, T_LO, T_HI, cfg).fit(data, np.random.RandomState(seed))
    return fm, Policy(fm)


def _delivery(fm, x, start=None):
    return float(fm.delivery(np.asarray(x), start=start)[0])


def test_policy_does_not_import_torch():
    tree = ast.parse(inspect.getsource(_policy))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module.split(".")[0])
    assert "numpy" in imported  # the walk does see the imports
    assert "torch" not in imported and "gpytorch" not in imported
    assert "torch" not in vars(_policy)


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
    _, policy = _fit(data, space=space)
    for seed in range(4):
        for fixed_t in (None, 20, 5):
            d = policy.suggest(np.random.RandomState(seed), fixed_t=fixed_t)
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
    data = curve_data(x, np.array([3, 5, 3, 4, 3, 2]))  # every configuration seen, none to the end
    data.numbers = np.array([7, 3, 9, 4, 8, 2])
    _, policy = _fit(data, space=space)
    for seed in range(3):
        d = policy.suggest(np.random.RandomState(seed))
        same = np.flatnonzero(np.all(np.abs(x - d.x) < 1e-9, axis=1))
        assert same.size == 1 and d.retrain_of == data.numbers[same[0]]


def test_suggest_respects_pending_budgets():
    space = _grid_space()
    x = space.encode_many([{"c": c, "i": i} for c in "ab" for i in (1, 2, 3)])
    lengths = np.array([2, 2, 2, 2, 2, 2])
    running = np.array([True, True, True, True, True, False])
    budgets = np.array([20.0, 20.0, 20.0, 20.0, 20.0, np.nan])
    data = curve_data(x, lengths, running=running, budgets=budgets)
    _, policy = _fit(data, space=space)
    for seed in range(3):
        d = policy.suggest(np.random.RandomState(seed))
        np.testing.assert_allclose(d.x, x[5])  # every other configuration is booked
        assert d.t > 2


def test_pending_runs_added_while_deciding_count_as_observed():
    space = _grid_space()
    x = space.encode_many([{"c": c, "i": i} for c in "ab" for i in (1, 2, 3)])
    fm, policy = _fit(curve_data(x, np.full(6, 2)), space=space)
    assert policy.observed_until(x[4]) == 2.0
    assert policy.observed_until(x[4], exclude=4) == -np.inf
    fm.add_pending(x[4], 15)
    assert policy.observed_until(x[4]) == 15.0
    assert policy.same(x[4]).sum() == 1


def test_fixed_seed_gives_identical_decisions():
    rng = np.random.RandomState(2)
    x = rng.uniform(size=(10, 2))
    data = curve_data(x, rng.randint(2, 21, 10))
    out = []
    for _ in range(2):
        fm, policy = _fit(data, seed=5)
        d = policy.suggest(np.random.RandomState(9))
        out.append((d.x.tolist(), d.t, d.log_acq, fm.hyperparameters()))
    assert out[0] == out[1]


def test_budget_for_a_given_configuration():
    rng = np.random.RandomState(2)
    x = rng.uniform(size=(8, 2))
    fm, policy = _fit(curve_data(x, rng.randint(2, 21, 8)))
    given = np.array([0.25, 0.55])
    d = policy.budget_for(given, np.random.RandomState(0))
    np.testing.assert_allclose(d.x, given)
    assert T_LO <= d.t <= T_HI
    brute = [fm.acquisition(given, t) for t in range(T_LO, T_HI + 1)]
    assert d.log_acq == pytest.approx(max(brute), abs=1e-6)


def test_continuation():
    rng = np.random.RandomState(3)
    x = rng.uniform(size=(8, 2))
    lengths = np.array([20, 5, 8, 12, 3, 20, 6, 10])
    _, policy = _fit(curve_data(x, lengths), seed=3)
    done = policy.continuation(0, 20.0, np.random.RandomState(0))
    assert done.extend_to is None and done.log_value == -np.inf
    assert policy.continuation(5, 25.0, np.random.RandomState(0)).extend_to is None
    c = policy.continuation(1, 5.0, np.random.RandomState(0))
    # Continuing is valued as having run 1 fully trained, counting only the remaining steps,
    # against the best new run under the same posterior; the larger one decides.
    fm = policy.fitted
    assert c.log_value == pytest.approx(_delivery(fm, x[1], start=5.0))
    new = policy.suggest(np.random.RandomState(0), comparison=True).log_acq
    assert c.log_new == pytest.approx(new)
    assert c.extend_to == (T_HI if c.log_value >= c.log_new else None)
    assert c.reason == ("train to the full budget" if c.extend_to else "a new run is worth more")


def test_continuation_trains_the_best_configuration_to_the_end():
    """Nothing is fully trained and one configuration is clearly best: train it to T."""
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = curve_data(x, np.full(6, 8))
    fm, policy = _fit(data)
    best = int(np.argmax([v[-1] for v in data.values]))
    c = policy.continuation(best, 8.0, np.random.RandomState(0))
    assert c.extend_to == T_HI, c
    assert c.log_value == pytest.approx(_delivery(fm, x[best], start=8.0))
    worst = int(np.argmin([v[-1] for v in data.values]))
    assert _delivery(fm, x[worst], 8.0) < _delivery(fm, x[best], 8.0)


def test_delivery_is_measured_against_the_best_fully_trained_configuration():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    none_full, _ = _fit(curve_data(x, np.full(6, 8)))
    lengths = np.array([T_HI, 8, 8, 8, 8, 8])  # the best configuration is fully trained
    best_full, policy = _fit(curve_data(x, lengths))
    assert list(best_full.fully_trained()) == [0]
    assert best_full.delivered > none_full.delivered
    # Once the best is delivered, a poor configuration is not worth training to the end.
    c = policy.continuation(2, 8.0, np.random.RandomState(0))
    assert c.extend_to is None


def test_recommend_best_curve():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = curve_data(x, np.full(6, 20))
    _, policy = _fit(data)
    idx, value, std = policy.recommend()
    assert idx == 0 and std >= 0
    finals = np.array([v[-1] for v in data.values])
    assert value == pytest.approx(finals[0], abs=0.1 * (finals.max() - finals.min()))


def test_recommend_on_a_sparse_report_grid():
    """Reports every 7 steps up to 52 end at 49: such a run is fully trained and recommended."""
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9]])
    steps = [np.arange(7.0, 50.0, 7.0), np.array([7.0, 14.0]), np.array([7.0]), np.array([7.0])]
    q = quality(x)
    data = CurveData(
        x=x,
        steps=steps,
        values=[q[i] * (1 - np.exp(-s / 10)) for i, s in enumerate(steps)],
        costs=np.full(4, np.nan),
        running=np.zeros(4, dtype=bool),
        budgets=np.full(4, np.nan),
    )
    fm = BOILModel(space2(), 1, 52, FAST).fit(data, np.random.RandomState(0))
    assert fm.model.step_interval == 7
    assert list(fm.fully_trained()) == [0]
    assert Policy(fm).recommend()[0] == 0


def test_a_failed_run_at_the_full_budget_is_not_fully_trained():
    """A FAIL run that reached ``t_hi`` (with the best curve) is not delivered: ``recommend``
    prefers a completed one, and a full run is still needed while only failed runs reached the
    end."""
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    lengths = np.array([T_HI, 8, 8, T_HI, 8, 8])
    data = curve_data(x, lengths)  # x[0] is the best configuration of this quality
    fm, policy = _fit(data)
    assert list(fm.fully_trained()) == [0, 3] and policy.recommend()[0] == 0
    data.failed = np.array([True, False, False, False, False, False])
    fm, policy = _fit(data)
    assert list(fm.fully_trained()) == [3]
    assert policy.recommend()[0] == 3
    assert not policy.needs_full_run()
    # Only the failed run reached the end: nothing is fully trained yet.
    data = curve_data(x, np.array([T_HI, 8, 8, 8, 8, 8]))
    data.failed = np.array([True, False, False, False, False, False])
    fm, policy = _fit(data)
    assert fm.fully_trained().size == 0 and policy.needs_full_run()
    assert Policy(fm).suggest(np.random.RandomState(0)).t == T_HI


def test_every_configuration_trained_fully_trains_the_recommended_one_again():
    """A tiny space whose every configuration is trained to ``t_hi``: the next run trains the
    recommended (best) configuration again, not a random one."""
    space = SearchSpace({"c": CategoricalDistribution(["a", "b", "c"])})
    x = space.encode_many([{"c": c} for c in "abc"])
    steps = [np.arange(1.0, T_HI + 1) for _ in range(3)]
    quality = np.array([0.2, 0.9, 0.5])  # "b", neither the first nor the last, is the best
    data = CurveData(
        x=x,
        steps=steps,
        values=[q * (1 - np.exp(-s / 4)) for q, s in zip(quality, steps, strict=True)],
        costs=np.full(3, np.nan),
        running=np.zeros(3, dtype=bool),
        budgets=np.full(3, np.nan),
        numbers=np.array([4, 5, 6]),
    )
    fm, policy = _fit(data, space=space)
    best = policy.recommend()[0]
    assert best == 1
    for seed in range(5):
        d = policy.suggest(np.random.RandomState(seed))
        np.testing.assert_allclose(d.x, x[best])
        assert d.t == T_HI and d.retrain_of == 5 and np.isfinite(d.log_acq)
        fixed = policy.suggest(np.random.RandomState(seed), fixed_t=7)
        np.testing.assert_allclose(fixed.x, x[best])
        assert fixed.t == 7
        assert fixed.log_acq == pytest.approx(fm.acquisition(x[best], 7))


@pytest.mark.parametrize("seed", [0, 1])
def test_uninformative_short_runs_lead_to_a_longer_budget(seed):
    # Early reports that do not depend on x (RL before learning starts) say nothing about the
    # final score: the acquisition asks for a longer run than the short ones seen.
    rng = np.random.RandomState(seed)
    n, t_lo, t_hi, every, short = 40, 10, 150, 10, 20
    x = rng.uniform(size=(n, 2))
    steps = [np.arange(t_lo, short + 1, every, dtype=float) for _ in range(n)]
    data = CurveData(
        x=x,
        steps=steps,
        values=[20.0 + 5.0 * rng.normal(size=s.size) for s in steps],
        costs=np.full(n, np.nan),
        running=np.zeros(n, dtype=bool),
        budgets=np.full(n, np.nan),
    )
    # The acquisition's own budget (``first_full`` would make the first one full anyway).
    model = BOILModel(space2(), t_lo, t_hi, ModelConfig(first_full=False), t_new_lo=short)
    fitted = model.fit(data, np.random.RandomState(seed))
    assert Policy(fitted).suggest(np.random.RandomState(seed)).t > 40


def test_deliver_new_trains_a_new_configuration_fully_only_when_delivery_wins():
    x = np.array([[0.3, 0.6], [0.9, 0.1], [0.0, 0.0], [0.6, 0.9], [0.1, 0.3], [0.95, 0.95]])
    data = curve_data(x, np.full(6, 4))
    cfg = dataclasses.replace(FAST, max_gp_points=200, deliver_new=True, first_full=False)
    fm, policy = _fit(data, cfg)
    d = policy.suggest(np.random.RandomState(1))
    if d.t == T_HI:
        assert d.log_acq == pytest.approx(_delivery(fm, d.x))
    else:
        assert d.log_acq >= _delivery(fm, d.x)


def test_deliver_best_trains_again_the_best_configuration_seen():
    """``deliver_best``: the configuration trained fully is the observed one whose delivery is
    worth most, never a fully trained one; parallel workers take distinct ones."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(10, 2))
    lengths = np.full(10, 6)
    best = int(np.argmax(quality(x)))
    lengths[best] = T_HI  # the best is fully trained: the next one is delivered
    cfg = dataclasses.replace(FAST, deliver_best=True)
    fm, policy = _fit(curve_data(x, lengths), cfg)
    found = policy._best_delivery()
    assert found is not None
    row, value = found
    values = [_delivery(fm, x[i]) if i != best else -np.inf for i in range(10)]
    np.testing.assert_allclose(row, x[int(np.argmax(values))])
    assert value == pytest.approx(max(values))
    d = policy.suggest(np.random.RandomState(1))
    assert d.log_acq >= value - 1e-9
    # A worker deciding at the same moment as another takes the next distinct candidate.
    second = policy._best_delivery(skip=1)
    assert second is not None and np.max(np.abs(second[0] - row)) >= 0.05
    assert second[1] <= value + 1e-9
    # The trial a retraining repeats is the longest run of that configuration.
    data = curve_data(np.vstack([x, x[:1]]), np.append(lengths, 9))
    data.numbers = np.arange(11) + 100
    _, policy = _fit(data, cfg)
    assert policy.earlier_run(x[0]) == (100 if lengths[0] > 9 else 110)
    assert policy.earlier_run(x[1]) == 101
    assert policy.earlier_run(np.array([2.0, 2.0])) is None
    data.numbers = np.zeros(0, dtype=np.int64)  # data without trial numbers
    assert policy.earlier_run(x[0]) is None


def test_first_full_trains_a_configuration_fully_while_none_is():
    """``first_full``: while no configuration is fully trained and no running trial is budgeted
    to the end, the next new run is a full one (its value is then that of delivery); once one
    is, or while one runs to ``t_hi``, the acquisition decides the budget again."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(8, 2))
    base = dataclasses.replace(FAST, deliver_best=False)

    def suggest(data, first_full):
        cfg = dataclasses.replace(base, first_full=first_full)
        fm, policy = _fit(data, cfg)
        return fm, policy, policy.suggest(np.random.RandomState(1))

    data = curve_data(x, np.full(8, 2))
    _, _, free = suggest(data, False)
    assert free.t < T_HI  # what the acquisition alone picks on these short curves
    fm, policy, forced = suggest(data, True)
    assert policy.needs_full_run()
    assert forced.t == T_HI
    assert forced.log_acq == pytest.approx(_delivery(fm, forced.x))
    # Continuing a run is compared with the acquisition's own choice, not the forced one.
    assert policy.suggest(np.random.RandomState(1), comparison=True).t == free.t
    # A run added while deciding to the full budget: no second full run is forced.
    fm.add_pending(forced.x, T_HI)
    assert not policy.needs_full_run()
    # A running trial is already budgeted to the end: no second full run is forced.
    running = np.zeros(9, dtype=bool)
    running[8] = True
    pending = curve_data(np.vstack([x, rng.uniform(size=(1, 2))]), np.append(np.full(8, 2), 1),
                    running=running, budgets=np.where(running, float(T_HI), np.nan))  # fmt: skip
    assert suggest(pending, True)[2].t < T_HI
    # A configuration is fully trained: nothing is forced.
    done = curve_data(np.vstack([x, rng.uniform(size=(1, 2))]), np.append(np.full(8, 2), T_HI))
    assert suggest(done, True)[2].t == suggest(done, False)[2].t


def test_parallel_runs_never_train_one_configuration_fully_twice():
    """With several workers, a configuration is trained fully by one trial only: a run whose
    configuration another trial already trains to the end stops at its decision point, and a
    configuration with a running trial is left to that trial rather than started again."""
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(10, 2))
    x[3] = [0.3, 0.6]  # the best configuration of this quality
    cfg = dataclasses.replace(FAST, deliver_best=True)
    _, policy = _fit(curve_data(x, np.full(10, 6)), cfg)
    assert policy.continuation(3, 6.0, np.random.RandomState(0)).extend_to == T_HI
    found = policy._best_delivery()
    assert found is not None and np.allclose(found[0], x[3])
    # Another worker trains x[3] again to the full budget (running, nothing reported yet).
    data = curve_data(np.vstack([x, x[3:4]]), np.append(np.full(10, 6), 0))
    data.running[10], data.budgets[10] = True, T_HI
    _, policy = _fit(data, cfg)
    c = policy.continuation(3, 6.0, np.random.RandomState(0))
    assert c.extend_to is None and "another trial" in c.reason
    assert policy.continuation(0, 6.0, np.random.RandomState(0)).extend_to == T_HI
    # x[3]'s first run is still running, short of its decision point: no second run of it.
    running = np.zeros(10, dtype=bool)
    running[3] = True
    data = curve_data(x, np.full(10, 6), running=running, budgets=np.where(running, 8.0, np.nan))
    _, policy = _fit(data, cfg)
    found = policy._best_delivery()
    assert found is not None and not np.allclose(found[0], x[3])


def test_explore_draws_an_unobserved_configuration_across_the_box():
    # On the quality bowl the acquisition keeps to the optimum at (0.3, 0.6); an exploring
    # decision (random interleaving) is a random configuration, seen nowhere before, with a
    # budget inside the range.
    rng = np.random.RandomState(4)
    x = rng.uniform(size=(10, 2))
    lengths = rng.randint(2, 21, 10)
    lengths[:3] = T_HI  # some trained fully: the study has its first full training
    _, policy = _fit(curve_data(x, lengths))
    model_x, random_x = [], []
    for seed in range(12):
        model_x.append(policy.suggest(np.random.RandomState(seed)).x)
        d = policy.suggest(np.random.RandomState(seed), explore=True)
        assert d.drawn and T_LO <= d.t <= T_HI
        assert not policy.same(d.x).any()
        random_x.append(d.x)
    model_x, random_x = np.array(model_x), np.array(random_x)
    spread = np.std(random_x, axis=0)
    assert np.all(spread > 0.15)  # a uniform draw's std is 0.29
    assert np.all(spread > 2 * np.std(model_x, axis=0))


def test_explore_with_a_given_step_keeps_it():
    rng = np.random.RandomState(5)
    x = rng.uniform(size=(8, 2))
    _, policy = _fit(curve_data(x, np.full(8, T_HI)))
    d = policy.suggest(np.random.RandomState(0), fixed_t=T_HI, explore=True)
    assert d.drawn and d.t == T_HI and not policy.same(d.x).any()


def test_no_random_draw_while_the_study_needs_its_first_full_training():
    # Nothing trained to T_HI: the first full training is the model's best guess, so an
    # exploring decision is the model's own one.
    rng = np.random.RandomState(6)
    x = rng.uniform(size=(8, 2))
    _, policy = _fit(curve_data(x, rng.randint(2, 15, 8)))
    assert policy.needs_full_run()
    model = policy.suggest(np.random.RandomState(1))
    explored = policy.suggest(np.random.RandomState(1), explore=True)
    assert not explored.drawn and not model.drawn
    np.testing.assert_allclose(explored.x, model.x)
    assert explored.t == model.t == T_HI

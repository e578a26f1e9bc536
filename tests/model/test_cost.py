import math

import numpy as np
import pytest
import torch

from optuna_boil._model.cost import CostModel


def _model(n_cont=2, cats=()):
    is_cat = np.array([False] * n_cont + [True] * len(cats))
    n_choices = np.array([0] * n_cont + list(cats), dtype=np.int64)
    return CostModel(is_cat, n_choices)


def test_fit_recovers_log_linear_rate_and_overhead():
    rng = np.random.RandomState(0)
    n = 50
    x = rng.uniform(size=(n, 2))
    t = rng.uniform(5, 100, size=n)
    true_rate = np.exp(-1.0 + 1.5 * x[:, 0] - 0.5 * x[:, 1])
    overhead = 3.0
    cost = true_rate * t + overhead
    m = _model()
    m.fit(x, t, cost)
    assert m.overhead == pytest.approx(overhead, rel=0.15)
    x_test = rng.uniform(size=(20, 2))
    want = np.exp(-1.0 + 1.5 * x_test[:, 0] - 0.5 * x_test[:, 1])
    np.testing.assert_allclose(m.rate(x_test), want, rtol=0.05)
    assert m.theta[1] > 1.0 and m.theta[2] < -0.2  # direction of each effect


def test_fit_with_categorical_effect():
    rng = np.random.RandomState(1)
    n = 60
    x = np.column_stack([rng.uniform(size=n), rng.randint(3, size=n)])
    t = rng.uniform(1, 50, size=n)
    rate = np.exp(0.2 * x[:, 0] + np.array([0.0, 1.0, -1.0])[x[:, 1].astype(int)])
    m = _model(1, (3,))
    m.fit(x, t, rate * t)
    for c, factor in [(0, 1.0), (1, math.e), (2, 1 / math.e)]:
        got = m.rate(np.array([[0.5, c]]))[0]
        assert got == pytest.approx(math.exp(0.1) * factor, rel=0.1)
    assert m.overhead < 0.05


def test_fit_ignores_bad_rows_and_few_rows_use_median():
    m = _model(1)
    x = np.array([[0.1], [0.9], [0.5], [0.5]])
    t = np.array([10.0, 20.0, np.nan, 0.0])
    cost = np.array([20.0, 80.0, 5.0, 3.0])
    m.fit(x, t, cost)
    # Two usable rows: rate = median(2, 4) = 3 everywhere, no overhead.
    np.testing.assert_allclose(m.rate(np.array([[0.0], [1.0]])), [3.0, 3.0])
    assert m.overhead == 0.0


def test_rate_torch_matches_rate_with_categoricals():
    m = _model(2, (3,))
    m.theta = np.array([0.3, -0.7, 1.2, 0.5, -0.4, 0.1])
    m.overhead = 2.5
    x = torch.tensor([[0.2, 0.6, 0.0], [0.9, 0.1, 2.0], [0.5, 0.5, 1.0]], dtype=torch.float64)
    cat = [0.5, -0.4, 0.1]
    want = [math.exp(0.3 - 0.7 * r[0] + 1.2 * r[1] + cat[int(r[2])]) for r in x.tolist()]
    np.testing.assert_allclose(m.rate_torch(x).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(m.rate_torch(x).numpy(), m.rate(x.numpy()), rtol=1e-12)


def test_rate_torch_differentiable_in_continuous_coords():
    m = _model(2)
    m.theta = np.array([0.0, 2.0, -1.0])
    x = torch.tensor([[0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    r = m.rate_torch(x)
    r.sum().backward()
    assert x.grad is not None
    val = math.exp(2.0 * 0.3 - 0.4)
    np.testing.assert_allclose(x.grad.numpy(), [[2.0 * val, -1.0 * val]], rtol=1e-12)

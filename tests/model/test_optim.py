import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
import torch

from optuna_boil._model import optim
from optuna_boil._model.search_space import SearchSpace


def _identity(X: np.ndarray) -> np.ndarray:
    return X.copy()


def _uniform(dim: int):
    def sample(n: int, rng: np.random.RandomState) -> np.ndarray:
        return rng.uniform(size=(n, dim))

    return sample


SPACE = SearchSpace(
    {
        "a": FloatDistribution(0.0, 1.0),
        "c": CategoricalDistribution(["p", "q", "r"]),
        "i": IntDistribution(1, 10),
    }
)
TARGET = SPACE.encode({"a": 0.3, "c": "r", "i": 7})
FLT, CAT, INT = (SPACE.names.index(n) for n in ("a", "c", "i"))


def _mixed_acqf(X: torch.Tensor) -> torch.Tensor:
    # Smooth in a and i, best at a = 0.3, i = 7; choice "r" adds a bonus.
    return (
        -((X[:, FLT] - TARGET[FLT]) ** 2)
        - (X[:, INT] - TARGET[INT]) ** 2
        + 0.5 * (X[:, CAT] == TARGET[CAT]).to(X.dtype)
    )


def _stuck_sample(n: int, rng: np.random.RandomState) -> np.ndarray:
    # Every draw has choice "p" and i = 3: only moves through neighbours reach "r" and 7.
    x = SPACE.sample(n, rng)
    x[:, CAT] = 0.0
    x[:, INT] = SPACE.encode({"a": 0.5, "c": "p", "i": 3})[INT]
    return x


@pytest.mark.parametrize("with_neighbours", [True, False])
def test_discrete_step_finds_the_best_categorical_and_integer(with_neighbours):
    continuous = ~SPACE.is_categorical
    continuous[INT] = False  # The integer is left to the discrete step.
    X, f = optim.maximise(
        _mixed_acqf,
        _stuck_sample,
        SPACE.round,
        continuous,
        np.random.RandomState(0),
        n_samples=64,
        n_local=4,
        neighbours=SPACE.neighbours if with_neighbours else None,
    )
    best = SPACE.decode(X[0])
    assert best["a"] == pytest.approx(0.3, abs=1e-4)  # L-BFGS-B refined the float
    if with_neighbours:
        assert (best["c"], best["i"]) == ("r", 7)
        assert f[0] == pytest.approx(0.5, abs=1e-7)
    else:
        # Rounding after the fact never leaves the starts' discrete values.
        assert (best["c"], best["i"]) == ("p", 3)
        assert f[0] < 0.0


def _banded(X: torch.Tensor) -> torch.Tensor:
    """Smooth, best at (0.7, 0.4), but NaN on the band 0.4 < x0 < 0.6."""
    f = -((X[:, 0] - 0.7) ** 2) - (X[:, 1] - 0.4) ** 2
    band = (X[:, 0] > 0.4) & (X[:, 0] < 0.6)
    return torch.where(band, torch.full_like(f, float("nan")), f)


def test_non_finite_start_and_run_do_not_stop_the_others():
    calls = []

    def acqf(X: torch.Tensor) -> torch.Tensor:
        calls.append((X.requires_grad, X.detach().numpy().copy()))
        return _banded(X)

    warm = np.array(
        [
            [0.1, 0.4],  # its way uphill crosses the NaN band
            [0.5, 0.2],  # NaN start: never refined
            [0.95, 0.9],  # refined to the maximum
        ]
    )
    X, f = optim.maximise(
        acqf,
        _uniform(2),
        _identity,
        np.ones(2, dtype=bool),
        np.random.RandomState(0),
        n_samples=2,
        n_local=0,
        warm=warm,
    )
    np.testing.assert_allclose(X[0], [0.7, 0.4], atol=1e-4)
    assert f[0] == pytest.approx(0.0, abs=1e-8)
    # The run from (0.1, 0.4) did step into the band, ended there and kept its start.
    refined_rows = np.vstack([rows for grad, rows in calls if grad])
    in_band = (refined_rows[:, 0] > 0.4) & (refined_rows[:, 0] < 0.6)
    assert in_band.any()
    assert not np.any(np.all(refined_rows == [0.5, 0.2], axis=1))  # NaN start not refined
    rows = {tuple(r): v for r, v in zip(X.tolist(), f.tolist(), strict=True)}
    assert rows[(0.1, 0.4)] == pytest.approx(-0.36)
    # Non-finite values come last.
    assert np.isnan(f[-1]) and (0.5, 0.2) in rows


def test_each_start_is_refined_on_its_own():
    # Two starts whose objectives differ in scale by 1e9: each run reaches its own maximum.
    def acqf(X: torch.Tensor) -> torch.Tensor:
        scale = torch.where(X[:, 1] > 0.5, 1e6, 1e-3)
        return -scale * (X[:, 0] - 0.3) ** 2

    warm = np.array([[0.9, 0.9], [0.9, 0.1]])
    X, f = optim.maximise(
        acqf,
        _uniform(2),
        _identity,
        np.array([True, False]),
        np.random.RandomState(0),
        n_samples=2,
        n_local=0,
        warm=warm,
    )
    for second in (0.9, 0.1):
        row = X[X[:, 1] == second][0]  # the best row with this second coordinate
        assert row[0] == pytest.approx(0.3, abs=1e-3)


def test_warm_rows_are_refined():
    # A narrow peak at 0.83 that two preliminary points miss; the warm start is in its basin.
    def acqf(X: torch.Tensor) -> torch.Tensor:
        x = X[:, 0]
        return 0.5 * torch.exp(-((x - 0.2) ** 2) / 0.1) + torch.exp(-((x - 0.83) ** 2) / 1e-3)

    kwargs = dict(n_samples=2, n_local=2)
    X, f = optim.maximise(
        acqf, _uniform(1), _identity, np.ones(1, dtype=bool), np.random.RandomState(1), **kwargs
    )
    assert abs(X[0, 0] - 0.83) > 0.05  # Without the warm start the narrow peak is missed.
    X, f = optim.maximise(
        acqf,
        _uniform(1),
        _identity,
        np.ones(1, dtype=bool),
        np.random.RandomState(1),
        warm=np.array([[0.8]]),
        **kwargs,
    )
    assert X[0, 0] == pytest.approx(0.83, abs=1e-4)
    assert f[0] > 1.0  # the top of the narrow peak (plus the wide bump's tail)
    assert np.any(X[:, 0] == 0.8)  # The warm row itself is a candidate too.


def _mixed_call(rng_seed: int, **kwargs):
    return optim.maximise(
        _mixed_acqf,
        SPACE.sample,
        SPACE.round,
        ~SPACE.is_categorical,
        np.random.RandomState(rng_seed),
        n_samples=128,
        n_local=4,
        neighbours=SPACE.neighbours,
        **kwargs,
    )


def test_deterministic_for_a_fixed_seed():
    X1, f1 = _mixed_call(3)
    X2, f2 = _mixed_call(3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(f1, f2)
    X3, _ = _mixed_call(4)
    assert X3.shape != X1.shape or not np.array_equal(X1, X3)


def test_output_sorted_rounded_and_unique():
    X, f = _mixed_call(5)
    assert X.shape[1] == SPACE.dim and len(X) == len(f) > 0
    np.testing.assert_array_equal(SPACE.round(X), X)
    assert np.all(np.diff(f) <= 0)
    assert len(np.unique(X, axis=0)) == len(X)
    # The values are the acquisition's at the returned rows.
    with torch.no_grad():
        np.testing.assert_allclose(_mixed_acqf(torch.from_numpy(X)).numpy(), f, atol=1e-12)


def test_public_and_private_lbfgsb_paths_agree(monkeypatch):
    # The lockstep driver of SciPy's routine gives exactly what scipy.optimize.minimize gives.
    X1, f1 = _mixed_call(6)
    monkeypatch.setattr(optim, "_USE_SETULB", False)
    X2, f2 = _mixed_call(6)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(f1, f2)


def test_raising_acquisition_during_refinement_keeps_starts():
    def acqf(X: torch.Tensor) -> torch.Tensor:
        if X.requires_grad:
            raise RuntimeError("no gradients today")
        return -((X[:, 0] - 0.3) ** 2)

    X, f = optim.maximise(
        acqf, _uniform(1), _identity, np.ones(1, dtype=bool), np.random.RandomState(0), 16, 4
    )
    assert len(X) == 16  # the preliminary points only (refined = starts)
    assert np.all(np.diff(f) <= 0)

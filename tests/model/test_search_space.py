import math

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_boil._model.search_space import SearchSpace


DISTS = {
    "a_float": FloatDistribution(-2.0, 3.0),
    "b_logf": FloatDistribution(1e-3, 1.0, log=True),
    "c_int": IntDistribution(1, 10),
    "d_logi": IntDistribution(1, 100, log=True),
    "e_stepf": FloatDistribution(0.0, 1.0, step=0.25),
    "f_stepi": IntDistribution(0, 20, step=5),
    "g_cat": CategoricalDistribution(["x", 3, None]),
}


@pytest.fixture
def space():
    return SearchSpace(DISTS)


def test_names_sorted_and_dim(space):
    assert space.names == sorted(DISTS)
    assert space.dim == 7
    assert list(space.is_categorical) == [False] * 6 + [True]


def test_encode_hand_values(space):
    x = space.encode(
        {
            "a_float": 0.5,
            "b_logf": 0.01,
            "c_int": 1,
            "d_logi": 10,
            "e_stepf": 0.25,
            "f_stepi": 20,
            "g_cat": None,
        }
    )
    assert x[0] == pytest.approx(2.5 / 5.0)
    assert x[1] == pytest.approx(1.0 / 3.0)  # log10 scale: (-2 - -3) / 3
    assert x[2] == pytest.approx(0.5 / 10.0)  # cell [0.5, 10.5]
    lo, hi = math.log(0.5), math.log(100.5)
    assert x[3] == pytest.approx((math.log(10) - lo) / (hi - lo))
    assert x[4] == pytest.approx((0.25 + 0.125) / 1.25)  # cell [-0.125, 1.125]
    assert x[5] == pytest.approx((20 + 2.5) / 25.0)  # cell [-2.5, 22.5]
    assert x[6] == 2.0  # categorical: its index


@pytest.mark.parametrize(
    "name,values",
    [
        ("a_float", [-2.0, 0.123, 3.0]),
        ("b_logf", [1e-3, 0.0371, 1.0]),
        ("c_int", list(range(1, 11))),
        ("d_logi", [1, 2, 3, 17, 99, 100]),
        ("e_stepf", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("f_stepi", [0, 5, 10, 15, 20]),
        ("g_cat", ["x", 3, None]),
    ],
)
def test_round_trip(name, values):
    space = SearchSpace({name: DISTS[name]})
    for v in values:
        x = space.encode({name: v})
        assert 0.0 <= x[0] <= (1.0 if name != "g_cat" else 2.0)
        back = space.decode(x)[name]
        if isinstance(v, float):
            assert back == pytest.approx(v, rel=1e-12, abs=1e-12)
        else:
            assert back == v and type(back) is type(v)


def test_categorical_encoded_as_index():
    space = SearchSpace({"c": CategoricalDistribution(["p", "q", "r", "s"])})
    assert [space.encode({"c": c})[0] for c in "pqrs"] == [0.0, 1.0, 2.0, 3.0]
    assert space.decode(np.array([2.4]))["c"] == "r"
    assert space.decode(np.array([7.0]))["c"] == "s"  # clipped


def test_int_cells_have_equal_width():
    space = SearchSpace({"i": IntDistribution(1, 10)})
    for k in range(1, 11):
        lo, hi = (k - 1) / 10.0, k / 10.0
        assert space.decode(np.array([lo + 1e-6]))["i"] == k
        assert space.decode(np.array([hi - 1e-6]))["i"] == k


def test_round_snaps_to_grid(space):
    rng = np.random.RandomState(0)
    x = space.sample(40, rng)
    r = space.round(x)
    assert r.shape == x.shape
    for row_x, row_r in zip(x, r, strict=True):
        params = space.decode(row_x)
        # The rounded vector is the encoding of what the raw vector decodes to.
        np.testing.assert_allclose(row_r, space.encode(params), atol=1e-12)
        assert space.decode(row_r) == pytest.approx(params)
    np.testing.assert_allclose(space.round(r), r, atol=1e-12)  # idempotent
    # Grid points: integers, multiples of the steps, categorical indices.
    dec = [space.decode(row) for row in r]
    assert all(float(p["e_stepf"] / 0.25).is_integer() for p in dec)
    assert all(p["f_stepi"] % 5 == 0 for p in dec)
    assert set(r[:, 6]) <= {0.0, 1.0, 2.0}
    # Continuous float coordinate untouched.
    np.testing.assert_allclose(r[:, 0], x[:, 0])


def test_round_clips_out_of_box():
    space = SearchSpace({"i": IntDistribution(0, 4, step=2)})
    r = space.round(np.array([[-0.5], [1.7], [0.45]]))
    assert [space.decode(row)["i"] for row in r] == [0, 4, 2]


def test_sample_in_box(space):
    x = space.sample(100, np.random.RandomState(1))
    assert x.shape == (100, 7)
    assert np.all((x[:, :6] >= 0) & (x[:, :6] <= 1))
    assert set(np.unique(x[:, 6])) == {0.0, 1.0, 2.0}

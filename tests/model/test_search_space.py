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


def test_same_separates_neighbouring_ints_in_a_wide_range():
    space = SearchSpace({"x": IntDistribution(1, 5000)})
    one, two, seven = (space.encode({"x": v}) for v in (1, 2, 7))
    assert np.max(np.abs(one - two)) < 1e-3  # What the old max-norm threshold merged.
    assert not space.same(one[None], two)[0]
    X = np.vstack([seven, seven + 4e-5, space.round(seven + 4e-5), one, two])
    np.testing.assert_array_equal(space.same(X, seven), [True, True, True, False, False])


def test_same_log_int():
    space = SearchSpace({"x": IntDistribution(1, 100000, log=True)})
    X = space.encode_many([{"x": v} for v in (99999, 100000, 99998, 1, 2)])
    np.testing.assert_array_equal(space.same(X, X[1]), [False, True, False, False, False])
    np.testing.assert_array_equal(space.same(X, X[3]), [False, False, False, True, False])
    # A hair inside the cell of 100000 still is 100000.
    assert space.same(X[1:2] - 1e-12, X[1])[0]


def test_same_stepped_float_and_categorical():
    space = SearchSpace(
        {"s": FloatDistribution(0.0, 1.0, step=0.001), "c": CategoricalDistribution(["a", "b"])}
    )
    a = space.encode({"s": 0.5, "c": "a"})
    X = space.encode_many(
        [
            {"s": 0.5, "c": "a"},
            {"s": 0.501, "c": "a"},
            {"s": 0.5, "c": "b"},
            {"s": 0.499, "c": "b"},
        ]
    )
    np.testing.assert_array_equal(space.same(X, a), [True, False, False, False])
    # A categorical index a little off its integer is still that choice.
    jittered = X[0].copy()
    jittered[space.names.index("c")] += 0.2
    assert space.same(jittered[None], a)[0]


def test_same_continuous_float_within_a_thousandth_of_the_range():
    space = SearchSpace(
        {"f": FloatDistribution(0.0, 1.0), "g": FloatDistribution(1e-5, 1.0, log=True)}
    )
    x = np.array([0.3, 0.7])
    near, far = 0.9e-3, 1.1e-3
    X = np.array([[0.3, 0.7], [0.3 + near, 0.7], [0.3 + far, 0.7], [0.3, 0.7 - far]])
    np.testing.assert_array_equal(space.same(X, x), [True, True, False, False])
    # Integers of a wide range are 2e-4 apart in the unit cube, and never the same.
    wide = SearchSpace({"i": IntDistribution(1, 5000)})
    assert not wide.same(wide.encode({"i": 2})[None], wide.encode({"i": 3}))[0]


def test_same_accepts_no_rows():
    space = SearchSpace(DISTS)
    out = space.same(np.empty((0, space.dim)), space.sample(1, np.random.RandomState(0))[0])
    assert out.shape == (0,) and out.dtype == bool


def test_same_single_value_range():
    space = SearchSpace({"f": FloatDistribution(2.0, 2.0), "i": IntDistribution(3, 3)})
    X = np.array([[0.1, 0.2], [0.9, 0.8]])
    np.testing.assert_array_equal(space.same(X, np.array([0.5, 0.5])), [True, True])
    assert space.neighbours(np.array([0.5, 0.5])).shape == (0, 2)


def test_neighbours_int_decode_to_adjacent_values():
    space = SearchSpace({"x": IntDistribution(1, 5000)})
    nb = space.neighbours(space.encode({"x": 7}))
    assert nb.shape == (2, 1)
    assert sorted(space.decode(row)["x"] for row in nb) == [6, 8]
    np.testing.assert_array_equal(space.round(nb), nb)


def test_neighbours_at_bounds_have_one_side():
    space = SearchSpace({"x": IntDistribution(1, 5000), "s": IntDistribution(0, 20, step=5)})
    low = space.encode({"x": 1, "s": 20})
    nb = space.neighbours(low)
    assert [space.decode(row) for row in nb] == [{"s": 15, "x": 1}, {"s": 20, "x": 2}]
    high = space.encode({"x": 5000, "s": 0})
    assert [space.decode(row) for row in space.neighbours(high)] == [
        {"s": 5, "x": 5000},
        {"s": 0, "x": 4999},
    ]


def test_neighbours_mixed_space():
    space = SearchSpace(DISTS)
    params = {
        "a_float": 0.5,
        "b_logf": 0.01,
        "c_int": 4,
        "d_logi": 10,
        "e_stepf": 0.25,
        "f_stepi": 5,
        "g_cat": 3,
    }
    x = space.round(space.encode(params))
    nb = space.neighbours(x)
    # c_int, d_logi, e_stepf, f_stepi give 2 each, the 3-choice categorical 2 more; floats none.
    assert nb.shape == (10, space.dim)
    # Each row differs from x in exactly one coordinate, never a continuous one.
    changed = nb != x
    assert np.all(changed.sum(axis=1) == 1)
    assert not np.any(changed[:, :2])
    decoded = [space.decode(row) for row in nb]
    expected_changes = [
        ("c_int", 3),
        ("c_int", 5),
        ("d_logi", 9),
        ("d_logi", 11),
        ("e_stepf", 0.0),
        ("e_stepf", 0.5),
        ("f_stepi", 0),
        ("f_stepi", 10),
        ("g_cat", "x"),
        ("g_cat", None),
    ]
    for d, (name, value) in zip(decoded, expected_changes, strict=True):
        assert d[name] == value
        assert {k: v for k, v in d.items() if k != name} == pytest.approx(
            {k: v for k, v in params.items() if k != name}
        )
    # Exactly the values round() produces, and none is the same configuration as x.
    np.testing.assert_array_equal(space.round(nb)[:, 2:], nb[:, 2:])
    assert not np.any(space.same(nb, x))


def test_neighbours_of_continuous_only_space_is_empty():
    space = SearchSpace({"f": FloatDistribution(0.0, 1.0)})
    assert space.neighbours(np.array([0.4])).shape == (0, 1)


def test_neighbours_are_round_fixed_points_over_many_grids():
    rng = np.random.RandomState(3)
    space = SearchSpace(
        {
            "a": IntDistribution(1, 5000),
            "b": IntDistribution(1, 100000, log=True),
            "c": FloatDistribution(-1.0, 7.0, step=0.1),
            "d": IntDistribution(-30, 90, step=3),
        }
    )
    for x in space.round(space.sample(50, rng)):
        nb = space.neighbours(x)
        np.testing.assert_array_equal(space.round(nb), nb)
        assert 4 <= len(nb) <= 8

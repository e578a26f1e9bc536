"""Property tests: arbitrary, malformed report sequences and search spaces never break BOIL."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from typing import Literal
import uuid
import warnings

from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _observations
from optuna_boil._model.search_space import SearchSpace


MIN_RESOURCE, MAX_RESOURCE = 2, 10
POOL: dict[str, BaseDistribution] = {
    "x": FloatDistribution(0.0, 1.0),
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "n": IntDistribution(1, 8),
    "units": IntDistribution(8, 512, log=True),
    "q": FloatDistribution(0.0, 1.0, step=0.25),
    "act": CategoricalDistribution(["relu", "tanh", "gelu"]),
    # Single-value distributions (answered by Optuna without asking the sampler).
    "one_float": FloatDistribution(0.5, 0.5),
    "one_int": IntDistribution(3, 3),
    "one_cat": CategoricalDistribution(["only"]),
}
SPECIAL = [math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-308, 0.0, 1e300]
values = st.one_of(
    st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True, width=64)
)
# Steps: repeated, out of order, sparse, below min_resource and beyond max_resource.
reports = st.lists(st.tuples(st.integers(0, MAX_RESOURCE + 3), values), max_size=8)
trial_specs = st.tuples(
    # "x" always, so that the model (not only the start-up) is exercised; the other parameters
    # appear or vanish between trials. A trial may report nothing.
    st.lists(st.sampled_from(sorted(set(POOL) - {"x"})), unique=True).map(lambda n: ["x", *n]),
    reports,
    st.sampled_from(["complete", "fail", "tell_last"]),
)
PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    # No shrinking: each example runs model fits, and shrinking a failure takes minutes. The
    # failing example is printed as generated.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # tmp_path: one directory, a new file per example
    ],
)


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    assert isinstance(dist, CategoricalDistribution)
    return trial.suggest_categorical(name, list(dist.choices))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _storage(kind: str, directory: Path) -> optuna.storages.BaseStorage | str | None:
    name = uuid.uuid4().hex[:8]
    if kind == "sqlite":
        return f"sqlite:///{directory / name}.db"
    if kind == "journal":
        return optuna.storages.JournalStorage(JournalFileBackend(str(directory / f"{name}.log")))
    return None


@pytest.mark.parametrize("storage_kind", ["inmemory", "sqlite", "journal"])
@PROPERTY_SETTINGS
@given(
    specs=st.lists(trial_specs, min_size=3, max_size=6),
    direction=st.sampled_from(["minimize", "maximize"]),
)
# Found by this test: reports near +-1e308 made the pruner's continuation acquisition NaN and
# torch's Normal.log_prob raise ValueError (optuna_boil/_model/acquisition.py, log_h).
@example(
    specs=[
        (
            ["x", "units"],
            [
                (2, -2.8046779451344483e75),
                (6, 1e300),
                (2, -1.2697179448432798e16),
                (0, -1e308),
                (3, 4.8342954282284005e-258),
                (10, 9.473000132972665e-282),
                (1, 1e300),
                (2, 2.3025269548464019e-66),
            ],
            "fail",
        ),
        (
            ["x", "act"],
            [(11, 1e308), (4, 1e300), (11, 1e308), (12, -2.3380864816969656e16)],
            "fail",
        ),
        (
            ["x"],
            [
                (1, -3.96242125079834e-214),
                (7, -1e308),
                (8, math.nan),
                (2, 1e-308),
                (3, -2.8190459634196394e152),
            ],
            "tell_last",
        ),
    ],
    direction="minimize",
)
def test_bad_reports_never_crash_and_are_all_kept(
    storage_kind: str,
    tmp_path: Path,
    specs: list[tuple[list[str], list[tuple[int, float]], str]],
    direction: Literal["minimize", "maximize"],
) -> None:
    study = optuna.create_study(
        storage=_storage(storage_kind, tmp_path),
        direction=direction,
        sampler=BOILSampler(seed=0, n_startup_trials=2, warn_independent_sampling=False),
        pruner=BOILPruner(min_resource=MIN_RESOURCE, max_resource=MAX_RESOURCE),
    )
    expected: dict[int, dict[int, float]] = {}
    for names, sequence, end in specs:
        trial = study.ask()
        for name in names:
            dist = POOL[name]
            value = _suggest(trial, name, dist)
            assert dist._contains(dist.to_internal_repr(value)), (name, value)
        first: dict[int, float] = {}
        pruned = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna warns about repeated steps.
            for step, value in sequence:
                trial.report(value, step)
                first.setdefault(step, value)
                if trial.should_prune():
                    assert max(first) >= MIN_RESOURCE, "pruned before min_resource"
                    pruned = True
                    break
            expected[trial.number] = first
            if pruned:
                study.tell(trial, state=TrialState.PRUNED)
            elif end == "fail":
                study.tell(trial, state=TrialState.FAIL)
            elif end == "tell_last" and sequence:
                study.tell(trial, sequence[-1][1])  # NaN becomes FAIL (Optuna's rule).
            else:
                study.tell(trial, 0.5)
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        stored = t.intermediate_values
        assert stored.keys() == expected[t.number].keys()
        assert all(_same(stored[s], v) for s, v in expected[t.number].items())
    # The curve data keeps every reported step of every trial, in the study's orientation.
    sign = -1.0 if direction == "minimize" else 1.0
    for t in trials:
        dists = {n: d for n, d in t.distributions.items() if not d.single()}
        if not dists or not t.intermediate_values:
            continue
        data = _observations.build(
            trials, SearchSpace(dists), study.direction, MAX_RESOURCE, "steps"
        )
        k = list(data.numbers).index(t.number)
        steps = sorted(t.intermediate_values)
        assert list(data.steps[k]) == steps
        want = [sign * t.intermediate_values[s] for s in steps]
        assert all(_same(a, b) for a, b in zip(data.values[k], want, strict=True))


finished_trials = st.builds(
    lambda state, iv, x: (state, iv, x),
    st.sampled_from([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]),
    st.dictionaries(st.integers(0, 60), values, max_size=10),
    st.floats(0.0, 1.0),
)


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(finished_trials, min_size=1, max_size=8))
def test_build_keeps_every_reported_step(
    specs: list[tuple[TrialState, dict[int, float], float]],
) -> None:
    dist: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}
    trials = []
    for number, (state, iv, x) in enumerate(specs):
        frozen = optuna.trial.create_trial(
            state=state,
            params={"x": x},
            distributions=dist,
            intermediate_values=iv,
            value=0.0 if state == TrialState.COMPLETE else None,
        )
        frozen.number, frozen._trial_id = number, number + 100
        trials.append(frozen)
    data = _observations.build(
        trials, SearchSpace(dist), optuna.study.StudyDirection.MAXIMIZE, 60, "steps"
    )
    for t in trials:
        if not t.intermediate_values:
            continue
        k = list(data.numbers).index(t.number)
        steps = sorted(t.intermediate_values)
        assert list(data.steps[k]) == steps
        got = data.values[k]
        assert all(_same(a, t.intermediate_values[s]) for a, s in zip(got, steps, strict=True))
        assert np.all(np.diff(data.steps[k]) > 0)

"""The decision context: budget range, search space, settings, failures."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial
import pytest

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import _context
from tests._helpers import MAX
from tests._helpers import boil_study
from tests._helpers import make_objective


X = FloatDistribution(0, 1)
N = IntDistribution(1, 4)


def _trial(
    state: TrialState, steps: dict[int, float], **dists: object
) -> optuna.trial.FrozenTrial:
    distributions = dists or {"x": X}
    params = {
        k: (0.5 if isinstance(d, FloatDistribution) else 2) for k, d in distributions.items()
    }
    return create_trial(
        state=state,
        params=params,
        distributions=distributions,  # type: ignore[arg-type]
        intermediate_values=steps,
        value=1.0 if state == TrialState.COMPLETE else None,
    )


@pytest.mark.parametrize(
    "max_resource, from_zero, reported, expected",
    [(100, False, 100, 100), (100, True, 99, 99), (100, True, 100, 100), (100, True, None, 99)],
)
def test_full_step(
    max_resource: int, from_zero: bool, reported: int | None, expected: int
) -> None:
    assert _context.full_step(max_resource, from_zero, reported) == expected


def test_search_space_includes_failed_trials_with_curves_only() -> None:
    trials = [
        _trial(TrialState.FAIL, {1: 0.1}, x=X, n=N),
        _trial(TrialState.FAIL, {}, x=X),  # no data: does not narrow the space
        _trial(TrialState.PRUNED, {1: 0.2}, x=X, n=N),
    ]
    assert list(_context.search_space(trials)) == ["n", "x"]
    assert _context.search_space([_trial(TrialState.RUNNING, {1: 0.1})]) == {}


def test_budget_range_is_stored_once_and_shared() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=2)
    stored = study._storage.get_study_system_attrs(study._study_id)["boil:resources"]
    assert stored == {"min_resource": 2, "max_resource": MAX, "auto": False}
    # Loaded without any pruner (e.g. to call recommend), the study keeps its range.
    plain = optuna.load_study(study_name=study.study_name, storage=study._storage)
    rng = _context.budget_range(plain, plain.trials)
    assert (rng.t_lo, rng.t_full, rng.enforced) == (2, MAX, False)


def test_an_explicit_new_range_wins_with_a_warning() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=1)
    other = optuna.load_study(
        study_name=study.study_name,
        storage=study._storage,
        pruner=BOILPruner(min_resource=1, max_resource=30),
    )
    rng = _context.budget_range(other, other.trials)
    assert (rng.t_lo, rng.t_full) == (1, 30)
    stored = study._storage.get_study_system_attrs(study._study_id)["boil:resources"]
    assert stored["max_resource"] == 30


def test_settings_come_from_the_sampler_or_default_to_seed_zero() -> None:
    study = optuna.create_study(sampler=BOILSampler(seed=7, n_startup_trials=3))
    assert _context.settings_of(study).seed == 7
    assert _context.settings_of(optuna.create_study()).seed == 0


def test_startup_count_and_budget() -> None:
    study = boil_study()
    study.optimize(make_objective(), n_trials=3)
    ctx = _context.Context.read(study)
    assert ctx.in_startup(None)  # 3 < 4 trials with data
    assert ctx.startup_budget() == 2 + (MAX - 2) // 16
    study.optimize(make_objective(), n_trials=1)
    assert not _context.Context.read(study).in_startup(None)

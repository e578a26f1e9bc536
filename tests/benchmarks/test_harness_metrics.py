"""Full trainings, stuck waste and model fits of the real-task harness, on synthetic records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from benchmarks.real import _harness
from benchmarks.real import paired


# Each trial is a list of ``(step, value)`` reports; trials run one after the other.
Trial = list[tuple[int, float]]


def _flat_then_rise(max_step: int, flat_until: int, low: float, high: float) -> Trial:
    """A full training at ``low`` up to ``flat_until``, then rising linearly to ``high``."""
    return [
        (s, low if s <= flat_until else low + (high - low) * s / max_step)
        for s in range(1, max_step + 1)
    ]


def _events(trials: list[Trial]) -> list[list[float]]:
    """The event log of ``trials`` run one after the other, from scratch."""
    events, used = [], 0
    for number, reports in enumerate(trials):
        prev = 0
        for step, value in reports:
            used += step - prev
            prev = step
            events.append([used, 0.0, 0.0, number, step, value])
    return events


def _record(
    trials: list[Trial],
    *,
    budget: int = 100,
    max_step: int = 10,
    direction: str = "maximize",
    method: str = "random",
    seed: int = 0,
) -> dict[str, Any]:
    """A complete run record of ``trials`` as the summary reads it (no optional keys)."""
    events = _events(trials)
    checkpoints = []
    for fraction in _harness.FRACTIONS:
        best, best_complete, n_complete = _harness.checkpoint(
            events, fraction * budget, max_step, direction
        )
        checkpoints.append({
            "fraction": fraction,
            "best_observed": best,
            "best_complete": best_complete,
            "n_complete": n_complete,
            "wall_s": 0.0,
            "train_s": 0.0,
        })  # fmt: skip
    rows = [
        [n, "COMPLETE" if r[-1][0] >= max_step else "PRUNED", r[-1][0], r[-1][1], None, None, 0]
        for n, r in enumerate(trials)
    ]
    return {
        "format": _harness.RECORD_FORMAT,
        "task": "fake",
        "method": method,
        "seed": seed,
        "budget": budget,
        "max_step": max_step,
        "direction": direction,
        "steps_used": events[-1][0] if events else 0,
        "wall_time_s": 1.0,
        "train_time_s": 0.5,
        "overhead_s": 0.5,
        "recommend_time_s": 0.0,
        "n_trials": len(trials),
        "n_complete": sum(row[1] == "COMPLETE" for row in rows),
        "n_pruned": sum(row[1] == "PRUNED" for row in rows),
        "n_fail": 0,
        "checkpoints": checkpoints,
        "events": events,
        "trials": rows,
        "recommended_trial": 0,
        "recommend_note": "study.best_trial",
        "error": None,
        "recommended_reeval": 0.5,
    }


# Max step 10: the first 30 % are steps 1-3. Values range over [0, 1], so "at the worst value"
# means within 0.02 of 0.
STUCK_FULL = _flat_then_rise(10, 3, 0.0, 1.0)  # stuck: 0 up to step 3, then learns
NEARLY_STUCK_FULL = _flat_then_rise(10, 3, 0.015, 0.9)  # within 2 % of the range: stuck
RISING_FULL = _flat_then_rise(10, 0, 0.3, 0.8)  # above the worst from the start: not stuck
STUCK_SHORT = [(s, 0.0) for s in range(1, 6)]  # stuck but stopped at step 5: not a full run


def test_waste_flags_only_full_trainings_stuck_at_the_worst_value() -> None:
    record = _record([STUCK_FULL, RISING_FULL, STUCK_SHORT, NEARLY_STUCK_FULL], budget=100)
    assert _harness.waste(record) == {
        "full_runs": 3,
        "stuck_full_share": pytest.approx(0.2),
        "wasted_full_steps": 20,
    }


def test_waste_just_outside_the_tolerance_is_not_stuck() -> None:
    barely_above = _flat_then_rise(10, 3, 0.03, 0.9)
    record = _record([STUCK_FULL, barely_above])
    assert _harness.waste(record)["wasted_full_steps"] == 10


def test_waste_share_is_against_the_budget() -> None:
    trials = [STUCK_FULL, RISING_FULL]
    assert _harness.waste(_record(trials, budget=40))["stuck_full_share"] == pytest.approx(0.25)
    assert _harness.waste(_record(trials, budget=80))["stuck_full_share"] == pytest.approx(0.125)


def test_waste_minimize_takes_the_maximum_as_worst() -> None:
    def negate(trial: Trial) -> Trial:
        return [(s, -v) for s, v in trial]

    trials = [negate(t) for t in (STUCK_FULL, RISING_FULL, STUCK_SHORT, NEARLY_STUCK_FULL)]
    assert _harness.waste(_record(trials, direction="minimize"))["wasted_full_steps"] == 20
    # Read as maximised, the same curves start at the best value: nothing is stuck.
    assert _harness.waste(_record(trials, direction="maximize"))["wasted_full_steps"] == 0


def test_waste_without_an_early_report_is_not_stuck() -> None:
    late = [(5, 0.0), (10, 0.0)]  # first report after 30 % of the steps
    record = _record([late, RISING_FULL])
    assert _harness.waste(record) == {
        "full_runs": 2,
        "stuck_full_share": 0.0,
        "wasted_full_steps": 0,
    }


def test_waste_counts_step_zero() -> None:
    from_zero = [(s, 0.0 if s <= 3 else 1.0) for s in range(0, 11)]
    record = _record([from_zero, [(s, 0.5) for s in range(0, 11)]], budget=22)
    assert _harness.waste(record)["wasted_full_steps"] == 11  # steps 0, 1, ..., 10


def test_waste_of_a_run_without_reports() -> None:
    record = _record([], budget=10)
    assert _harness.waste(record) == {
        "full_runs": 0,
        "stuck_full_share": 0.0,
        "wasted_full_steps": 0,
    }


def test_boil_figures_count_model_fits_and_read_the_trust() -> None:
    study = optuna.create_study()
    attrs: list[dict[str, Any]] = [
        {"boil_log_acq": -1.0, "boil_decisions": 3},
        {"boil_log_acq": -2.0},
        {"boil_decisions": 2},
        {},
    ]
    for user_attrs in attrs:
        study.add_trial(
            optuna.trial.create_trial(
                value=1.0, intermediate_values={10: 1.0}, user_attrs=user_attrs
            )
        )
    trust = {"step": [2, 6], "rho": [0.4, 0.7], "se": [0.3, 0.2], "n": [5, 5]}
    study.set_user_attr("boil_fidelity_trust", trust)
    trials = study.get_trials(deepcopy=False)
    assert _harness._boil_figures(study, trials) == {"decisions": 7, "fidelity_trust": trust}
    assert [_harness._trial_row(t)[7] for t in trials] == [3, 0, 2, 0]


def test_waste_figures_average_over_seeds_and_tolerate_missing_keys() -> None:
    trust = {"step": [2, 6], "rho": [0.4, 0.7], "se": [0.3, 0.2], "n": [5, 5]}
    new = _record([STUCK_FULL, RISING_FULL], budget=40) | {"decisions": 4, "fidelity_trust": trust}
    other = {"step": [2, 6], "rho": [0.2, None], "se": [0.3, None], "n": [5, 5]}
    newer = _record([RISING_FULL], budget=40, seed=1) | {"decisions": 1, "fidelity_trust": other}
    old = _record([RISING_FULL, RISING_FULL], budget=40, seed=2)
    figures = _harness.waste_figures([new, newer, old])
    assert figures == {
        _harness.FULL_RUNS: "1.7",
        _harness.STUCK_SHARE: "8.3 %",
        _harness.FITS_PER_TRIAL: "1.50 (2 of 3 runs)",  # (4 / 2 + 1 / 1) / 2
        _harness.TRUST_AT_END: "step 2: 0.30, step 6: 0.70 (2 of 3 runs)",
        _harness.ON_BOUND: "n/a",  # none of them recorded trial_on_bound
    }
    assert _harness.waste_figures([old])[_harness.FITS_PER_TRIAL] == "n/a"
    assert _harness.waste_figures([old])[_harness.TRUST_AT_END] == "n/a"


def test_on_bound_counts_numeric_parameters_at_either_end_of_their_range() -> None:
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "gamma": optuna.distributions.FloatDistribution(0.9, 0.999),
        "units": optuna.distributions.IntDistribution(16, 512),
        "act": optuna.distributions.CategoricalDistribution(["relu", "tanh"]),
    }
    inside = {"lr": 1e-3, "gamma": 0.95, "units": 100, "act": "relu"}
    assert _harness.on_bound(inside, dists) == 0
    # 1.02e-4 is 0.4% of the log range above the low end (but 0.01% on a linear scale).
    assert _harness.on_bound(inside | {"lr": 1.02e-4}, dists) == 1
    assert _harness.on_bound(inside | {"lr": 1.1e-4}, dists) == 0  # 2% of the log range
    assert _harness.on_bound({"lr": 1e-2, "gamma": 0.9, "units": 512, "act": "tanh"}, dists) == 3
    assert _harness.on_bound(inside | {"gamma": 0.9989}, dists) == 1  # 0.1% below the top


def test_on_bound_share_pools_complete_trials_of_the_runs_that_recorded_it() -> None:
    rec = _record([STUCK_FULL, RISING_FULL, RISING_FULL[:3]], budget=40)
    assert [row[1] for row in rec["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    # The PRUNED trial's bound does not count: 1 of 2 COMPLETE trials.
    rec["trial_on_bound"] = [2, 0, 1]
    other = _record([RISING_FULL], budget=40, seed=1) | {"trial_on_bound": [1]}
    old = _record([RISING_FULL], budget=40, seed=2)
    assert _harness.waste_figures([rec])[_harness.ON_BOUND] == "50 %"
    assert _harness.waste_figures([rec, other, old])[_harness.ON_BOUND] == "67 % (2 of 3 runs)"


def test_waste_figures_leave_out_upgraded_records() -> None:
    upgraded = _record([STUCK_FULL, RISING_FULL], budget=40) | {"upgraded_from": 1}
    assert _harness.waste_figures([upgraded])[_harness.STUCK_SHARE] == "n/a"
    current = _record([STUCK_FULL, RISING_FULL], budget=40, seed=1)
    assert _harness.waste_figures([upgraded, current])[_harness.STUCK_SHARE] == (
        "25.0 % (1 of 2 runs)"
    )


def _task() -> _harness.Task:
    return _harness.Task(
        name="fake",
        steps=tuple(range(1, 11)),
        suggest=lambda trial: {},
        curve=lambda params, data_seed, train_seed: iter(()),  # type: ignore[arg-type,return-value]
        metric="synthetic value",
        unit="steps",
    )


def test_summary_reads_old_rows_and_records_without_the_new_keys(tmp_path: Path) -> None:
    trust = {"step": [2, 6], "rho": [0.4, 0.7], "se": [0.3, 0.2], "n": [5, 5]}
    boil_new = _record([STUCK_FULL, RISING_FULL, STUCK_SHORT], method="boil")
    boil_new |= {"decisions": 6, "fidelity_trust": trust, "trial_on_bound": [1, 0, 2]}
    boil_new["trials"] = [[*row, 2] for row in boil_new["trials"]]  # 8 entries
    boil_old = _record([RISING_FULL, STUCK_FULL], method="boil", seed=1)  # 7 entries, no keys
    records = [
        _record([STUCK_FULL, RISING_FULL]),
        _record([RISING_FULL, RISING_FULL], seed=1),
        boil_new,
        boil_old,
    ]
    text = _harness.summarise(_task(), records, tmp_path / "s.md", None)
    assert "## Full trainings and waste" in text
    assert "| random | 2.0 | 5.0 % | n/a | n/a | n/a |" in text
    assert (
        "| boil | 2.0 | 10.0 % | 2.00 (1 of 2 runs) | step 2: 0.40, step 6: 0.70 (1 of 2 runs) "
        "| 50 % (1 of 2 runs) |" in text  # the PRUNED third trial's bound does not count
    )
    bullet = next(line for line in text.splitlines() if line.startswith("* **boil**"))
    assert "pruner decision points per trial {2: 3}" in bullet
    assert "model fits per trial 2.00 (1 of 2 runs)" in bullet
    # Only old records: no decision points, fits or trust, and no error.
    text = _harness.summarise(_task(), [boil_old], tmp_path / "s.md", None)
    assert "| boil | 2.0 | 10.0 % | n/a | n/a | n/a |" in text
    bullet = next(line for line in text.splitlines() if line.startswith("* **boil**"))
    assert "pruner decision points" not in bullet and bullet.endswith("on a bound n/a.")


def test_paired_reports_full_trainings_waste_and_fits() -> None:
    records = [
        _record([STUCK_FULL, RISING_FULL], budget=40, method="a") | {"decisions": 4},
        _record([RISING_FULL], budget=40, method="b"),
    ]
    last = paired.compare(records, "a", "b")[-1]
    assert "Full trainings per run: a 2.0, b 1.0." in last
    assert "Budget on stuck full trainings: a 25.0 %, b 0.0 %." in last
    assert "Model fits per trial: a 2.00, b n/a." in last
    records[0].pop("decisions")
    assert "Model fits" not in paired.compare(records, "a", "b")[-1]

"""Real-harness run records built by hand, for the summary tests."""

from __future__ import annotations

from typing import Any


def full_trainings_run(
    method: str, seed: int, finals: list[float], reeval: float, seconds: float = 1.0
) -> dict[str, Any]:
    """A maximised run of 4 full trainings of 10 steps (budget 40), one after the other, each
    step taking ``seconds`` of wall-clock time."""
    events = []
    for trial, final in enumerate(finals):
        for step in range(1, 11):
            used = trial * 10 + step
            events.append([used, used * seconds, used * seconds, trial, step, final * step / 10])
    return {
        "method": method,
        "seed": seed,
        "budget": 40,
        "max_step": 10,
        "direction": "maximize",
        "events": events,
        "recommended_reeval": reeval,
        "overhead_s": 1.0,
        "n_trials": 4,
        "n_complete": 4,
        "wall_time_s": 40 * seconds,
    }

"""Fast contract test of the Pendulum PPO task (a tiny training, a few seconds)."""

from __future__ import annotations

import math

import pytest


pytest.importorskip("gymnasium")
torch = pytest.importorskip("torch")


def test_pendulum_task_reports_returns_deterministically() -> None:
    from benchmarks.real import pendulum

    task = pendulum.make_task(40)
    assert task.steps == (20, 40) and task.direction == "maximize" and task.unit == "episodes"
    params = {"actor_lr": 1e-3, "critic_lr": 3e-3, "gamma": 0.95, "gae_lambda": 0.95}
    first = list(task.curve(params, 0, 1))
    assert [s for s, _ in first] == [20, 40]
    # Pendulum's rewards lie in [-16.3, 0] per step, 200 steps an episode.
    assert all(math.isfinite(v) and -3300.0 < v < 0.0 for _, v in first)
    assert list(task.curve(params, 5, 1)) == first  # data_seed is unused; the seed decides
    other = list(pendulum.curve(params, 0, 2, max_episodes=20))
    assert [s for s, _ in other] == [20] and other[0][1] != first[0][1]

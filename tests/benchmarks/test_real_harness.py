"""Fast tests of the real-task benchmark harness on a synthetic task (no training library)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from benchmarks.real import _harness


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    return {"x": trial.suggest_float("x", 0.0, 1.0)}


def _curve(
    params: dict[str, Any], data_seed: int, seed: int, steps: tuple[int, ...], sign: float
) -> _harness.Reports:
    """A saturating curve whose final value peaks at x = 0.3 (``sign`` flips it for minimise)."""
    del data_seed, seed
    for step in steps:
        value = 1.0 - (params["x"] - 0.3) ** 2 - 0.5 / step
        yield step, sign * value


def make_fake_task(max_steps: int, direction: _harness.Direction = "maximize") -> _harness.Task:
    """A synthetic task reporting every 2 steps up to ``max_steps``."""
    steps = tuple(range(2, max_steps + 1, 2))
    sign = 1.0 if direction == "maximize" else -1.0
    return _harness.Task(
        name="fake",
        steps=steps,
        suggest=_suggest,
        curve=functools.partial(_curve, steps=steps, sign=sign),
        metric="synthetic value",
        unit="steps",
        direction=direction,
    )


def _check_record(record: dict[str, Any], task: _harness.Task) -> None:
    assert record["error"] is None
    assert record["format"] == _harness.RECORD_FORMAT
    events = record["events"]
    used = [e[0] for e in events]
    assert used == sorted(used) and used[-1] == record["steps_used"] <= record["budget"]
    # Trials train from scratch, one after the other: the steps used are the sum of the trials'
    # last steps, and a trial is COMPLETE exactly when it reached the last step.
    assert sum(row[2] for row in record["trials"]) == record["steps_used"]
    for row in record["trials"]:
        assert (row[1] == "COMPLETE") == (row[2] == task.max_step)
    # Every row's parameters, in the rows' order.
    assert len(record["trial_params"]) == len(record["trials"])
    assert len(record["trial_on_bound"]) == len(record["trials"])
    assert all(n in (0, 1) for n in record["trial_on_bound"])  # one parameter
    assert all(0.0 <= params["x"] <= 1.0 for params in record["trial_params"])
    if "best_trial" in record:
        numbers = [row[0] for row in record["trials"]]
        best_row = numbers.index(record["best_trial"])
        assert record["trial_params"][best_row] == record["best_trial_params"]
    end = record["checkpoints"][-1]
    assert end["fraction"] == 1.0 and end["n_complete"] == record["n_complete"]
    complete = [row[3] for row in record["trials"] if row[1] == "COMPLETE"]
    if complete:
        best = max(complete) if task.direction == "maximize" else min(complete)
        assert end["best_complete"] == pytest.approx(best)
    else:
        assert end["best_complete"] is None
    values = [e[5] for e in events]
    best_any = max(values) if task.direction == "maximize" else min(values)
    assert end["best_observed"] == pytest.approx(best_any)
    assert record["train_time_s"] <= record["wall_time_s"] + 1e-6
    assert math.isfinite(record["recommended_reeval"])


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("method", ["random", "tpe_hyperband", "tpe_median", "random_sh"])
def test_run_one_accounts_the_budget(method: str, direction: _harness.Direction) -> None:
    task = make_fake_task(10, direction)
    record = _harness.run_one(task, method, seed=0, budget=47)  # not a multiple of 10
    _check_record(record, task)
    assert record["steps_used"] > 47 - task.max_step


def test_checkpoint_counts_only_complete_trials() -> None:
    # [steps used, wall, training, trial, step, value]; max_step 4.
    events = [
        [2, 0.1, 0.1, 0, 2, 0.5],
        [4, 0.2, 0.2, 0, 4, 0.6],  # trial 0 COMPLETE with 0.6
        [6, 0.3, 0.3, 1, 2, 0.9],  # trial 1 stopped at step 2 with 0.9
        [8, 0.4, 0.4, 2, 2, 0.4],
        [10, 0.5, 0.5, 2, 4, 0.7],  # trial 2 COMPLETE with 0.7
    ]
    assert _harness.checkpoint(events, 2, 4, "maximize") == (0.5, None, 0)
    assert _harness.checkpoint(events, 6, 4, "maximize") == (0.9, 0.6, 1)
    assert _harness.checkpoint(events, 10, 4, "maximize") == (0.9, 0.7, 2)
    assert _harness.checkpoint(events, 10, 4, "minimize") == (0.4, 0.6, 2)
    assert _harness.checkpoint(events, 0.25, 4, "maximize", axis=1) == (0.6, 0.6, 1)
    best, complete, n = _harness.checkpoint(events, 1, 4, "maximize")
    assert math.isnan(best) and complete is None and n == 0


def test_average_ranks_put_missing_values_last_and_share_ties() -> None:
    values: dict[str, dict[int, float | None]] = {
        "a": {0: 0.9, 1: 0.5},
        "b": {0: 0.9, 1: None},
        "c": {0: 0.1, 1: 0.7},
    }
    assert _harness.average_ranks(values, "maximize") == {"a": 1.75, "b": 2.25, "c": 2.0}
    assert _harness.average_ranks(values, "minimize") == {"a": 1.75, "b": 2.75, "c": 1.5}


def test_report_cost_is_cumulative_training_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna_boil

    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(optuna_boil, "report_cost", lambda t, c: calls.append((t.number, c)))
    task = make_fake_task(6)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    run = _harness._Run(task, seed=0, budget=12, report_cost=True)
    study.optimize(run.objective)
    assert len(calls) == len(run.events) == 6
    for number in {n for n, _ in calls}:
        costs = [c for n, c in calls if n == number]
        assert costs == sorted(costs) and costs[0] >= 0.0


def test_summary_flags_checkpoints_behind_random(tmp_path: Path) -> None:
    task = make_fake_task(10, "minimize")
    records = [
        _harness.run_one(task, method, seed, budget=40)
        for seed in (0, 1)
        for method in ("random", "random_sh")
    ]
    # A made-up method that never completes a trial and is worse than random everywhere.
    for seed in (0, 1):
        bad = json.loads(json.dumps(records[2 * seed]))
        bad["method"] = "never_complete"
        bad["events"] = [[e[0], e[1], e[2], e[3], min(e[4], 8), e[5] + 1.0] for e in bad["events"]]
        for cp in bad["checkpoints"]:
            cp["best_observed"] += 1.0
            cp["best_complete"], cp["n_complete"] = None, 0
        records.append(bad)
    text = _harness.summarise(task, records, tmp_path / "s.md", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    assert "(minimised)" in text and "## Checkpoints behind random search" in text
    assert "**never_complete**, best complete @25%: none vs random" in text
    assert "**never_complete**, best observed @100%" in text
    row = next(line for line in text.splitlines() if line.startswith("| never_complete | none"))
    assert row.endswith("| 0.0 / 0.0 / 0.0 | 2 / 2 / 2 |")


def test_main_runs_summarises_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--methods", "random,tpe_median", "--seeds", "0-1", "--budget", "30", "--max-steps",
            "6", "--out", str(tmp_path), "--no-plot"]  # fmt: skip
    kwargs: dict[str, Any] = {
        "description": "fake",
        "make_task": make_fake_task,
        "defaults": {"budget": 30, "max_steps": 6, "seeds": "0"},
        "quick": {"budget": 10, "max_steps": 4, "seeds": "0"},
        "step_option": "--max-steps",
    }
    _harness.main(argv, **kwargs)
    records = _harness.load(tmp_path / "real_fake.jsonl")
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("random", 0), ("random", 1), ("tpe_median", 0), ("tpe_median", 1)
    ]  # fmt: skip
    assert "| tpe_median | 2 |" in (tmp_path / "real_fake.md").read_text()
    _harness.main(argv, **kwargs)
    assert "0 runs to do (4 already" in capsys.readouterr().out
    assert len(_harness.load(tmp_path / "real_fake.jsonl")) == 4


def test_parse_seeds() -> None:
    assert _harness.parse_seeds("0-2,5") == [0, 1, 2, 5]


def test_boosting_task_is_deterministic_and_split_per_seed() -> None:
    pytest.importorskip("lightgbm")
    pytest.importorskip("sklearn")
    from benchmarks.real import boosting

    task = boosting.make_task(30)
    assert task.steps == (10, 20, 30) and task.direction == "minimize"
    params = {"learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 5}
    params |= {"feature_fraction": 0.8, "bagging_fraction": 0.8, "lambda_l2": 0.1}
    first = list(task.curve(params, 0, 1))
    assert [s for s, _ in first] == [10, 20, 30]
    assert all(0.0 < v < 0.7 for _, v in first) and first[-1][1] < first[0][1]
    assert list(task.curve(params, 0, 1)) == first
    assert list(task.curve(params, 1, 1)) != first
    assert boosting.split(0)[0].shape == boosting.split(1)[0].shape


@pytest.mark.parametrize("method", ["random", "random_sh"])
def test_upgrade_of_first_version_records_gives_the_same_checkpoints(method: str) -> None:
    from benchmarks.real import upgrade

    task = make_fake_task(10)
    record = _harness.run_one(task, method, seed=3, budget=45)
    old = {k: v for k, v in record.items() if k not in ("format", "checkpoints", "events")}
    best, trace = -math.inf, []
    for used, wall, train, number, _, value in record["events"]:
        if value > best:
            best = value
            trace.append([used, wall, train, value, number])
    old.update(trace=trace, best_observed=best)
    new = upgrade.upgrade(old)
    for got, want in zip(new["checkpoints"], record["checkpoints"], strict=True):
        for key in ("fraction", "best_observed", "best_complete", "n_complete"):
            assert got[key] == pytest.approx(want[key])
    assert new["format"] == _harness.RECORD_FORMAT and new["n_trials"] == record["n_trials"]


def test_cartpole_landscape_summarises_cached_records_without_training(tmp_path: Path) -> None:
    from benchmarks.real import cartpole_landscape as landscape

    # Four cached configurations: the two with a high learning rate succeed, and only their
    # late reports track the final value.
    records = []
    for i, (lr, final) in enumerate([(1e-2, 180.0), (3e-3, 150.0), (2e-4, 10.0), (1e-4, 12.0)]):
        curve = [20.0 - k % 3 for k in range(14)] + [final]
        curve[-2] = final - 1.0
        records.append({"i": i, "lr": lr, "gamma": 0.95, "tau": 0.01, "curve": curve})
    out = tmp_path / "landscape.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    md = tmp_path / "landscape.md"
    landscape.main(["--n", "4", "--out", str(out), "--md", str(md), "--region", "lr=-3"])
    text = md.read_text()
    assert "Success overall: 0.50" in text
    assert "Region log10 lr > -3: 2 configurations, success 1.00; outside: 2, success 0.00" in text
    assert "| 140 | 1.00 |" in text  # the report before the last ranks them as the final does
    assert len(out.read_text().splitlines()) == 4  # nothing was trained


def test_cartpole_landscape_rejects_an_unknown_region_name() -> None:
    from benchmarks.real import cartpole_landscape as landscape

    with pytest.raises(SystemExit):
        landscape.main(["--region", "momentum=0.5"])


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_trial_is_retrained_on_fresh_seeds(direction: _harness.Direction) -> None:
    task = make_fake_task(10, direction)
    seeds: list[int] = []
    curve = task.curve

    def counting(params: dict[str, Any], data_seed: int, seed: int) -> _harness.Reports:
        seeds.append(seed)
        return curve(params, data_seed, seed)

    task = dataclasses.replace(task, curve=counting)
    record = _harness.run_one(task, "random", seed=2, budget=40, retrain_seeds=3)
    # The fake curve ignores its seed: every retraining ends at study.best_trial's value.
    best = record["checkpoints"][-1]["best_complete"]
    assert record["best_trial_retrain"] == pytest.approx([best] * 3)
    assert set(record["best_trial_params"]) == {"x"}
    # The retrainings use fresh seeds, none of them a trial's or the reevaluation's.
    fresh = seeds[-3:]
    assert len(set(fresh)) == 3 and not set(fresh) & set(seeds[:-3])
    assert "best_trial_retrain" not in _harness.run_one(task, "random", seed=2, budget=40)


def test_a_resuming_objective_continues_paused_runs_and_trains_no_step_twice() -> None:
    trained: list[tuple[int, int]] = []  # (train seed, step) of every step actually trained

    def counted(params: dict[str, Any], data_seed: int, seed: int) -> _harness.Reports:
        for step, value in _curve(params, data_seed, seed, tuple(range(2, 21, 2)), 1.0):
            trained.append((seed, step))
            yield step, value

    task = dataclasses.replace(make_fake_task(20), curve=counted)
    record = _harness.run_one(task, "boil_resume", seed=0, budget=160)
    assert record["error"] is None
    # Every step of the study was trained once (reports every 2 steps), and counted once; the
    # recommendation's re-evaluation trains with its own seed.
    study = [t for t in trained if t[0] != _harness.EVAL_SEED_OFFSET]
    assert len(study) == len(set(study)) and 2 * len(study) == record["steps_used"] == 160
    first = {}
    for event in record["events"]:
        first.setdefault(event[3], event[4])
    resumed = [number for number, step in first.items() if step > task.steps[0]]
    assert resumed, first  # some trial went on from where an earlier one stopped
    rows = {row[0]: row for row in record["trials"]}
    assert all(rows[n][2] > first[n] for n in resumed if rows[n][1] == "COMPLETE")


def test_a_boil_run_weighing_steps_is_reproduced_exactly() -> None:
    task = make_fake_task(10)
    runs = [_harness.run_one(task, "boil", seed=3, budget=90, cost="steps") for _ in range(2)]
    assert runs[0]["cost"] == "steps" and runs[0]["error"] is None
    # The same decisions: the same trials, steps and values (wall-clock times aside).
    assert runs[0]["trials"] == runs[1]["trials"]
    assert [e[0:1] + e[3:] for e in runs[0]["events"]] == [
        e[0:1] + e[3:] for e in runs[1]["events"]
    ]
    assert runs[0]["n_trials"] > 10 - 1  # decisions after the start-up were made

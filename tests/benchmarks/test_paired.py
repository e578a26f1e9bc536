from __future__ import annotations

from benchmarks.real import paired
from tests.benchmarks._real_records import full_trainings_run as _record


def test_paired_differences_and_tallies_per_checkpoint() -> None:
    records = [
        _record("a", 0, [1.0, 3.0, 2.0, 2.0], 2.5),
        _record("b", 0, [2.0, 2.0, 2.0, 2.0], 2.0),
        _record("a", 1, [1.0, 1.0, 1.0, 4.0], 3.0),
        _record("b", 1, [1.0, 1.0, 1.0, 1.0], 1.0),
        _record("b", 2, [5.0, 5.0, 5.0, 5.0], 5.0),  # no partner: left out
    ]
    lines = paired.compare(records, "a", "b")
    assert lines[0].startswith("2 paired seeds")
    rows = {(r.split("|")[1].strip(), r.split("|")[2].strip()): r for r in lines if "|" in r}
    # At 25 % each run has one full training: a is 1 / 1, b is 2 / 1: -0.5 on average.
    quarter = rows[("25 %", "best COMPLETE")].split("|")
    assert quarter[5].strip() == "-0.5000 ± 0.5000" and quarter[6].strip() == "0/1/1"
    # At the end a is 3 / 4 and b 2 / 1: +2 on average, a better on both seeds.
    end = rows[("100 %", "best COMPLETE")].split("|")
    assert end[5].strip() == "+2.0 ± 1.0" and end[6].strip() == "2/0/0"
    reeval = rows[("end", "re-evaluated recommendation")].split("|")
    assert reeval[5].strip() == "+1.2 ± 0.8"


def test_retrained_best_trial_is_the_mean_of_its_seeds() -> None:
    records = [
        _record("a", 0, [1.0, 3.0, 2.0, 2.0], 2.5),
        _record("b", 0, [2.0, 2.0, 2.0, 2.0], 2.0),
        _record("a", 1, [1.0, 1.0, 1.0, 4.0], 3.0),
        _record("b", 1, [1.0, 1.0, 1.0, 1.0], 1.0),
    ]
    assert not any("retrained" in line for line in paired.compare(records, "a", "b"))
    for r, retrain in zip(
        records, ([3.0, 2.0, 1.0], [1.0, 1.0, 1.0], [4.0, 4.0, 4.0], [2.0]), strict=True
    ):
        r["best_trial_retrain"] = retrain
    lines = paired.compare(records, "a", "b")
    row = next(r for r in lines if "retrained" in r).split("|")
    # a: 2 and 4 (seed means), b: 1 and 2; differences +1 and +2.
    assert row[3].strip() == "3.0 ± 1.0" and row[4].strip() == "1.5 ± 0.5"
    assert row[5].strip() == "+1.5 ± 0.5"


def test_the_wall_clock_rows_compare_at_the_same_time_decisions_included() -> None:
    # a finds the same values as b but takes twice as long per step: at b's whole run time
    # (40 s) it has trained only two of its four configurations.
    records = []
    for seed in (0, 1):
        records.append(_record("a", seed, [1.0, 2.0, 3.0, 4.0], 4.0, seconds=2.0))
        records.append(_record("b", seed, [1.0, 2.0, 3.0, 4.0], 4.0))
    lines = paired.compare(records, "a", "b")
    rows = {(r.split("|")[1].strip(), r.split("|")[2].strip()): r for r in lines if "|" in r}
    on_steps = rows[("100 %", "best COMPLETE")].split("|")
    assert on_steps[5].strip() == "+0.0000 ± 0.0000" and on_steps[6].strip() == "0/2/0"
    on_time = rows[("40 s", "best COMPLETE")].split("|")
    assert on_time[3].strip() == "2.0 ± 0.0" and on_time[4].strip() == "4.0 ± 0.0"
    assert on_time[6].strip() == "0/0/2 · **worse**"  # no spread: beyond two SE
    # At 10 s, a has no COMPLETE trial yet and b has one.
    early = rows[("10 s", "best COMPLETE")].split("|")
    assert early[3].strip() == "- (2 without)" and early[6].strip() == "0/0/2"


def test_the_protocol_verdict_needs_the_mean_and_the_median() -> None:
    # Higher is better: a ahead on every seed by about 1 (mean far beyond two SE, median too).
    assert paired.verdict([2.0, 3.1, 4.0, 5.2], [1.0, 2.0, 3.1, 4.0], 1.0) == "better"
    assert paired.verdict([2.0, 3.1, 4.0, 5.2], [1.0, 2.0, 3.1, 4.0], -1.0) == "worse"
    # One seed carries the mean while the median is behind: level.
    assert paired.verdict([0.0, 0.0, 0.0, 100.0], [0.1, 0.1, 0.1, 0.1], 1.0) == "level"
    # Within two standard errors: level.
    assert paired.verdict([1.0, 2.0, 0.0], [0.0, 1.0, 1.5], 1.0) == "level"

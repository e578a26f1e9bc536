from __future__ import annotations

from typing import Any

from benchmarks.real import protocol_table
from tests.benchmarks._real_records import full_trainings_run


def _record(method: str, seed: int, finals: list[float], retrain: list[float]) -> dict[str, Any]:
    record = full_trainings_run(method, seed, finals, reeval=finals[-1])
    record["best_trial_retrain"] = retrain
    return record


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def test_every_method_against_the_reference_with_the_protocol_verdict() -> None:
    records = []
    for seed in range(4):
        # The reference is ahead by about 2 on every seed at the end; retrained, level.
        records.append(_record("ref", seed, [1.0, 2.0, 3.0, 5.0 + seed], [2.0 + seed, 2.0]))
        records.append(
            _record("other", seed, [1.0, 2.0, 3.0, 3.0 + 1.1 * seed], [3.0, 1.0 + seed])
        )
    lines = protocol_table.table(records, "ref")
    rows = {_cells(line)[0]: _cells(line) for line in lines[2:] if line.startswith("| ")}
    assert list(rows) == ["ref", "other"]
    # 25 %: one full training each, value 1 on every seed.
    assert rows["ref"][2] == "1.0 ± 0.0" and rows["other"][2] == "1.0 ± 0.0"
    # 100 %: ref 5, 6, 7, 8 against 3, 4.1, 5.2, 6.3: differences 2, 1.9, 1.8, 1.7 (mean 1.85).
    assert rows["ref"][5] == "6.5 ± 0.6" and rows["other"][5] == "4.7 ± 0.7 **+**"
    assert rows["other"][7] == "+1.8 ± 0.1 · **ref better**"
    # Retrained (means of the retrainings): ref 2, 2.5, 3, 3.5 against 2, 2.5, 3, 3.5.
    assert rows["other"][8] == "+0.0000 ± 0.0000"
    assert rows["ref"][7] == rows["ref"][8] == ""

"""Convert run records of the first harness version into the current format, in place.

The first version logged, per run, only the improvements of the best value (``trace``: ``[steps
used, wall s, training s, best, trial]``) and each trial's last report (``trials``). Trials run
one after the other and train from scratch, so the steps used when a trial ended are the running
sum of the trials' last steps; that gives the exact step and value of every improvement and of
every COMPLETE trial, hence every checkpoint metric of the current harness. Completion events
that were not improvements have no recorded times (NaN: they are left out of the wall-time axis,
which loses nothing for the best value reported at any step).

Runs of optuna-boil methods are not converted (their code has changed since; they stay in the
file in the old format, which the harness ignores). Converted records get ``"upgraded_from": 1``
and no ``report_cost`` was used in them.

Example::

    python -m benchmarks.real.upgrade benchmarks/results/real_cartpole.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.real import _harness


def upgrade(record: dict[str, Any], direction: str = "maximize") -> dict[str, Any]:
    """The current-format version of a first-version ``record`` (a new dictionary)."""
    rows = sorted(record["trials"], key=lambda row: row[0])
    start: dict[int, int] = {}
    ends: list[tuple[int, int, int, float]] = []  # (steps used at the end, trial, step, value)
    used = 0
    for number, _, last_step, last_value, *_ in rows:
        start[number] = used
        used += last_step
        ends.append((used, number, last_step, last_value))
    events: dict[tuple[int, int], list[float]] = {}
    for u, wall, train, value, number in record["trace"]:
        u, number = int(u), int(number)
        events[(u, number)] = [u, wall, train, number, u - start[number], value]
    max_step = record["max_step"]
    for u, number, step, value in ends:
        if step >= max_step and (u, number) not in events:
            events[(u, number)] = [u, math.nan, math.nan, number, step, value]
    log = [events[k] for k in sorted(events)]
    checkpoints = []
    for fraction in _harness.FRACTIONS:
        x = fraction * record["budget"]
        best, best_complete, n_complete = _harness.checkpoint(log, x, max_step, direction)
        timed = [e for e in log if e[0] <= x + 1e-9 and not math.isnan(e[1])]
        checkpoints.append({
            "fraction": fraction,
            "best_observed": best,
            "best_complete": best_complete,
            "n_complete": n_complete,
            "wall_s": timed[-1][1] if timed else 0.0,
            "train_s": timed[-1][2] if timed else 0.0,
        })  # fmt: skip
    new = {k: v for k, v in record.items() if k not in ("trace", "best_observed")}
    new.update(format=_harness.RECORD_FORMAT, upgraded_from=1, direction=direction)
    new.update(checkpoints=checkpoints, events=log)
    new["n_trials"] = len(rows)
    return new


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: upgrade the JSONL files given, in place."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--direction", default="maximize", choices=["maximize", "minimize"])
    args = parser.parse_args(argv)
    for path in args.files:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out, converted = [], 0
        for r in lines:
            if "format" not in r and not r["method"].startswith("boil"):
                r = upgrade(r, args.direction)
                converted += 1
            out.append(json.dumps(r, separators=(",", ":")))
        path.write_text("\n".join(out) + "\n")
        print(f"{path}: {converted} of {len(lines)} records converted")


if __name__ == "__main__":
    main()

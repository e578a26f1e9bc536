"""The pre-registered evaluation's table for one real task (benchmarks/PROTOCOL.md).

Per method: the best COMPLETE trial (what ``study.best_trial`` returns) at 25 / 50 / 75 / 100 %
of the budget and the headline, that trial's configuration retrained on fresh seeds (the mean of
its retrainings, ``best_trial_retrain``), each as mean ± standard error over seeds; then the
reference method minus each other method on the seeds both have, at 100 % and for the
retrained value, with the protocol's verdict (:func:`benchmarks.real.paired.verdict`).

Example::

    python -m benchmarks.real.protocol_table \\
        --file benchmarks/results/protocol/real_cartpole.jsonl --reference boil
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.real import _harness
from benchmarks.real import paired


# The reference against a method at one checkpoint (benchmarks.real.paired.verdict).
MARKS = {"better": " **+**", "worse": " **-**", "level": ""}


def _values(record: dict[str, Any]) -> list[float | None]:
    """Best COMPLETE value at each of ``paired.FRACTIONS`` of the budget (:obj:`None` before the
    first), then the retrained best trial's mean (:obj:`None` without retrainings)."""
    out: list[float | None] = []
    for f in paired.FRACTIONS:
        _, complete, _ = _harness.checkpoint(
            record["events"], f * record["budget"], record["max_step"], record["direction"]
        )
        out.append(complete)
    out.append(paired._end_value(record.get("best_trial_retrain")))
    return out


def table(records: list[dict[str, Any]], reference: str) -> list[str]:
    """Markdown lines of the protocol's table for one task's ``records``."""
    by: dict[str, dict[int, list[float | None]]] = {}
    for r in records:
        by.setdefault(r["method"], {})[r["seed"]] = _values(r)
    if reference not in by:
        raise SystemExit(f"no records of the reference method {reference!r}")
    sign = -1.0 if records[0]["direction"] == "minimize" else 1.0
    labels = [f"{round(100 * f)} %" for f in paired.FRACTIONS] + ["retrained"]
    lines = [
        "| method | seeds | best COMPLETE "
        + " | ".join(labels[:-1])
        + " | best trial retrained | "
        + f"{reference} minus method: 100 % | retrained |",
        "|---" * (len(labels) + 4) + "|",
    ]
    order = [reference] + sorted(m for m in by if m != reference)
    for m in order:
        runs = by[m]
        cells, outcomes, diffs = [], [], []
        for c in range(len(labels)):
            got = [float(v[c]) for v in runs.values() if v[c] is not None]  # type: ignore[arg-type]
            cell = paired._fmt(*paired._mean_se(got)) + paired._missing(len(runs) - len(got))
            seeds = [
                s
                for s in sorted(set(runs) & set(by[reference]))
                if runs[s][c] is not None and by[reference][s][c] is not None
            ]
            ref = [float(by[reference][s][c]) for s in seeds]  # type: ignore[arg-type]
            other = [float(runs[s][c]) for s in seeds]  # type: ignore[arg-type]
            outcome = "level" if m == reference else paired.verdict(ref, other, sign)
            cells.append(cell + MARKS[outcome])
            outcomes.append(outcome)
            if c >= len(labels) - 2:
                if m == reference or not seeds:
                    diffs.append("")
                    continue
                diff = [a - b for a, b in zip(ref, other, strict=True)]
                cell = paired._fmt(*paired._mean_se(diff), signed=True)
                diffs.append(cell if outcome == "level" else f"{cell} · **{reference} {outcome}**")
        lines.append(f"| {m} | {len(runs)} | " + " | ".join(cells + diffs) + " |")
    return lines + [
        "",
        f"**+** / **-** after a value: `{reference}` is better / worse than that method there, by"
        " the protocol's rule (mean better by more than two standard errors of the paired"
        " difference over seeds, and the median better); nothing: level.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="records of one task (jsonl)")
    parser.add_argument("--reference", default="boil", help="method the others are compared with")
    parser.add_argument("--md", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    records = _harness.load(args.file)
    if not records:
        raise SystemExit(f"no records in {args.file}")
    text = "\n".join(table(records, args.reference)) + "\n"
    print(text, end="")
    if args.md is not None:
        args.md.write_text(text)


if __name__ == "__main__":
    main()

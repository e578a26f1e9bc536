"""Paired differences of two methods on a real task, seed by seed, at 25 / 50 / 75 / 100 %.

For each checkpoint, the best COMPLETE trial (what ``study.best_trial`` returns) and the best value
observed, as mean ± standard error over seeds of each method and of their difference (``a - b``,
on the seeds both have), with the number of seeds on which ``a`` is better, level and worse; the
re-evaluation of the recommended configuration on a fresh seed; the same incumbents on the
wall-clock axis (decision time included) at 25 / 50 / 75 / 100 % of ``b``'s median run time;
decision overhead per trial;
full trainings per run, the share of the budget spent on full trainings stuck at the worst value
(``_harness.waste``) and, for optuna-boil methods, model fits per trial.

Example::

    python -m benchmarks.real.paired --task cartpole --a boil --b random
    python -m benchmarks.real.paired --task digits --a boil --b boil_before_split --md out.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import statistics
from typing import Any

from benchmarks import _protocol
from benchmarks.real import _harness


FRACTIONS = (0.25, 0.5, 0.75, 1.0)
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def verdict(a: list[float], b: list[float], sign: float) -> str:
    """Method ``a`` against ``b`` on paired values by benchmarks/PROTOCOL.md's rule: ``"better"``
    when its mean is better by more than two standard errors of the paired difference *and* its
    median is better, ``"worse"`` in the mirror case, else ``"level"`` (``sign`` is +1 where
    higher is better, -1 where lower is)."""
    if len(a) < 2:
        return "level"
    mean, se = _mean_se([sign * (x - y) for x, y in zip(a, b, strict=True)])
    return _protocol.verdict(mean, se, sign * (statistics.median(a) - statistics.median(b)))


def _with_verdict(cell: str, outcome: str) -> str:
    return cell if outcome == "level" else f"{cell} · **{outcome}**".lstrip(" ·")


def _at(record: dict[str, Any], x: float, axis: int = 0) -> tuple[float, float | None]:
    """Best value observed and best COMPLETE value once ``event[axis] <= x`` (axis 0: steps
    used, 1: wall-clock seconds)."""
    best, best_complete, _ = _harness.checkpoint(
        record["events"], x, record["max_step"], record["direction"], axis=axis
    )
    return best, best_complete


def compare(records: list[dict[str, Any]], a: str, b: str) -> list[str]:
    """Markdown lines comparing methods ``a`` and ``b`` on the seeds both have."""
    by = {m: {r["seed"]: r for r in records if r["method"] == m} for m in (a, b)}
    seeds = sorted(set(by[a]) & set(by[b]))
    if not seeds:
        raise SystemExit(f"no seed has both {a!r} and {b!r}")
    sign = -1.0 if by[a][seeds[0]]["direction"] == "minimize" else 1.0
    lines = [
        f"{len(seeds)} paired seeds; differences are `{a} - {b}`; win / level / loss count "
        f"seeds where `{a}` is better / equal / worse (no COMPLETE trial counts as worst); "
        f"**better** / **worse**: `{a}` against `{b}` by benchmarks/PROTOCOL.md's rule (mean "
        "better / worse by more than two standard errors of the paired difference, and the "
        "median too), shown for the best COMPLETE trial and the best trial's fresh trainings.",
        "",
        f"| checkpoint | incumbent | {a} | {b} | difference | win / level / loss |",
        "|---|---|---|---|---|---|",
    ]
    budget = by[a][seeds[0]]["budget"]
    lines += _rows(by, seeds, a, b, sign, [(f"{round(100 * f)} %", f * budget) for f in FRACTIONS])
    for label, key in (
        ("re-evaluated recommendation", "recommended_reeval"),
        ("best trial retrained (mean of its fresh seeds)", "best_trial_retrain"),
    ):
        got = {m: {s: _end_value(by[m][s].get(key)) for s in seeds} for m in (a, b)}
        if key == "best_trial_retrain" and all(v is None for v in got[a].values()):
            continue  # the runs were made without --retrain-seeds
        va = [v for v in got[a].values() if v is not None]
        vb = [v for v in got[b].values() if v is not None]
        both = [s for s in seeds if got[a][s] is not None and got[b][s] is not None]
        pa = [float(got[a][s]) for s in both]  # type: ignore[arg-type]
        pb = [float(got[b][s]) for s in both]  # type: ignore[arg-type]
        diff = [x - y for x, y in zip(pa, pb, strict=True)]
        lines.append(
            f"| end | {label} | {_fmt(*_mean_se(va))} | {_fmt(*_mean_se(vb))} | "
            f"{_fmt(*_mean_se(diff), signed=True)} | {_with_verdict('', verdict(pa, pb, sign))} |"
        )
    # The same on the wall-clock axis (decision time included), at fractions of the time `b`
    # takes for its whole budget (median over the seeds).
    walls = sorted(by[b][s]["wall_time_s"] for s in seeds)
    wall = walls[len(walls) // 2]
    lines += [
        "",
        f"Wall clock, decision time included: at 25 / 50 / 75 / 100 % of `{b}`'s median run "
        f"time ({wall:.0f} s); results depend on the machine (one process per core).",
        "",
        f"| time | incumbent | {a} | {b} | difference | win / level / loss |",
        "|---|---|---|---|---|---|",
    ]
    points = [(f"{f * wall:.0f} s", f * wall) for f in FRACTIONS]
    lines += _rows(by, seeds, a, b, sign, points, axis=1)
    per_trial = {
        m: _mean_se([by[m][s]["overhead_s"] / max(by[m][s]["n_trials"], 1) for s in seeds])[0]
        for m in (a, b)
    }
    complete = {m: _mean_se([by[m][s]["n_complete"] for s in seeds])[0] for m in (a, b)}
    lines += [
        "",
        f"Decision overhead per trial: {a} {per_trial[a]:.3f} s, {b} {per_trial[b]:.3f} s. "
        f"COMPLETE trials per run: {a} {complete[a]:.1f}, {b} {complete[b]:.1f}. "
        + _waste_sentence({m: [by[m][s] for s in seeds] for m in (a, b)}),
    ]
    return lines


def _rows(
    by: dict[str, dict[int, dict[str, Any]]],
    seeds: list[int],
    a: str,
    b: str,
    sign: float,
    points: list[tuple[str, float]],
    axis: int = 0,
) -> list[str]:
    """Table rows of both incumbents at each ``(label, x)`` of ``points`` on ``axis``."""
    lines = []
    for label, point in points:
        for k, name in ((1, "best COMPLETE"), (0, "best observed")):
            va, vb, pa, pb, tally = [], [], [], [], [0, 0, 0]
            for s in seeds:
                x, y = _at(by[a][s], point, axis)[k], _at(by[b][s], point, axis)[k]
                if x is not None and math.isnan(x):
                    x = None  # nothing reported yet
                if y is not None and math.isnan(y):
                    y = None
                if x is not None:
                    va.append(x)
                if y is not None:
                    vb.append(y)
                if x is not None and y is not None:
                    pa.append(x)
                    pb.append(y)
                gx = -math.inf if x is None else sign * x
                gy = -math.inf if y is None else sign * y
                tally[0 if gx > gy else 1 if gx == gy else 2] += 1
            cells = [_fmt(*_mean_se(v)) + _missing(len(seeds) - len(v)) for v in (va, vb)]
            diff = [x - y for x, y in zip(pa, pb, strict=True)]
            counts = "/".join(map(str, tally))
            if name == "best COMPLETE":
                counts = _with_verdict(counts, verdict(pa, pb, sign))
            lines.append(
                f"| {label} | {name} | {cells[0]} | {cells[1]} | "
                f"{_fmt(*_mean_se(diff), signed=True)} | {counts} |"
            )
    return lines


def _waste_sentence(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Full trainings per run, budget on stuck full trainings, model fits per trial and the
    share of full trainings with a parameter on a bound.

    Args:
        runs: Each method's runs on the paired seeds.
    """
    figures = {m: _harness.waste_figures(rs) for m, rs in runs.items()}
    parts = []
    for label in (
        _harness.FULL_RUNS,
        _harness.STUCK_SHARE,
        _harness.FITS_PER_TRIAL,
        _harness.ON_BOUND,
    ):
        cells = {m: f[label] for m, f in figures.items()}
        if all(cell == "n/a" for cell in cells.values()):
            continue  # model fits: only optuna-boil methods record them
        parts.append(
            label[0].upper() + label[1:] + ": " + ", ".join(f"{m} {c}" for m, c in cells.items())
        )
    return ". ".join(parts) + "."


def _fmt(mean: float, se: float, signed: bool = False) -> str:
    if math.isnan(mean):
        return "-"
    digits = 4 if abs(mean) < 1 and (math.isnan(se) or se < 1) else 1
    body = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return body if math.isnan(se) else f"{body} ± {se:.{digits}f}"


def _end_value(value: float | list[float] | None) -> float | None:
    """A record's end-of-run value: a number, or the mean of a list (retrainings)."""
    if value is None or (isinstance(value, list) and not value):
        return None
    return float(sum(value) / len(value)) if isinstance(value, list) else float(value)


def _missing(n: int) -> str:
    return f" ({n} without)" if n else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="boosting, digits, cartpole, ...")
    parser.add_argument("--a", required=True, help="method whose differences are reported")
    parser.add_argument("--b", required=True, help="method it is compared with")
    parser.add_argument("--file", type=Path, help="records (default results/real_<task>.jsonl)")
    parser.add_argument("--md", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    path = args.file or RESULTS / f"real_{args.task}.jsonl"
    text = "\n".join(compare(_harness.load(path), args.a, args.b)) + "\n"
    print(text, end="")
    if args.md is not None:
        args.md.write_text(text)


if __name__ == "__main__":
    main()

"""Summarise ``run_lcbench.py`` results: regret tables (Markdown) and plots (PNG).

Normalised regret of an incumbent value y on a task is ``(y* - y) / (y* - y_min)`` with y*
and y_min the max and min of ``val_balanced_accuracy`` for the task in YAHPO's
``instance_target_statistics.csv``; it is clipped at 0 because the surrogate can predict
slightly above y* on a few tasks. Two incumbents are reported:

* observed: the best value the optimiser has seen at any epoch of any trial;
* recommended: the true epoch-52 value of the configuration the method recommends.

Spread is the standard error over seeds of the task-averaged regret; rank is the mean over
tasks of the rank of the method's seed-averaged regret (1 = best). On the simulated-time axis
time is measured per task in units of ``time_ref``, the median simulated time of a full
52-epoch training of a random configuration; a run that spent its epoch budget before a time
checkpoint keeps its final incumbent there.

Example::

    python -m benchmarks.summarize_lcbench benchmarks/results/lcbench
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from benchmarks.run_lcbench import DEFAULT_OUT
from benchmarks.run_lcbench import load_records


EPOCH_CHECKPOINTS = (100, 250, 500, 1000)
TIME_CHECKPOINTS = (2.0, 5.0, 10.0, 20.0)
KINDS = {"observed": "trace", "recommended": "rec_trace"}
AXES = {"epochs": 0, "time": 1}


def regret_at(record: dict[str, Any], kind: str, axis: str, grid: Sequence[float]) -> np.ndarray:
    """Normalised regret of one run's incumbent at each point of ``grid``.

    Args:
        record: A run record from ``run_lcbench.py``.
        kind: ``"observed"`` or ``"recommended"``.
        axis: ``"epochs"`` (grid in epochs) or ``"time"`` (grid in units of ``time_ref``).
        grid: Checkpoints, increasing.

    Returns:
        Regret per checkpoint; 1 before the first incumbent exists.
    """
    points = np.asarray(record[KINDS[kind]], dtype=float).reshape(
        -1, 4 if kind == "observed" else 3
    )
    xs = points[:, AXES[axis]]
    if axis == "time":
        xs = xs / record["time_ref"]
    values = np.concatenate([[record["y_min"]], points[:, 2]])
    idx = np.searchsorted(xs, np.asarray(grid, dtype=float), side="right")
    regret = (record["y_star"] - values[idx]) / (record["y_star"] - record["y_min"])
    return np.clip(regret, 0.0, None)


def regret_tensor(
    records: list[dict[str, Any]], kind: str, axis: str, grid: Sequence[float]
) -> tuple[list[str], np.ndarray]:
    """Stack regrets as ``[method, task, seed, checkpoint]`` (NaN for missing runs).

    Returns:
        Method names (in first-seen order) and the array.
    """
    methods = list(dict.fromkeys(r["method"] for r in records))
    tasks = sorted({r["task"] for r in records}, key=int)
    seeds = sorted({r["seed"] for r in records})
    out = np.full((len(methods), len(tasks), len(seeds), len(grid)), np.nan)
    for r in records:
        i, j, k = methods.index(r["method"]), tasks.index(r["task"]), seeds.index(r["seed"])
        out[i, j, k] = regret_at(r, kind, axis, grid)
    return methods, out


def aggregate(regrets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean regret, its standard error over seeds, and mean rank over tasks.

    Args:
        regrets: ``[method, task, seed, checkpoint]``.

    Returns:
        Three ``[method, checkpoint]`` arrays.
    """
    per_seed = np.nanmean(regrets, axis=1)  # average over tasks
    n_seeds = np.sum(~np.isnan(per_seed), axis=1)
    mean = np.nanmean(per_seed, axis=1)
    se = (
        np.nanstd(per_seed, axis=1, ddof=1) / np.sqrt(n_seeds)
        if per_seed.shape[1] > 1
        else (np.zeros_like(mean))
    )
    per_task = np.nanmean(regrets, axis=2)  # [method, task, checkpoint]
    ranks = rankdata(per_task, axis=0)
    return mean, se, ranks.mean(axis=1)


def _table(
    methods: list[str], labels: list[str], mean: np.ndarray, se: np.ndarray, rank: np.ndarray
) -> list[str]:
    lines = ["| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    order = np.argsort(rank[:, -1], kind="stable")
    for i in order:
        cells = [
            f"{mean[i, c]:.4f} ± {se[i, c]:.4f} ({rank[i, c]:.2f})" for c in range(len(labels))
        ]
        lines.append(f"| {methods[i]} | " + " | ".join(cells) + " |")
    return lines


def summarize(
    records: list[dict[str, Any]], out_md: Path, out_png_prefix: Path | None = None
) -> str:
    """Write the Markdown summary and plots for one budget's records.

    Args:
        records: Run records, all with the same budget.
        out_md: Markdown file to write.
        out_png_prefix: Plots go to ``<prefix>_epochs.png`` and ``<prefix>_time.png``;
            ``None`` skips them.

    Returns:
        The Markdown text.
    """
    budget = records[0]["budget"]
    epoch_grid = [c for c in EPOCH_CHECKPOINTS if c < budget] + [budget]
    tasks = sorted({r["task"] for r in records}, key=int)
    seeds = sorted({r["seed"] for r in records})
    methods = list(dict.fromkeys(r["method"] for r in records))
    md = [
        "# LCBench (YAHPO surrogate): normalised regret",
        "",
        f"{len(records)} runs: {len(methods)} methods × {len(tasks)} tasks × {len(seeds)} seeds,"
        f" budget {budget} epochs per run. Tasks: {', '.join(tasks)}.",
        "",
        "Cells: mean normalised regret ± standard error over seeds (mean rank over tasks;"
        " 1 = best). Regret is `(y* - y) / (y* - y_min)` of `val_balanced_accuracy`, clipped"
        " at 0. *observed*: best value seen at any epoch; *recommended*: true epoch-52 value of"
        " the method's recommended configuration. Time is simulated time in units of the"
        " task's median full (52-epoch) training time of a random configuration.",
    ]
    for axis, grid, unit in (
        ("epochs", epoch_grid, "epochs"),
        ("time", list(TIME_CHECKPOINTS), "× full training"),
    ):
        for kind in KINDS:
            names, regrets = regret_tensor(records, kind, axis, grid)
            mean, se, rank = aggregate(regrets)
            md += ["", f"## {kind.capitalize()} incumbent vs {axis}", ""]
            md += _table(names, [f"{g:g} {unit}" for g in grid], mean, se, rank)
    md += [
        "",
        "## Cost",
        "",
        "| method | trials/run | optimiser overhead per trial (ms) | wall time/run (s) "
        "| CPU time/run (s) | total wall (s) | time used at end (× full training) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        md.append(
            f"| {m} | {np.mean([r['n_trials'] for r in rs]):.1f} "
            f"| {1e3 * np.mean([r['overhead_per_trial_s'] for r in rs]):.2f} "
            f"| {np.mean([r['wall_time_s'] for r in rs]):.2f} "
            f"| {np.mean([r.get('cpu_time_s', np.nan) for r in rs]):.2f} "
            f"| {np.sum([r['wall_time_s'] for r in rs]):.1f} "
            f"| {np.median([r['sim_time_used'] / r['time_ref'] for r in rs]):.1f} |"
        )
    text = "\n".join(md) + "\n"
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text)
    if out_png_prefix is not None:
        _plot(records, budget, out_png_prefix)
    return text


def _plot(records: list[dict[str, Any]], budget: int, prefix: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids: dict[str, list[float]] = {
        "epochs": list(range(10, budget + 1)),  # recommendations start at 10 epochs
        "time": list(np.geomspace(0.5, 2 * max(TIME_CHECKPOINTS), 200)),
    }
    for axis, grid in grids.items():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, kind in zip(axes, KINDS, strict=True):
            methods, regrets = regret_tensor(records, kind, axis, grid)
            mean, se, _ = aggregate(regrets)
            cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
            for i, m in enumerate(methods):
                style = "-" if m.startswith("boil") else "--"
                color = cmap(i % cmap.N)
                ax.plot(grid, mean[i], style, label=m, lw=1.5, color=color)
                ax.fill_between(grid, mean[i] - se[i], mean[i] + se[i], alpha=0.15, color=color)
            ax.set_title(f"{kind} incumbent")
            ax.set_xlabel(
                "epochs used" if axis == "epochs" else "simulated time (× full training)"
            )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("mean normalised regret")
        axes[1].legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        fig.savefig(f"{prefix}_{axis}.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Summarise LCBench benchmark results.")
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--budget", type=int, help="only runs with this budget")
    parser.add_argument("--methods", help="comma list of methods to include")
    parser.add_argument("--md", type=Path, help="Markdown output (default: <results>.md)")
    args = parser.parse_args(argv)
    records = load_records(args.results)
    if args.methods:
        keep = args.methods.split(",")
        records = [r for r in records if r["method"] in keep]
    if not records:
        raise SystemExit(f"No run records in {args.results}.")
    budgets = sorted({r["budget"] for r in records})
    budget = args.budget or budgets[-1]
    records = [r for r in records if r["budget"] == budget]
    md = args.md or args.results.with_suffix(".md")
    print(summarize(records, md, md.with_suffix("")))
    print(f"wrote {md} and {md.with_suffix('')}_{{epochs,time}}.png")


if __name__ == "__main__":
    main()

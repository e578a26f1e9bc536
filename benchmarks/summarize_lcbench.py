"""Summarise ``run_lcbench.py`` results: regret tables (Markdown) and plots (PNG).

Normalised regret of an incumbent value y on a task is ``(y* - y) / (y* - y_min)`` with y*
and y_min the max and min of ``val_balanced_accuracy`` for the task in YAHPO's
``instance_target_statistics.csv``; it is clipped at 0 because the surrogate can predict
slightly above y* on a few tasks. Three incumbents are reported:

* complete: the best COMPLETE trial (what ``study.best_trial`` returns: a trial trained to
  epoch 52 that returned; for DEHB an evaluation at fidelity 52), valued at epoch 52;
  regret 1 until the first COMPLETE trial;
* recommended: the true epoch-52 value of the configuration the method recommends;
* observed: the best value the optimiser has seen at any epoch of any trial.

For each checkpoint a cell gives the mean regret ± the standard error over seeds of the
task-averaged regret, the median over tasks of the seed-averaged regret, and the mean over
tasks of the method's rank by seed-averaged regret (1 = best; ranks among the methods that
have runs on the task). On the simulated-time axis time is measured per task in units of
``time_ref``, the median simulated time of a full 52-epoch training of a random
configuration; a run that spent its epoch budget before a time checkpoint keeps its final
incumbent there. Older records without ``complete_trace`` / ``last_epochs`` are summarised
without the complete incumbent and the COMPLETE-trial table.

Example::

    python -m benchmarks.summarize_lcbench benchmarks/results/lcbench24
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import math
from pathlib import Path
from typing import Any
from typing import NamedTuple
import warnings

import numpy as np
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from scipy.stats import rankdata

from benchmarks import _protocol
from benchmarks.lcbench import search_space
from benchmarks.real._harness import parse_seeds
from benchmarks.run_lcbench import DEFAULT_OUT
from benchmarks.run_lcbench import load_records


EPOCH_CHECKPOINTS = (100, 250, 500, 1000)
TIME_CHECKPOINTS = (2.0, 5.0, 10.0, 20.0)
COMPLETE_CHECKPOINTS = (250, 500, 1000)
# Incumbent -> trace field of the run records, in the order of the tables.
KINDS = {"complete": "complete_trace", "recommended": "rec_trace", "observed": "trace"}
KIND_TITLES = {
    "complete": "Complete incumbent (best COMPLETE trial)",
    "recommended": "Recommended incumbent",
    "observed": "Observed incumbent",
}
AXES = {"epochs": 0, "time": 1}
# Bins of a trial's last epoch for the budget distribution (inclusive).
EPOCH_BINS = ((1, 4), (5, 16), (17, 51), (52, 52))
CELL_LEGEND = "mean ± SE · median · rank"


class Aggregate(NamedTuple):
    """Per-method, per-checkpoint statistics (each ``[method, checkpoint]``)."""

    mean: np.ndarray
    se: np.ndarray
    median: np.ndarray
    rank: np.ndarray


def kinds_in(records: Sequence[dict[str, Any]]) -> list[str]:
    """The incumbents whose traces all ``records`` have, in table order."""
    return [kind for kind, key in KINDS.items() if all(key in r for r in records)]


def regret_at(
    record: dict[str, Any], kind: str, axis: str, grid: Sequence[float], clip: bool = True
) -> np.ndarray:
    """Normalised regret of one run's incumbent at each point of ``grid``.

    Args:
        record: A run record from ``run_lcbench.py``.
        kind: ``"complete"``, ``"recommended"`` or ``"observed"``.
        axis: ``"epochs"`` (grid in epochs) or ``"time"`` (grid in units of ``time_ref``).
        grid: Checkpoints, increasing.
        clip: Clip at 0 (else negative where the surrogate predicts above ``y*``).

    Returns:
        Regret per checkpoint; 1 before the first incumbent exists.
    """
    points = np.asarray(record[KINDS[kind]], dtype=float).reshape(
        -1, 3 if kind == "recommended" else 4
    )
    xs = points[:, AXES[axis]]
    if axis == "time":
        xs = xs / record["time_ref"]
    values = np.concatenate([[record["y_min"]], points[:, 2]])
    idx = np.searchsorted(xs, np.asarray(grid, dtype=float), side="right")
    regret = (record["y_star"] - values[idx]) / (record["y_star"] - record["y_min"])
    return np.clip(regret, 0.0, None) if clip else regret


def regret_tensor(
    records: list[dict[str, Any]],
    kind: str,
    axis: str,
    grid: Sequence[float],
    clip: bool = True,
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
        out[i, j, k] = regret_at(r, kind, axis, grid, clip)
    return methods, out


def aggregate(regrets: np.ndarray) -> Aggregate:
    """Mean regret and its standard error over seeds, median over tasks, mean rank.

    Args:
        regrets: ``[method, task, seed, checkpoint]``, NaN for missing runs.

    Returns:
        The statistics, each ``[method, checkpoint]``.
    """
    with warnings.catch_warnings():  # all-NaN slices of incomplete comparisons give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = np.nanmean(regrets, axis=1)  # [method, seed, checkpoint]: task average
        n_seeds = np.sum(~np.isnan(per_seed), axis=1)
        mean = np.nanmean(per_seed, axis=1)
        if per_seed.shape[1] > 1:
            se = np.nanstd(per_seed, axis=1, ddof=1) / np.sqrt(n_seeds)
        else:
            se = np.zeros_like(mean)
        per_task = np.nanmean(regrets, axis=2)  # [method, task, checkpoint]: seed average
        median = np.nanmedian(per_task, axis=1)
        ranks = np.full_like(per_task, np.nan)
        for t in range(per_task.shape[1]):
            for c in range(per_task.shape[2]):
                ok = ~np.isnan(per_task[:, t, c])
                ranks[ok, t, c] = rankdata(per_task[ok, t, c])
        rank = np.nanmean(ranks, axis=1)
    return Aggregate(mean, se, median, rank)


def _cell(stats: Aggregate, i: int, c: int) -> str:
    if np.isnan(stats.mean[i, c]):
        return "–"
    return (
        f"{stats.mean[i, c]:.4f} ± {stats.se[i, c]:.4f} · {stats.median[i, c]:.4f}"
        f" · {stats.rank[i, c]:.2f}"
    )


def _order(rank: np.ndarray) -> np.ndarray:
    """Method indices sorted by a rank vector, NaN last."""
    return np.argsort(np.where(np.isnan(rank), np.inf, rank), kind="stable")


def _regret_table(methods: list[str], labels: list[str], stats: Aggregate) -> list[str]:
    lines = ["| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for i in _order(stats.rank[:, -1]):
        cells = [_cell(stats, i, c) for c in range(len(labels))]
        lines.append(f"| {methods[i]} | " + " | ".join(cells) + " |")
    return lines


def _fraction(x: float) -> str:
    return f"{x:.2f}"


def complete_stats(records: list[dict[str, Any]], budget: int) -> list[str]:
    """Markdown table of COMPLETE trials and the trials' budget distribution per method.

    Args:
        records: Run records with ``first_complete_epoch`` and ``last_epochs``.
        budget: The runs' epoch budget.

    Returns:
        The table's lines.
    """
    checkpoints = [c for c in COMPLETE_CHECKPOINTS if c < budget] + [budget]
    bins = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in EPOCH_BINS]
    lines = [
        "| method | COMPLETE/run (mean) | COMPLETE/run (min) | "
        + " | ".join(f"runs with one by {c}" for c in checkpoints)
        + " | first COMPLETE at (median epoch) | trials/run | "
        + " | ".join(f"last epoch {b}" for b in bins)
        + " |",
        "|---" * (5 + len(checkpoints) + len(bins)) + "|",
    ]
    methods = list(dict.fromkeys(r["method"] for r in records))
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        n_complete = [r["n_complete"] for r in rs]
        first = np.array([r["first_complete_epoch"] or np.inf for r in rs], dtype=float)
        by = [_fraction(float(np.mean(first <= c))) for c in checkpoints]
        last = np.concatenate([np.asarray(r["last_epochs"], dtype=int) for r in rs])
        dist = [_fraction(float(np.mean((last >= lo) & (last <= hi)))) for lo, hi in EPOCH_BINS]
        median_first = np.median(first)
        lines.append(
            f"| {m} | {np.mean(n_complete):.1f} | {min(n_complete)} | "
            + " | ".join(by)
            + f" | {'never' if np.isinf(median_first) else f'{median_first:g}'}"
            + f" | {len(last) / len(rs):.1f} | "
            + " | ".join(dist)
            + " |"
        )
    return lines


def _cost_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| method | trials/run | optimiser overhead per trial (ms) | wall time/run (s) "
        "| CPU time/run (s) | total wall (s) | time used at end (× full training) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in dict.fromkeys(r["method"] for r in records):
        rs = [r for r in records if r["method"] == m]
        lines.append(
            f"| {m} | {np.mean([r['n_trials'] for r in rs]):.1f} "
            f"| {1e3 * np.mean([r['overhead_per_trial_s'] for r in rs]):.2f} "
            f"| {np.mean([r['wall_time_s'] for r in rs]):.2f} "
            f"| {np.mean([r.get('cpu_time_s', np.nan) for r in rs]):.2f} "
            f"| {np.sum([r['wall_time_s'] for r in rs]):.1f} "
            f"| {np.median([r['sim_time_used'] / r['time_ref'] for r in rs]):.1f} |"
        )
    return lines


BOOTSTRAP = 10_000  # resamples of tasks for the standard error over tasks


class Paired(NamedTuple):
    """Paired regret differences of one method against the reference, per checkpoint.

    Attributes:
        mean: Mean difference.
        se: Its standard error over seeds (the tasks fixed, as the tables' SE).
        se_tasks: Its standard error over tasks: the standard deviation of the mean of the
            tasks' seed-averaged differences over ``BOOTSTRAP`` resamples of the tasks
            (a fixed seed, so the summary is reproducible); NaN with fewer than two tasks.
        wins: Tasks where the method is better: its seed-averaged difference is below minus
            that difference's standard error over the task's seeds (benchmarks/PROTOCOL.md).
        ties: Tasks whose seed-averaged difference is within its standard error (a task with
            one seed is a tie only when the difference is 0).
        losses: Tasks where the method is worse, in the mirror sense.
        n: The number of paired runs.
        median: The method's median over tasks of its seed-averaged regret minus the
            reference's (the same runs).
    """

    mean: np.ndarray
    se: np.ndarray
    se_tasks: np.ndarray
    wins: np.ndarray
    ties: np.ndarray
    losses: np.ndarray
    n: int
    median: np.ndarray

    def verdicts(self) -> list[str]:
        """Per checkpoint, the method against the reference by benchmarks/PROTOCOL.md's rule:
        ``"better"`` when its mean regret is lower by more than two standard errors over tasks
        *and* its median is lower, ``"worse"`` in the mirror case, else ``"level"``."""
        # Regret: lower is better, so the gain is minus the difference.
        return [
            _protocol.verdict(-mean, se, -median)
            for mean, se, median in zip(self.mean, self.se_tasks, self.median, strict=True)
        ]


def paired_differences(
    records: list[dict[str, Any]], kind: str, reference: str, grid: Sequence[float]
) -> dict[str, Paired]:
    """Regret differences of each method minus ``reference`` on the runs both have.

    Runs pair by (task, seed); a seed's difference is averaged over the tasks both methods
    ran with it, and the standard error is over those seeds (as the tables' SE); the
    bootstrap over tasks gives the standard error a new set of tasks would see.

    Returns:
        Per method other than ``reference``, its :class:`Paired` differences.
    """
    methods, regrets = regret_tensor(records, kind, "epochs", grid)
    if reference not in methods:
        raise ValueError(f"No runs of the reference method {reference!r}.")
    ref = regrets[methods.index(reference)]
    out = {}
    for i, m in enumerate(methods):
        if m == reference:
            continue
        diff = regrets[i] - ref  # [task, seed, checkpoint], NaN where either is missing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_seed = np.nanmean(diff, axis=0)  # [seed, checkpoint]
            per_task = np.nanmean(diff, axis=1)  # [task, checkpoint]
        ok = ~np.isnan(per_seed[:, 0])
        if not ok.any():
            continue
        per_seed = per_seed[ok]
        se = (
            np.std(per_seed, axis=0, ddof=1) / np.sqrt(len(per_seed))
            if len(per_seed) > 1
            else np.zeros(per_seed.shape[1])
        )
        wins, ties, losses = _task_outcomes(diff)
        pairs = ~np.isnan(diff)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = [
                np.nanmedian(np.nanmean(np.where(pairs, r, np.nan), axis=1), axis=0)
                for r in (regrets[i], ref)
            ]
        tasks = per_task[~np.isnan(per_task[:, 0])]
        draws = np.random.default_rng(0).integers(0, len(tasks), (BOOTSTRAP, len(tasks)))
        se_tasks = tasks[draws].mean(axis=1).std(axis=0, ddof=1)
        if len(tasks) < 2:  # one task says nothing about another set of tasks: no verdict
            se_tasks = np.full(tasks.shape[1], np.nan)
        n = int(np.sum(~np.isnan(diff[..., 0])))
        out[m] = Paired(
            per_seed.mean(axis=0), se, se_tasks, wins, ties, losses, n, medians[0] - medians[1]
        )
    return out


def _task_outcomes(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wins, ties and losses over tasks (per checkpoint) of the differences
    ``diff[task, seed, checkpoint]`` (NaN: not paired): a task's seed-averaged difference
    against the standard error of that mean over its seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_task = np.nanmean(diff, axis=1)
        count = np.sum(~np.isnan(diff), axis=1)
        sd = np.nanstd(diff, axis=1, ddof=1)
    se = np.where(count > 1, np.nan_to_num(sd) / np.sqrt(np.maximum(count, 1)), 0.0)
    paired = count > 0
    wins = np.sum(paired & (per_task < -se), axis=0)
    losses = np.sum(paired & (per_task > se), axis=0)
    ties = np.sum(paired, axis=0) - wins - losses
    return wins, ties, losses


def _paired_table(
    records: list[dict[str, Any]], kinds: list[str], reference: str, grid: Sequence[float]
) -> list[str]:
    lines = [
        "| method | incumbent | runs | " + " | ".join(f"{g:g} epochs" for g in grid) + " |",
        "|---" * (3 + len(grid)) + "|",
    ]
    for kind in kinds:
        for m, p in paired_differences(records, kind, reference, grid).items():
            verdicts = p.verdicts()
            cells = [
                f"{p.mean[c]:+.4f} ± {p.se[c]:.4f} · tasks ± {p.se_tasks[c]:.4f}"
                f" ({p.wins[c]}/{p.ties[c]}/{p.losses[c]})"
                + ("" if verdicts[c] == "level" else f" **{verdicts[c]}**")
                for c in range(len(grid))
            ]
            lines.append(f"| {m} | {kind} | {p.n} | " + " | ".join(cells) + " |")
    return lines


def on_bound_share(config: dict[str, Any] | None) -> float:
    """Share of an LCBench configuration's parameters that lie on a bound of the box (NaN
    without a configuration)."""
    if not config:
        return math.nan
    space = search_space()
    on = [
        math.isclose(float(config[name]), float(d.low), rel_tol=1e-6, abs_tol=1e-12)
        or math.isclose(float(config[name]), float(d.high), rel_tol=1e-6, abs_tol=1e-12)
        for name, d in space.items()
        if name in config and isinstance(d, (FloatDistribution, IntDistribution))
    ]
    return float(np.mean(on)) if on else math.nan


def corner_stats(records: list[dict[str, Any]], kinds: list[str], budget: int) -> list[str]:
    """The surrogate's corners (benchmarks/PROTOCOL.md), at the end of the budget and per
    method: the share of runs whose incumbent lies above ``y*`` (unclipped regret below 0),
    the mean unclipped regret, the share of the recommended configuration's parameters on a
    bound of the box, and the clipped regret again on the tasks where no run of any method
    exceeds ``y*``."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    lines = [
        "| method | "
        + " | ".join(f"{k}: above y* / unclipped regret" for k in kinds)
        + " | recommended parameters on a bound |",
        "|---" * (2 + len(kinds)) + "|",
    ]
    above_any: set[str] = set()
    for m in methods:
        runs = [r for r in records if r["method"] == m]
        cells = []
        for kind in kinds:
            raw = np.array([regret_at(r, kind, "epochs", [budget], clip=False)[0] for r in runs])
            above_any |= {r["task"] for r, v in zip(runs, raw, strict=True) if v < 0}
            cells.append(f"{_fraction(float(np.mean(raw < 0)))} / {np.mean(raw):.4f}")
        shares = [b for r in runs if not math.isnan(b := on_bound_share(r.get("recommended")))]
        bound = float(np.mean(shares)) if shares else math.nan
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {_fraction(float(bound))} |")
    clean = [r for r in records if r["task"] not in above_any]
    n_clean = len({r["task"] for r in clean})
    lines += ["", f"Tasks where no run of any method exceeds y*: {n_clean}.", ""]
    if clean:
        lines += _headline(clean, kinds, budget)
    return lines


def _headline(records: list[dict[str, Any]], kinds: list[str], budget: int) -> list[str]:
    """Regret of every incumbent at the end of the budget, one row per method."""
    stats = {}
    for kind in kinds:
        methods, regrets = regret_tensor(records, kind, "epochs", [budget])
        stats[kind] = aggregate(regrets)
    lines = [
        "| method | " + " | ".join(kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    for i in _order(stats[kinds[0]].rank[:, 0]):
        lines.append(
            f"| {methods[i]} | " + " | ".join(_cell(stats[k], i, 0) for k in kinds) + " |"
        )
    return lines


def summarize(
    records: list[dict[str, Any]],
    out_md: Path,
    out_png_prefix: Path | None = None,
    paired: str | None = None,
) -> str:
    """Write the Markdown summary and plots for one budget's records.

    Args:
        records: Run records, all with the same budget.
        out_md: Markdown file to write.
        out_png_prefix: Plots go to ``<prefix>_epochs.png`` and ``<prefix>_time.png``;
            ``None`` skips them.
        paired: A method to compare every other method with, run by run (a section of
            paired regret differences); ``None`` for none.

    Returns:
        The Markdown text.
    """
    budget = records[0]["budget"]
    epoch_grid = [c for c in EPOCH_CHECKPOINTS if c < budget] + [budget]
    tasks = sorted({r["task"] for r in records}, key=int)
    seeds = sorted({r["seed"] for r in records})
    methods = list(dict.fromkeys(r["method"] for r in records))
    kinds = kinds_in(records)
    has_complete_stats = all("last_epochs" in r for r in records)
    n_grid = len(methods) * len(tasks) * len(seeds)
    partial = "" if len(records) == n_grid else f" (not all {n_grid}: seeds differ by task)"
    md = [
        "# LCBench (YAHPO surrogate): normalised regret",
        "",
        f"{len(records)} runs: {len(methods)} methods × {len(tasks)} tasks × {len(seeds)} seeds"
        f"{partial}, budget {budget} epochs per run.",
        "",
        f"## Regret at {budget} epochs",
        "",
        f"Cells: {CELL_LEGEND}, sorted by the {kinds[0]} incumbent's rank.",
        "",
        *_headline(records, kinds, budget),
    ]
    if has_complete_stats:
        md += [
            "",
            "## COMPLETE trials and budget distribution",
            "",
            "COMPLETE = trained to epoch 52 and returned (what `study.best_trial` counts; DEHB:"
            " an evaluation at fidelity 52). *runs with one by e*: fraction of runs with a"
            " COMPLETE trial within e epochs. *last epoch*: fraction of all trials (pooled over"
            " runs) whose last trained epoch is in the range.",
            "",
            *complete_stats(records, budget),
        ]
    if paired is not None:
        md += [
            "",
            f"## Paired differences against {paired}",
            "",
            f"Regret of the method minus regret of {paired} on the same task and seed: mean ±"
            " SE over seeds (negative = the method is better), · the SE over tasks (bootstrap"
            f" of the tasks, {BOOTSTRAP} resamples: what another set of tasks would see) and,"
            " in brackets, tasks won / tied / lost: a task is won or lost when its"
            " seed-averaged difference is beyond the standard error over its seeds, else"
            " tied. **better** / **worse**: the method against the reference by the rule of"
            " benchmarks/PROTOCOL.md (mean regret lower / higher by more than two standard"
            " errors over tasks, and the median over tasks lower / higher); otherwise level.",
            "",
            *_paired_table(records, kinds, paired, epoch_grid),
        ]
    md += [
        "",
        "## The surrogate's corners",
        "",
        "The surrogate can predict values above the task's real best y* (YAHPO's target"
        " statistics), mostly at corners of the box, for every method that goes there."
        " *above y\\**: share of runs whose incumbent at the end of the budget exceeds y*;"
        " *unclipped regret*: its mean regret without the clip at 0.",
        "",
        *corner_stats(records, kinds, budget),
    ]
    md += [
        "",
        "## How to read",
        "",
        f"Cells are *{CELL_LEGEND}*: mean normalised regret over tasks and seeds ± standard"
        " error over seeds (of the task-averaged regret) · median over tasks of the"
        " seed-averaged regret · mean rank over tasks among the methods (1 = best). Regret is"
        " `(y* - y) / (y* - y_min)` of `val_balanced_accuracy`, clipped at 0."
        " *complete*: epoch-52 value of the best COMPLETE trial (regret 1 before the first);"
        " *recommended*: true epoch-52 value of the method's recommended configuration;"
        " *observed*: best value seen at any epoch of any trial. Time is simulated time in"
        " units of the task's median full (52-epoch) training time of a random configuration."
        f" Tasks: {', '.join(tasks)}. Seeds: {', '.join(map(str, seeds))}.",
    ]
    for axis, grid, unit in (
        ("epochs", epoch_grid, "epochs"),
        ("time", list(TIME_CHECKPOINTS), "× full training"),
    ):
        md += ["", f"## Regret vs {'epochs' if axis == 'epochs' else 'simulated time'}"]
        for kind in kinds:
            names, regrets = regret_tensor(records, kind, axis, grid)
            md += ["", f"### {KIND_TITLES[kind]}", ""]
            md += _regret_table(names, [f"{g:g} {unit}" for g in grid], aggregate(regrets))
    md += ["", "## Cost", "", *_cost_table(records)]
    text = "\n".join(md) + "\n"
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text)
    if out_png_prefix is not None:
        _plot(records, kinds, budget, out_png_prefix)
    return text


def _plot(records: list[dict[str, Any]], kinds: list[str], budget: int, prefix: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids: dict[str, list[float]] = {
        "epochs": list(range(10, budget + 1)),  # recommendations start at 10 epochs
        "time": list(np.geomspace(0.5, 2 * max(TIME_CHECKPOINTS), 200)),
    }
    for axis, grid in grids.items():
        fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.5), sharey=True)
        for ax, kind in zip(np.atleast_1d(axes), kinds, strict=True):
            methods, regrets = regret_tensor(records, kind, axis, grid)
            stats = aggregate(regrets)
            cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
            for i, m in enumerate(methods):
                style = "-" if m.startswith("boil") else "--"
                color = cmap(i % cmap.N)
                mean, se = stats.mean[i], stats.se[i]
                ax.plot(grid, mean, style, label=m, lw=1.5, color=color)
                ax.fill_between(grid, mean - se, mean + se, alpha=0.15, color=color)
            ax.set_title(f"{kind} incumbent")
            ax.set_xlabel(
                "epochs used" if axis == "epochs" else "simulated time (× full training)"
            )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        first = np.atleast_1d(axes)
        first[0].set_ylabel("mean normalised regret")
        first[-1].legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        fig.savefig(f"{prefix}_{axis}.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Summarise LCBench benchmark results.")
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--budget", type=int, help="only runs with this budget")
    parser.add_argument("--methods", help="comma list of methods to include")
    parser.add_argument("--seeds", help="only these seeds: comma list or ranges a-b")
    parser.add_argument("--md", type=Path, help="Markdown output (default: <results>.md)")
    parser.add_argument("--paired", help="add paired regret differences against this method")
    args = parser.parse_args(argv)
    records = load_records(args.results)
    if args.methods:
        keep = args.methods.split(",")
        records = [r for r in records if r["method"] in keep]
    if args.seeds:
        seeds = set(parse_seeds(args.seeds))
        records = [r for r in records if r["seed"] in seeds]
    if not records:
        raise SystemExit(f"No run records in {args.results}.")
    budgets = sorted({r["budget"] for r in records})
    budget = args.budget or budgets[-1]
    records = [r for r in records if r["budget"] == budget]
    md = args.md or args.results.with_suffix(".md")
    print(summarize(records, md, md.with_suffix(""), paired=args.paired))
    print(f"wrote {md} and {md.with_suffix('')}_{{epochs,time}}.png")


if __name__ == "__main__":
    main()

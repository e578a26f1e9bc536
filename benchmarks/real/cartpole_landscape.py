"""How much structure the CartPole task has: random configurations, each trained fully.

Trains ``--n`` configurations drawn uniformly (log-uniform where the search space is log) from
the CartPole task's search space for the full 150 episodes, one training seed each, and writes a
table of

* the share of successful trainings (final mean return above 100) by quarter of each
  hyperparameter's range, and inside / outside a region given on the command line;
* the rank correlation (Spearman) of the value reported at each episode with the final value:
  how much a short run tells about a full one.

This is the random-search view of the task, without any tuner: it says whether a model could
find a better region than random draws do, and how early a curve starts to say anything.
Records are cached in ``--out`` (one JSON line per configuration) and reused, so the table can be
redone without training.

Example::

    python -m benchmarks.real.cartpole_landscape --n 120 --jobs 2
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.real import cartpole


RESULTS = Path(__file__).resolve().parents[1] / "results"
MAX_EPISODES = 150
SUCCESS = 100.0
# Log10 ranges of the search space in cartpole.suggest (gamma is linear).
RANGES = {"lr": (-4.0, -2.0), "gamma": (0.9, 0.999), "tau": (-3.0, -1.0)}
LOG = {"lr": True, "gamma": False, "tau": True}


def draw(n: int, seed: int) -> list[dict[str, float]]:
    """``n`` configurations drawn uniformly in the (log) search space."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        u = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in RANGES.items()}
        out.append({name: 10**v if LOG[name] else v for name, v in u.items()})
    return out


def train(index: int, params: dict[str, float]) -> dict[str, Any]:
    """Train one configuration fully (training seed ``1000 + index``)."""
    import torch

    torch.set_num_threads(1)
    values = [v for _, v in cartpole.curve(params, 0, 1000 + index, max_episodes=MAX_EPISODES)]
    return {"i": index, **params, "curve": values}


def _coordinate(record: dict[str, Any], name: str) -> float:
    return math.log10(record[name]) if LOG[name] else float(record[name])


def summarise(records: list[dict[str, Any]], region: dict[str, float]) -> str:
    """The Markdown table of success shares and early-vs-final rank correlations."""
    curves = np.array([r["curve"] for r in records])
    final = curves[:, -1]
    success = final > SUCCESS
    lines = [
        "# CartPole: random configurations trained fully",
        "",
        f"{len(records)} configurations drawn uniformly (lr and tau log-uniform), each trained "
        f"once for {MAX_EPISODES} episodes (`python -m benchmarks.real.cartpole_landscape`). "
        f"Success: final mean return of the last 10 episodes above {SUCCESS:g}.",
        "",
        f"Success overall: {success.mean():.2f}; final return 190 or more: "
        f"{(final >= 190).mean():.2f}.",
        "",
        "## Success by quarter of each range",
        "",
        "| hyperparameter | quarter 1 | quarter 2 | quarter 3 | quarter 4 |",
        "|---|---|---|---|---|",
    ]
    for name, (lo, hi) in RANGES.items():
        v = np.array([_coordinate(r, name) for r in records])
        edges = np.linspace(lo, hi, 5)
        cells = []
        for k in range(4):
            inside = (v >= edges[k]) & (v <= edges[k + 1])
            share = success[inside].mean() if inside.any() else float("nan")
            cells.append(f"{share:.2f} (n={int(inside.sum())})")
        scale = "log10 " if LOG[name] else ""
        lines.append(f"| {scale}{name} {lo:g}..{hi:g} | " + " | ".join(cells) + " |")
    inside = np.ones(len(records), dtype=bool)
    for name, low in region.items():
        inside &= np.array([_coordinate(r, name) for r in records]) > low
    what = " and ".join(
        f"{'log10 ' if LOG[name] else ''}{name} > {low:g}" for name, low in region.items()
    )
    lines += [
        "",
        f"Region {what}: {int(inside.sum())} configurations, success "
        f"{success[inside].mean():.2f}; outside: {int((~inside).sum())}, success "
        f"{success[~inside].mean():.2f}.",
        "",
        "## What a short run tells about the final value",
        "",
        "| episode | Spearman with the final value |",
        "|---|---|",
    ]
    for k in range(curves.shape[1] - 1):
        rho = spearmanr(curves[:, k], final)[0]
        lines.append(f"| {(k + 1) * cartpole.REPORT_EVERY} | {rho:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=120, help="configurations (default 120)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the draws")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--region",
        default="lr=-3.3,tau=-2.6",
        help="lower bounds (log10 for lr and tau) of the region to report (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "cartpole_landscape.jsonl")
    parser.add_argument("--md", type=Path, default=RESULTS / "cartpole_landscape.md")
    args = parser.parse_args(argv)
    region = {}
    for part in args.region.split(","):
        name, _, low = part.partition("=")
        if name not in RANGES:
            parser.error(f"Unknown hyperparameter {name!r} in --region; expected {list(RANGES)}.")
        region[name] = float(low)
    done: dict[int, dict[str, Any]] = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            record = json.loads(line)
            done[int(record["i"])] = record
    todo = [(i, p) for i, p in enumerate(draw(args.n, args.seed)) if i not in done]
    with args.out.open("a") as f, ProcessPoolExecutor(max(1, args.jobs)) as pool:
        for record in pool.map(train, *zip(*todo, strict=True)) if todo else []:
            f.write(json.dumps(record) + "\n")
            f.flush()
            done[int(record["i"])] = record
    records = [done[i] for i in sorted(done) if i < args.n]
    args.md.write_text(summarise(records, region))
    print(args.md.read_text())


if __name__ == "__main__":
    main()

"""The win rule of benchmarks/PROTOCOL.md, shared by the LCBench and the real-task summaries."""

from __future__ import annotations


def verdict(gain: float, se: float, median_gain: float) -> str:
    """``"better"`` when the mean ``gain`` exceeds two standard errors ``se`` *and* the median
    gain is positive, ``"worse"`` in the mirror case, else ``"level"`` (also when ``se`` is NaN).
    Gains are oriented so that positive means better."""
    if gain > 2 * se and median_gain > 0:
        return "better"
    if gain < -2 * se and median_gain < 0:
        return "worse"
    return "level"

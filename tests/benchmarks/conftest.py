"""Make the repository's ``benchmarks`` package importable however pytest is started."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest


_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)


@pytest.fixture(scope="session")
def lcbench_dir() -> Path:
    """The LCBench surrogate folder; skips the test when it is not there."""
    from benchmarks.lcbench import resolve_data_dir

    try:
        return resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))

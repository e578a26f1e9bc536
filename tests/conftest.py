from __future__ import annotations

from collections.abc import Iterator
import logging
import os

import optuna
import pytest
import torch

from optuna_boil import _logging


os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def caplog_boil(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture optuna-boil's log (Optuna's logger does not propagate by default); warnings by
    default, ``caplog_boil.set_level(logging.INFO, logger="optuna.boil")`` for more."""
    logger = _logging.get_logger()
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger=logger.name)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)

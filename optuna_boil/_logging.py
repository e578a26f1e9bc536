"""Logging through Optuna's logger tree, with warnings that are said once.

The logger is a child of Optuna's (``optuna.boil``), so ``optuna.logging.set_verbosity`` and
``optuna.logging.disable_default_handler`` apply to optuna-boil's messages as to Optuna's own.
"""

from __future__ import annotations

import logging
import threading

import optuna


_LOGGER_NAME = "optuna.boil"
_said: set[tuple[object, ...]] = set()
_lock = threading.Lock()


def get_logger() -> logging.Logger:
    """The package's logger (``optuna.boil``, under Optuna's root logger)."""
    return optuna.logging.get_logger(_LOGGER_NAME)


def warn_once(key: tuple[object, ...], message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process.

    Args:
        key: What makes the warning distinct, e.g. ``(study_name, "independent", param)``.
        message: The text; it should name the value, trial or parameter concerned.
    """
    with _lock:
        if key in _said:
            return
        _said.add(key)
    get_logger().warning(message)

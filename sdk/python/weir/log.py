"""Logging from a plugin: into the host's tracing inside a component, into `logging` outside.

    import weir
    weir.log.warn("dropping a record without a name")
"""

from __future__ import annotations

import logging
from typing import Callable

_python_logger = logging.getLogger("weir.plugin")
_PY_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _to_python_logging(level: str, message: str) -> None:
    _python_logger.log(_PY_LEVELS[level], message)


#: Where messages go; the component glue points it at the WIT `log` import.
_sink: Callable[[str, str], None] = _to_python_logging


def set_sink(sink: Callable[[str, str], None]) -> None:
    """Send messages to `sink(level, message)` (`level` is one of trace/debug/info/warn/error)."""
    global _sink
    _sink = sink


def trace(message: str) -> None:
    _sink("trace", message)


def debug(message: str) -> None:
    _sink("debug", message)


def info(message: str) -> None:
    _sink("info", message)


def warn(message: str) -> None:
    _sink("warn", message)


def error(message: str) -> None:
    _sink("error", message)

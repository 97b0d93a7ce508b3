"""What every command shares: settings loaded once, logging set up, coroutines run, output consoles."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from functools import cache
from typing import Any, TypeVar

import uvloop
from rich.console import Console

from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings

T = TypeVar("T")

#: Results go to stdout (pipe-able); progress, warnings and logs to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@cache
def settings() -> Settings:
    loaded = load_settings()
    configure_logging(loaded.log_format, loaded.log_level)
    return loaded


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)

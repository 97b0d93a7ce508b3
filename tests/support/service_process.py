"""Run a service with `xbus run` in a process of its own, and poll its schema: for tests that kill it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from infrastructure.settings import Settings, child_environment

ROOT = Path(__file__).resolve().parent.parent.parent
#: The runner's stop grace (30 s by default) for batches under way, then time to leave the group.
STOP_SECONDS = 45


def process_env(settings: Settings) -> dict[str, str]:
    """The environment of an `xbus` command in a process of its own on ``settings``' broker,
    database, topics and schemas, with JSON logs; nothing from the caller's own XBUS_* settings."""
    return {
        **child_environment(settings, settings.kafka_bootstrap or "", settings.database_url or ""),
        "XBUS_LOG_FORMAT": "json",
    }


class ServiceProcess:
    """`xbus run` of a test service in a process of its own, killable."""

    def __init__(self, spec: str, settings: Settings, log: Path, metrics_port: int = 0) -> None:
        self.spec, self.log, self.metrics_port = spec, log, metrics_port
        #: Where this life of the process starts in its log (restarts append to the same file).
        self._life_starts = 0
        self.env = {
            **process_env(settings),
            "XBUS_CONSUMER_SESSION_TIMEOUT_MS": "3000",
            "XBUS_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
            "XBUS_METRICS_PORT": str(metrics_port),
            "PYTHONFAULTHANDLER": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._life_starts = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "xbus", "run", self.spec], env=self.env, cwd=ROOT, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, then the exit code. A process that outlives the runner's bounded stop (the
        30 s grace, then up to three 3 s session timeouts to leave) fails with its log's end."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # faulthandler writes where each thread is
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            tail = self.log.read_text(errors="replace").splitlines()[-60:]
            raise AssertionError(
                f"{self.spec} still runs {STOP_SECONDS} s after SIGTERM; its log ends:\n" + "\n".join(tail)
            ) from None

    def started(self) -> bool:
        """Whether this life of the process has migrated and joined its group ("service started")."""
        return any(entry.get("event") == "service started" for entry in self._entries())

    def assignment(self) -> set[str]:
        """The partitions (``topic[partition]``) this life of the process holds, as its JSON log
        says: its last "partitions assigned", or none after a "partitions revoked"."""
        held: set[str] = set()
        for entry in self._entries():
            if entry.get("event") == "partitions assigned":
                held = set(entry["partitions"])
            elif entry.get("event") == "partitions revoked":
                held = set()
        return held

    def _entries(self) -> list[dict[str, Any]]:
        """This life's JSON log entries (a line still being written is skipped)."""
        with self.log.open("rb") as log:
            log.seek(self._life_starts)
            lines = log.read().decode(errors="replace").splitlines(keepends=True)
        return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("\n")]

    async def metrics(self) -> str:
        """The process's Prometheus text (it needs a ``metrics_port`` of its own, not 0)."""
        assert self.metrics_port, "give the process a metrics port to scrape"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"

        def get() -> str:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode())

        return await asyncio.to_thread(get)


async def scalar(settings: Settings, schema: str, query: str) -> int:
    connection = await asyncpg.connect(settings.database_url or "")
    try:
        exists = await connection.fetchval("select to_regclass($1)", f"{schema}.xbus_inbox")
        return int(await connection.fetchval(query.replace("{schema}", schema))) if exists else 0
    finally:
        await connection.close()


async def wait_for(settings: Settings, schema: str, query: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (value := await scalar(settings, schema, query)) != expected:
        assert time.monotonic() < deadline, f"{query} = {value}, expected {expected}"
        await asyncio.sleep(0.5)

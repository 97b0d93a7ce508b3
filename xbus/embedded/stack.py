"""`xbus stack up | down | status`: the embedded broker and PostgreSQL, and their state file.

``<data dir>/stack.json`` records pids, ports and URLs so that every later `xbus` command (and
every test process) finds the same stack. A file lock makes `up` safe to run concurrently.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from xbus.embedded.broker import broker_running, start_broker
from xbus.embedded.postgres import postgres_running, start_postgres, stop_postgres
from xbus.embedded.processes import free_port, port_free, stop_process
from xbus.errors import StackError

log = structlog.get_logger("xbus.stack")

STATE_FILE = "stack.json"


@dataclass
class StackState:
    """What runs, as recorded in stack.json; a missing part is ``None``."""

    kafka_pid: int | None = None
    kafka_port: int | None = None
    kafka_started_at: str | None = None
    postgres_pid: int | None = None
    database_url: str | None = None

    @property
    def kafka_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.kafka_port}" if self.kafka_port else None


@dataclass
class UpResult:
    state: StackState
    #: True when a broker was started in this call: topics must be applied before clients start.
    broker_is_new: bool = False
    #: True when stack.json named a broker that is gone: its topics and offsets are lost.
    broker_was_lost: bool = False
    started: list[str] = field(default_factory=list)


class EmbeddedStack:
    def __init__(self, data_dir: Path, kafka_port: int = 0) -> None:
        self.data_dir = data_dir.resolve()
        self.kafka_port = kafka_port

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def read_state(self) -> StackState:
        try:
            raw: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return StackState()
        except (OSError, ValueError) as error:
            raise StackError(
                f"{self.state_path} is unreadable ({error}); run `xbus stack down` and try again"
            ) from None
        known = StackState.__dataclass_fields__
        return StackState(**{k: v for k, v in raw.items() if k in known})

    def _write_state(self, state: StackState) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=2) + "\n")
        temporary.replace(self.state_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "stack.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def up(self, *, kafka: bool = True, postgres: bool = True) -> UpResult:
        """Start what is not running; leave alone what is. Idempotent."""
        with self._locked():
            state = self.read_state()
            result = UpResult(state=state)
            if kafka and not broker_running(state.kafka_pid, state.kafka_port):
                result.broker_was_lost = state.kafka_pid is not None
                if state.kafka_pid is not None:
                    stop_process(state.kafka_pid)
                broker = start_broker(self.data_dir, self._choose_port(state.kafka_port))
                state.kafka_pid, state.kafka_port = broker.pid, broker.port
                state.kafka_started_at = dt.datetime.now(dt.UTC).isoformat()
                result.broker_is_new = True
                result.started.append("kafka")
                log.info("embedded broker started", bootstrap=state.kafka_bootstrap, pid=broker.pid)
            if postgres and not postgres_running(state.postgres_pid):
                pg = start_postgres(self.data_dir)
                state.postgres_pid, state.database_url = pg.pid, pg.url
                result.started.append("postgres")
                log.info("embedded postgres started", pgdata=str(pg.pgdata), pid=pg.pid)
            self._write_state(state)
            return result

    def _choose_port(self, previous: int | None) -> int:
        """The configured port; else the previous one (clients reconnect to it); else a free one."""
        if self.kafka_port:
            if not port_free(self.kafka_port):
                raise StackError(f"port {self.kafka_port} (XBUS_EMBEDDED_KAFKA_PORT) is in use; pick another or 0")
            return self.kafka_port
        if previous and _freed(previous, within=3.0):
            return previous
        return free_port()

    def down(self) -> list[str]:
        """Stop both processes. PostgreSQL data stays on disk; broker topics are gone."""
        stopped = []
        with self._locked():
            state = self.read_state()
            if state.kafka_pid and stop_process(state.kafka_pid):
                stopped.append("kafka")
            if state.postgres_pid and stop_postgres(state.postgres_pid):
                stopped.append("postgres")
            self.state_path.unlink(missing_ok=True)
        return stopped


def _freed(port: int, within: float) -> bool:
    """Whether ``port`` is free, or becomes free shortly: a broker killed a moment ago may still be
    exiting, its listening socket not yet closed, and its clients reconnect only to that port."""
    deadline = time.monotonic() + within
    while not port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

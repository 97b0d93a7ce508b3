"""`xbus stack up | down | status`: the embedded broker and PostgreSQL, and their state file.

The broker is Apache Kafka or Tansu (infrastructure/embedded/broker.py). A broker found gone is started
again on its port: Apache Kafka with everything it held, Tansu empty.

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

from infrastructure.brokers import TRAITS, BrokerKind
from infrastructure.embedded.broker import broker_running, broker_version, choose_broker, start_broker, stop_broker
from infrastructure.embedded.postgres import postgres_running, start_postgres, stop_postgres
from infrastructure.embedded.processes import free_port, port_free, stop_process
from infrastructure.errors import StackError
from infrastructure.settings import EmbeddedBrokerChoice

log = structlog.get_logger("xbus.stack")

STATE_FILE = "stack.json"


@dataclass
class StackState:
    """What runs, as recorded in stack.json; a missing part is ``None``."""

    kafka_pid: int | None = None
    kafka_port: int | None = None
    kafka_started_at: str | None = None
    #: ``kafka`` (Apache Kafka) or ``tansu``, and its version
    kafka_kind: str | None = None
    kafka_version: str | None = None
    #: Apache Kafka's KRaft controller listener
    kafka_controller_port: int | None = None
    postgres_pid: int | None = None
    database_url: str | None = None

    @property
    def kafka_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.kafka_port}" if self.kafka_port else None

    @property
    def broker_kind(self) -> BrokerKind | None:
        return BrokerKind(self.kafka_kind) if self.kafka_kind else None


@dataclass
class UpResult:
    state: StackState
    #: True when a broker was started in this call: topics must be applied before clients start.
    broker_is_new: bool = False
    #: True when stack.json named a broker that is gone (it was started again).
    broker_was_lost: bool = False
    #: True when what that broker held is gone with it: Tansu keeps everything in memory.
    broker_data_lost: bool = False
    started: list[str] = field(default_factory=list)


class EmbeddedStack:
    def __init__(
        self, data_dir: Path, kafka_port: int = 0, broker: EmbeddedBrokerChoice = EmbeddedBrokerChoice.AUTO
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.kafka_port = kafka_port
        self.broker = broker

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
            if kafka and state.kafka_pid and self._switching(state):
                log.warning(
                    "switching the embedded broker",
                    running=state.kafka_kind,
                    wanted=self.broker.value,
                    lost="nothing: each broker keeps its own data"
                    if state.broker_kind is BrokerKind.APACHE_KAFKA
                    else "Tansu's topics, groups and offsets",
                )
                stop_broker(state.broker_kind, state.kafka_pid)
                state.kafka_pid = None
            if kafka and not broker_running(state.kafka_pid, state.kafka_port):
                kind = choose_broker(self.broker)
                result.broker_was_lost = state.kafka_pid is not None
                result.broker_data_lost = result.broker_was_lost and not (
                    TRAITS[kind].durable and state.broker_kind is kind
                )
                if state.kafka_pid is not None:
                    stop_process(state.kafka_pid)
                broker = start_broker(
                    kind,
                    self.data_dir,
                    self._choose_port(state.kafka_port),
                    _reuse_or_free(state.kafka_controller_port),
                )
                state.kafka_pid, state.kafka_port = broker.pid, broker.port
                state.kafka_controller_port = broker.controller_port
                state.kafka_kind, state.kafka_version = kind.value, broker_version(kind)
                state.kafka_started_at = dt.datetime.now(dt.UTC).isoformat()
                result.broker_is_new = True
                result.started.append("kafka")
                log.info(
                    "embedded broker started",
                    broker=f"{kind.product} {state.kafka_version}",
                    bootstrap=state.kafka_bootstrap,
                    pid=broker.pid,
                )
            if postgres and not postgres_running(state.postgres_pid):
                pg = start_postgres(self.data_dir)
                state.postgres_pid, state.database_url = pg.pid, pg.url
                result.started.append("postgres")
                log.info("embedded postgres started", pgdata=str(pg.pgdata), pid=pg.pid)
            self._write_state(state)
            return result

    def _switching(self, state: StackState) -> bool:
        """An explicit XBUS_EMBEDDED_BROKER that is not the broker running: it is stopped for the one asked for."""
        return self.broker is not EmbeddedBrokerChoice.AUTO and state.kafka_kind != self.broker.value

    def _choose_port(self, previous: int | None) -> int:
        """The configured port; else the previous one (clients reconnect to it); else a free one."""
        if self.kafka_port:
            if not port_free(self.kafka_port):
                raise StackError(f"port {self.kafka_port} (XBUS_EMBEDDED_KAFKA_PORT) is in use; pick another or 0")
            return self.kafka_port
        return _reuse_or_free(previous)

    def down(self) -> list[str]:
        """Stop both processes. PostgreSQL data stays on disk, and so does Apache Kafka's log; Tansu's
        topics are gone. The broker's ports stay in stack.json: the next `up` listens on them again,
        so that clients given the old bootstrap reconnect."""
        stopped = []
        with self._locked():
            state = self.read_state()
            if state.kafka_pid and stop_broker(state.broker_kind, state.kafka_pid):
                stopped.append("kafka")
            if state.postgres_pid and stop_postgres(state.postgres_pid):
                stopped.append("postgres")
            self._write_state(
                StackState(kafka_port=state.kafka_port, kafka_controller_port=state.kafka_controller_port)
            )
        return stopped


def _reuse_or_free(previous: int | None) -> int:
    """The previous port when it is free (clients reconnect only to it), else any free one."""
    if previous and _freed(previous, within=3.0):
        return previous
    return free_port()


def _freed(port: int, within: float) -> bool:
    """Whether ``port`` is free, or becomes free shortly: a broker killed a moment ago may still be
    exiting, its listening socket not yet closed, and its clients reconnect only to that port."""
    deadline = time.monotonic() + within
    while not port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

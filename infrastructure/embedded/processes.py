"""Small process helpers shared by the embedded brokers and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infrastructure.errors import StackError

HOST = "127.0.0.1"


@dataclass(frozen=True)
class BrokerProcess:
    """An embedded broker just started: its process, where it listens, where it logs."""

    pid: int
    port: int
    log: Path
    #: Apache Kafka's controller listener (KRaft); Tansu has none.
    controller_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def start_detached(command: list[str], log: Path, name: str, port: int, timeout: float) -> subprocess.Popen[bytes]:
    """Start a server detached from this process (it outlives the command that started it), its
    output appended to ``log``, and wait until it listens on ``port``; its log's end on failure."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{name} exited with code {process.returncode} on port {port}:\n{tail(log)}")
        if port_open(HOST, port):
            return process
        time.sleep(0.05)
    process.kill()
    raise StackError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s:\n{tail(log)}")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    """A killed child of a still-running parent lingers as a zombie; it is not alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. Servers (the broker included) set SO_REUSEADDR,
    so connections of a killed broker left in TIME_WAIT do not count as the port being taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def stop_process(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Send ``sig`` and wait; escalate to SIGKILL after ``timeout``. True if the process is gone."""
    if not pid_alive(pid):
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    time.sleep(0.2)
    _reap(pid)
    return not pid_alive(pid)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

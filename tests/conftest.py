"""Fixtures: one embedded stack for the whole session; per test, a unique topic prefix and schema.

With XBUS_KAFKA_BOOTSTRAP and XBUS_DATABASE_URL set, the same tests run against that Kafka and
PostgreSQL instead (nothing embedded starts).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from infrastructure.brokers import BrokerKind
from infrastructure.deployment import forget
from infrastructure.embedded.stack import EmbeddedStack
from infrastructure.endpoints import Endpoints, apply_catalogue, connect
from infrastructure.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stack:
    endpoints: Endpoints
    data_dir: Path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("xbus")
    base = load_settings(data_dir=data_dir)
    endpoints = asyncio.run(connect(base.model_copy(update={"topic_prefix": "session."})))
    yield Stack(endpoints, data_dir)
    if base.embedded_kafka or base.embedded_database:
        EmbeddedStack(data_dir).down()


@pytest.fixture(autouse=True)
def _on_its_broker(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.broker(kind, reason=...)``: a test of one broker's behaviour is skipped on the
    other, with the reason in pytest's summary; only such tests start the stack to learn its kind."""
    marker = request.node.get_closest_marker("broker")
    if marker is None:
        return
    wanted = BrokerKind(marker.args[0])
    running = request.getfixturevalue("stack").endpoints.broker
    if running is not wanted:
        pytest.skip(f"on {wanted.product} only ({running.product} runs here): {marker.kwargs['reason']}")


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(stack: Stack, prefix: str) -> Settings:
    """Settings of one test: the session's stack, and topics of its own."""
    return load_settings(
        data_dir=stack.data_dir,
        kafka_bootstrap=stack.endpoints.kafka_bootstrap,
        database_url=stack.endpoints.database_url,
        topic_prefix=prefix,
        source="tests",
    )


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    """The catalogue's topics created under this test's prefix."""
    await apply_catalogue(settings, settings.kafka_bootstrap or "")
    return settings


@pytest.fixture
async def service_settings(topics: Settings) -> Settings:
    """Topics of this test's own, and services' schemas of its own (a unique schema prefix)."""
    return topics.model_copy(update={"db_schema_prefix": f"t{uuid.uuid4().hex[:8]}_"})


@pytest.fixture
async def database(stack: Stack) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection whose search_path is a schema of this test's own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(stack.endpoints.database_url)
    await connection.execute(f"create schema {schema}")
    await connection.execute(f"set search_path to {schema}")
    try:
        yield connection, schema
    finally:
        await connection.execute(f"drop schema {schema} cascade")
        await connection.close()


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def xbus(stack: Stack, prefix: str) -> XbusCli:
    return XbusCli(stack, prefix)


class XbusCli:
    """Runs the real `xbus` command in a subprocess against the session's stack."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("XBUS_")},
            "XBUS_DATA_DIR": str(stack.data_dir),
            "XBUS_TOPIC_PREFIX": prefix,
            "XBUS_LOG_FORMAT": "json",
            "XBUS_METRICS_PORT": "0",
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        done = subprocess.run(
            [sys.executable, "-m", "xbus", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def without_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test's deployment runs no registry (``XBUS_REGISTRY=false``): the OMS is the book of record."""
    monkeypatch.setenv("XBUS_REGISTRY", "false")
    forget()
    yield
    forget()  # the environment is restored next; the setting is read from it again

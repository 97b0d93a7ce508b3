"""POST /v1/events/batch against Publisher.publish_many, same broker, same events, same run.

Prints events/s of each and their ratio. The HTTP side is `xbus serve` in a process of its own
(as in production: uvicorn, token check, rate limit, JSON parsing and model validation of every
event, the 207 body), fed by ``--clients`` concurrent httpx clients posting batches of
``--batch`` events, their bodies serialised before the clock starts. The direct side is a
Publisher in this process calling ``publish_many`` on the same batches with the same concurrency,
starting from the pydantic models. Both publish with acks=all to the same topic; rounds alternate
and the median is reported. The server's rate limit is raised out of the way.

Usage: python bench/http_api.py [--events N] [--batch B] [--clients C] [--rounds R]   (embedded stack by default)
"""

# ruff: noqa: E402 (the imports follow the sys.path fix below, which must run first)
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# This file is named like the standard library's `http` package, which httpx imports: take bench/
# off the path before anything imports it (sample_events is loaded from its file below).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH]

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib.util import module_from_spec, spec_from_file_location
from types import ModuleType

import asyncpg
import httpx

from infrastructure.endpoints import Endpoints, apply_catalogue, connect
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, child_environment, load_settings
from producers import Published, Publisher, open_publisher
from schemas.users import UserCreated
from xbus.api.tokens import TokenStore

ROOT = BENCH.parent


def bench_module(name: str) -> ModuleType:
    """A module of bench/ loaded from its file (bench/ is off the path, see above), registered
    under its name so that the bench modules it imports are found the same way."""
    spec = spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


broker_option = bench_module("broker_option")


def sample_events(count: int) -> list[UserCreated]:
    """The events bench/publish.py publishes."""
    events: list[UserCreated] = bench_module("publish").sample_events(count)
    return events


async def concurrently(batches: Sequence[object], clients: int, send: Callable[[object], Awaitable[int]]) -> float:
    """Events/s of sending every batch, ``clients`` at a time; ``send`` returns the events it published."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    published = 0

    async def client() -> None:
        nonlocal published
        while not queue.empty():
            published += await send(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return published / elapsed


async def http_round(client: httpx.AsyncClient, bodies: list[bytes], clients: int) -> float:
    async def send(body: object) -> int:
        response = await client.post("/v1/events/batch", content=body)  # type: ignore[arg-type]
        result = response.json()
        if response.status_code != 207 or result["failed"]:
            raise SystemExit(f"the API did not publish a batch: {response.status_code} {response.text[:300]}")
        return int(result["published"])

    return await concurrently(bodies, clients, send)


async def direct_round(publisher: Publisher, batches: list[list[UserCreated]], clients: int) -> float:
    async def send(batch: object) -> int:
        results = await publisher.publish_many(batch)  # type: ignore[arg-type]
        if not all(isinstance(result, Published) for result in results):
            raise SystemExit(f"the publisher did not publish a batch: {results[0]}")
        return len(results)

    return await concurrently(batches, clients, send)


async def new_token(settings: Settings, endpoints: Endpoints) -> str:
    pool = await asyncpg.create_pool(endpoints.database_url, min_size=1, max_size=1)
    try:
        _, text = await TokenStore(pool, settings.db_schema("api")).create("bench", ["publish:*"], None)
    finally:
        await pool.close()
    return text


async def started_server(settings: Settings, endpoints: Endpoints) -> tuple[subprocess.Popen[str], str]:
    env = {
        **child_environment(settings, endpoints.kafka_bootstrap, endpoints.database_url),
        "XBUS_API_RATE_PER_SECOND": "1000000",
        "XBUS_API_RATE_BURST": "1000000",
        "XBUS_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "xbus", "serve", "--port", "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 120)
    if not line.startswith("serving on "):
        process.kill()
        raise SystemExit(f"xbus serve did not start: {line!r}")
    return process, line.split()[2]


def chunks(items: list[UserCreated], size: int) -> list[list[UserCreated]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def main(count: int, batch: int, clients: int, rounds: int) -> None:
    settings = load_settings(
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.", db_schema_prefix=f"b{uuid.uuid4().hex[:8]}_"
    )
    configure_logging(settings.log_format, settings.log_level)
    endpoints = await connect(settings)
    await apply_catalogue(settings, endpoints.kafka_bootstrap)
    batches = chunks(sample_events(count), batch)
    bodies = [
        json.dumps({"events": [{"type": e.event_type, "data": e.model_dump(mode="json")} for e in chunk]}).encode()
        for chunk in batches
    ]
    headers = {"Authorization": f"Bearer {await new_token(settings, endpoints)}", "Content-Type": "application/json"}
    server, url = await started_server(settings, endpoints)
    http_rates: list[float] = []
    direct_rates: list[float] = []
    try:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client,
            open_publisher(settings) as publisher,
        ):
            await http_round(client, bodies[:10], clients)  # warm-up: connections, metadata, token cache
            await direct_round(publisher, batches[:10], clients)
            for index in range(rounds):
                http_rates.append(await http_round(client, bodies, clients))
                direct_rates.append(await direct_round(publisher, batches, clients))
                print(
                    f"round {index + 1}/{rounds}: publish_many {direct_rates[-1]:,.0f}/s  "
                    f"HTTP batch {http_rates[-1]:,.0f}/s",
                    flush=True,
                )
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
    direct, http = statistics.median(direct_rates), statistics.median(http_rates)
    ratios = [h / d for h, d in zip(http_rates, direct_rates, strict=True)]
    print(
        json.dumps(
            {
                "broker": broker_option.broker_name(endpoints),
                "events": count,
                "batch": batch,
                "clients": clients,
                "rounds": rounds,
                "publish_many_per_s": round(direct),
                "http_batch_per_s": round(http),
                "ratio": round(http / direct, 3),
                "round_ratios": [round(ratio, 2) for ratio in ratios],
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    broker_option.add_broker_option(parser)
    args = parser.parse_args()
    broker_option.choose_broker(args)
    asyncio.run(main(args.events, args.batch, args.clients, args.rounds))

"""The read routes, health, OpenAPI and `xbus serve` through a real HTTP client, broker and database.

Each route that needs a scope is asked once with a token that lacks it (the full token and scope
matrix is tested with the tokens themselves).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from consumers.provisioning.service import SERVICE as TRACKER
from schemas import event_types
from tests.conftest import ROOT, Stack
from tests.support.api_under_test import ApiUnderTest, api_under_test
from tests.support.service_process import process_env
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

USER_TYPE = "xosp.user.created.v1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(stack: Stack) -> AsyncIterator[ApiUnderTest]:
    async with api_under_test(await module_settings(stack)) as served:
        yield served


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_health_needs_no_token_and_ready_means_broker_and_database_answer(api: ApiUnderTest) -> None:
    health, ready = await api.client.get("/healthz"), await api.client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "broker": "ok", "database": "ok"})


async def test_without_its_database_the_api_is_not_ready_says_why_and_answers_503_not_500(api: ApiUnderTest) -> None:
    nowhere = api.settings.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    async with api_under_test(nowhere) as orphan:
        health, ready = await orphan.client.get("/healthz"), await orphan.client.get("/readyz")
        token = {"Authorization": f"Bearer xbt_{'0' * 16}_{'a' * 43}"}
        publish = await orphan.client.post("/v1/events", json={"type": USER_TYPE, "data": {}}, headers=token)

    assert health.status_code == 200
    assert ready.status_code == 503 and ready.headers["content-type"] == "application/problem+json"
    # the database is named; the broker may be too when a loaded machine makes its 2 s check miss
    assert "database: " in ready.json()["detail"]
    assert publish.status_code == 503 and "PostgreSQL" in publish.json()["detail"]


async def test_event_types_lists_every_type_with_its_schema_for_any_valid_token(api: ApiUnderTest) -> None:
    response = await api.client.get("/v1/event-types", headers=await api.token("read:lag"))
    anonymous = await api.client.get("/v1/event-types")

    assert response.status_code == 200
    types = {entry["type"]: entry for entry in response.json()}
    assert sorted(types) == event_types.types()
    assert all(entry["schema"]["$id"] == f"urn:xosp:event:{name}" for name, entry in types.items())
    user = types[USER_TYPE]
    assert (user["topics"], user["key"], user["publishable"]) == (["xosp.users"], "login_id", True)
    assert "email" in user["schema"]["properties"]
    assert types["xosp.step.waiting.v1"]["publishable"] is False
    assert types["xosp.marketdata.quote.v1"]["topics"] == ["xosp.marketdata.{exchange}"]
    assert anonymous.status_code == 401


async def test_provisioning_status_shows_the_flow_an_event_posted_over_http_started(api: ApiUnderTest) -> None:
    login = f"u-{uuid.uuid4().hex[:10]}"
    reader = await api.token("read:status")
    url = f"/v1/provisioning/user/{login}"
    data = {"login_id": login, "username": login, "email": f"{login}@example.com", "display_name": login}
    async with ServiceUnderTest(TRACKER, api.settings):
        posted = await api.client.post(
            "/v1/events", json={"type": USER_TYPE, "data": data}, headers=await api.token("publish:*")
        )
        assert posted.status_code == 202, posted.text

        async def tracked() -> bool:
            return (await api.client.get(url, headers=reader)).status_code == 200

        await eventually(tracked)
    response = await api.client.get(url, headers=reader)

    body = response.json()
    assert (body["kind"], body["id"]) == ("user", login)
    [flow] = body["flows"]
    assert (flow["flow_id"], flow["started_by"], flow["state"]) == (posted.json()["id"], USER_TYPE, "open")
    assert flow["overdue_at"] is None and "stalled_at" not in flow
    assert flow["steps"] and all({"step", "service", "state"} <= set(step) for step in flow["steps"])


async def test_provisioning_status_is_404_for_an_unknown_entity_422_for_an_unknown_kind_403_without_read_status(
    api: ApiUnderTest,
) -> None:
    reader = await api.token("read:status")
    unknown = await api.client.get("/v1/provisioning/user/nobody-at-all", headers=reader)
    bad_kind = await api.client.get("/v1/provisioning/planet/earth", headers=reader)
    forbidden = await api.client.get("/v1/provisioning/user/x", headers=await api.token("read:lag"))

    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert bad_kind.status_code == 422 and [e["pointer"] for e in bad_kind.json()["errors"]] == ["/kind"]
    assert forbidden.status_code == 403 and "read:status" in forbidden.json()["detail"]


async def test_lag_routes_serve_the_monitor_report_to_read_lag_only(api: ApiUnderTest) -> None:
    lag_reader, other = await api.token("read:lag"), await api.token("read:status")

    async def sampled() -> bool:
        return (await api.client.get("/v1/lag", headers=lag_reader)).status_code == 200

    await eventually(sampled)
    report = (await api.client.get("/v1/lag", headers=lag_reader)).json()
    history = await api.client.get("/v1/lag/history", headers=lag_reader)

    assert {"taken_at", "groups", "business", "interval_seconds"} <= set(report)
    assert history.status_code == 200 and "groups" in history.json()
    for path in ("/v1/lag", "/v1/lag/history"):
        refused = await api.client.get(path, headers=other)
        assert refused.status_code == 403 and "read:lag" in refused.json()["detail"], path


async def test_metrics_export_the_process_and_lag_metrics_to_read_lag_only(api: ApiUnderTest) -> None:
    response = await api.client.get("/metrics", headers=await api.token("read:lag"))
    refused = await api.client.get("/metrics", headers=await api.token("read:status"))

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"xbus_api_requests", "xbus_lag_sample_failures", "xbus_api_request_duration_seconds"} <= names
    assert refused.status_code == 403


async def test_the_openapi_document_declares_every_route_the_token_scheme_and_both_event_bodies(
    api: ApiUnderTest,
) -> None:
    document = (await api.client.get("/openapi.json")).json()
    docs = await api.client.get("/docs")

    paths = document["paths"]
    assert {"/v1/events", "/v1/events/batch", "/v1/event-types", "/v1/lag", "/metrics", "/readyz"} <= set(paths)
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert paths["/v1/events"]["post"]["security"] == [{"token": []}]
    assert "security" not in paths["/healthz"]["get"]
    assert "security" in paths["/v1/lag"]["get"]
    body = paths["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/cloudevents+json"}
    variants = document["components"]["schemas"]["EventDocument"]["oneOf"]
    assert USER_TYPE in {variant["properties"]["type"]["const"] for variant in variants}
    assert {"422", "413", "415"} <= set(paths["/v1/events"]["post"]["responses"])
    assert docs.status_code == 200


async def test_unknown_routes_and_methods_are_problem_documents(api: ApiUnderTest) -> None:
    missing, wrong_method = await api.client.get("/v2/nothing"), await api.client.delete("/v1/events")

    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, "application/problem+json")
    assert wrong_method.headers["allow"] == "POST"


async def test_xbus_serve_prints_its_url_stops_on_sigterm_and_never_logs_a_token(api: ApiUnderTest) -> None:
    settings = api.settings
    env = process_env(settings)
    headers = await api.token("read:lag")
    secret = headers["Authorization"].split()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "xbus", "serve", "--port", "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert line.startswith("serving on http://127.0.0.1:"), line
        url = line.split()[2]
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            ready = await client.get("/readyz")
            lag = await client.get("/v1/event-types?access_token=" + secret, headers=headers)
            refused = await client.get("/v1/event-types", headers={"Authorization": "Bearer " + secret[:-1] + "x"})
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)

    assert (ready.status_code, lag.status_code, refused.status_code) == (200, 200, 401)
    assert process.returncode == 0, stderr[-2000:]
    assert '"path": "/v1/event-types"' in stderr
    assert secret not in stderr and secret[:-1] not in stderr

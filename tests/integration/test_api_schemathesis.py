"""Schemathesis against the running API: no server error, and every response as the OpenAPI document says.

Every operation of the served document is called with requests generated from it (valid ones, and
invalid ones: schemathesis's negative mode), over HTTP against the app, the broker and PostgreSQL.
Each response must be no 5xx, with a documented status and media type, a body that validates
against that status's schema, and the headers that status declares. The examples are bounded and
derandomised, so the run is short and the same on every machine.

Generated ids never name a known entity, so one request is added by hand: the provisioning status
of a user the tracker has seen, so that the 200 of that route is checked too. The tracker's group
also gives the lag routes a group with partitions to report.

Schemathesis and Hypothesis are synchronous: they run in a worker thread while the module's event
loop serves the app.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from consumers.provisioning.service import SERVICE as TRACKER
from tests.conftest import Stack
from tests.support.api_under_test import ApiUnderTest, api_under_test
from tests.support.service_under_test import ServiceUnderTest, module_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    # schemathesis's negative mode draws from `random` inside its strategies (its business, not ours)
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Per operation and generation mode: the module runs in well under a minute on a slow machine. Raise it
#: (XBUS_SCHEMATHESIS_EXAMPLES=1000) for a longer hunt; the examples stay the same for the same number.
EXAMPLES = int(os.environ.get("XBUS_SCHEMATHESIS_EXAMPLES", "50"))
#: Small batches keep the generated batch bodies (and their publishing) cheap.
MAX_BATCH = 5
PROVISIONING = ("/v1/provisioning/{kind}/{entity_id}", "GET")

#: Requests added to the generated ones: (path, method) -> the arguments of ``operation.Case``.
Known = dict[tuple[str, str], dict[str, Any]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(stack: Stack) -> AsyncIterator[ApiUnderTest]:
    # The rate limit is tested elsewhere; here it must not turn the run into 429s.
    settings = (await module_settings(stack)).model_copy(
        update={"api_rate_per_second": 100_000.0, "api_rate_burst": 100_000, "api_max_batch": MAX_BATCH}
    )
    async with api_under_test(settings) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tracked_user(api: ApiUnderTest) -> str:
    """A login the provisioning tracker has a flow of, once a lag sample reports the tracker's group."""
    login = f"u-{uuid.uuid4().hex[:10]}"
    data = {"login_id": login, "username": login, "email": f"{login}@example.com", "display_name": login}
    admin = await api.token("admin")
    async with ServiceUnderTest(TRACKER, api.settings):
        posted = await api.client.post("/v1/events", json={"type": "xosp.user.created.v1", "data": data}, headers=admin)
        assert posted.status_code == 202, posted.text

        async def tracked() -> bool:
            return (await api.client.get(f"/v1/provisioning/user/{login}", headers=admin)).status_code == 200

        await eventually(tracked)

    async def group_reported() -> bool:
        latest = api.resources.sampler.latest
        return latest is not None and any(group.partitions for group in latest.groups)

    await eventually(group_reported)
    return login


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


def fuzz(url: str, headers: dict[str, str], modes: list[GenerationMode], examples: int, known: Known) -> list[str]:
    """Every operation of the served document, in each mode: the failures found, one entry per
    operation and mode (so that one run reports them all)."""
    schema = schemathesis.openapi.from_url(f"{url}openapi.json")
    failures = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"an operation of the document cannot be tested: {result.err()}")
            continue
        operation = result.ok()
        for mode in modes:

            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=url.rstrip("/"), headers=headers, checks=CHECKS)

            request = known.get((operation.path, operation.method.upper()))
            if request is not None and mode is GenerationMode.POSITIVE:
                call = example(case=operation.Case(**request))(call)
            try:
                call()
            except Unsatisfiable:
                # No invalid request exists for it (no parameter, no body, no token): nothing to check.
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"
            except (Failure, FailureGroup) as failure:  # reported with the others once every operation ran
                failures.append(f"{operation.label} [{mode.value}]: {failure}")
    return failures


async def test_every_operation_answers_as_documented_for_an_admin(api: ApiUnderTest, tracked_user: str) -> None:
    admin = await api.token("admin")
    known = {PROVISIONING: {"path_parameters": {"kind": "user", "entity_id": tracked_user}}}

    failures = await asyncio.to_thread(fuzz, api.url, admin, list(GenerationMode), EXAMPLES, known)

    assert not failures, "\n\n".join(failures)


async def test_refusals_without_a_valid_token_or_its_scope_answer_as_documented(api: ApiUnderTest) -> None:
    unknown = {"Authorization": "Bearer xbt_0000000000000000_" + "a" * 43}
    scopeless = await api.token("publish:xosp.nothing.*")

    failures = [
        failure
        for headers in (unknown, scopeless)
        for failure in await asyncio.to_thread(fuzz, api.url, headers, [GenerationMode.POSITIVE], EXAMPLES // 5, {})
    ]

    assert not failures, "\n\n".join(failures)

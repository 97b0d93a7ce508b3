"""POST /v1/events and /v1/events/batch through a real HTTP client, broker and database.

Each published event is read back from its topic (headers and data); refusals must name the field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from schemas import event_types
from schemas.gateway import ExecutionKind, ExecutionReported
from schemas.types import OrderSide
from tests.conftest import Stack
from tests.support.api_under_test import ApiUnderTest, api_under_test
from tests.support.service_under_test import module_settings
from xbus.api.idempotency import IdempotencyStore, event_key, fingerprint

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

MAX_BODY = 16_384
MAX_BATCH = 5
USER_TYPE = "xosp.user.created.v1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(stack: Stack) -> AsyncIterator[ApiUnderTest]:
    settings = (await module_settings(stack)).model_copy(
        update={"api_max_body_bytes": MAX_BODY, "api_max_batch": MAX_BATCH}
    )
    async with api_under_test(settings) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def publisher(api: ApiUnderTest) -> dict[str, str]:
    """A token that may publish user events only."""
    return await api.token("publish:xosp.user.*")


def user(login_id: str | None = None, **changes: Any) -> dict[str, Any]:
    login_id = login_id or f"u-{uuid.uuid4().hex[:10]}"
    return {
        "login_id": login_id,
        "username": login_id,
        "email": f"{login_id}@example.com",
        "display_name": "U",
        **changes,
    }


def pointers(problem: dict[str, Any]) -> list[str]:
    return [error["pointer"] for error in problem.get("errors", [])]


async def test_an_event_is_published_and_read_back_with_its_envelope(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    data = user()
    response = await api.client.post("/v1/events", json={"type": USER_TYPE, "data": data}, headers=publisher)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["type"] == USER_TYPE and body["topic"] == api.settings.topic("xosp.users")
    assert body["correlationid"] == body["id"]
    record = await api.record(body)
    assert record.data == {**data, "roles": [], "markets": [], "session_policy": None, "credential_ref": None}
    assert record.key == data["login_id"]
    assert record.envelope is not None
    assert (record.envelope.id, record.envelope.type, record.envelope.subject) == (body["id"], USER_TYPE, record.key)
    assert record.envelope.source == api.settings.source


async def test_a_structured_cloudevent_keeps_its_id_time_and_flow(api: ApiUnderTest, publisher: dict[str, str]) -> None:
    data = user()
    event_id = str(uuid.uuid4())
    cloudevent = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:upstream:hr",
        "type": USER_TYPE,
        "subject": data["login_id"],
        "time": "2026-03-04T05:06:07Z",
        "datacontenttype": "application/json",
        "correlationid": "flow-http-1",
        "data": data,
    }
    headers = {**publisher, "Content-Type": "application/cloudevents+json"}
    response = await api.client.post("/v1/events", content=json.dumps(cloudevent), headers=headers)

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["id"], body["correlationid"]) == (event_id, "flow-http-1")
    record = await api.record(body)
    assert record.envelope is not None
    assert (record.envelope.id, record.envelope.correlation_id) == (event_id, "flow-http-1")
    assert record.headers["ce_time"].startswith("2026-03-04T05:06:07")


async def test_a_cloudevent_must_carry_its_required_attributes_and_the_aggregate_as_subject(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    headers = {**publisher, "Content-Type": "application/cloudevents+json"}
    missing = await api.client.post(
        "/v1/events", content=json.dumps({"type": USER_TYPE, "data": user()}), headers=headers
    )
    wrong_subject = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "s",
        "type": USER_TYPE,
        "subject": "else",
        "data": user(),
    }
    subject = await api.client.post("/v1/events", content=json.dumps(wrong_subject), headers=headers)

    assert missing.status_code == 422
    assert sorted(pointers(missing.json())) == ["/id", "/source", "/specversion"]
    assert subject.status_code == 422 and pointers(subject.json()) == ["/subject"]


async def test_invalid_data_is_refused_naming_each_field(api: ApiUnderTest, publisher: dict[str, str]) -> None:
    data = user(email="not-an-email", extra_field=1)
    response = await api.client.post("/v1/events", json={"type": USER_TYPE, "data": data}, headers=publisher)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert sorted(pointers(response.json())) == ["/data/email", "/data/extra_field"]


async def test_a_body_that_is_not_json_is_400_and_an_unknown_type_422(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    broken = await api.client.post(
        "/v1/events", content=b'{"type": ', headers={**publisher, "Content-Type": "application/json"}
    )
    unknown = await api.client.post("/v1/events", json={"type": "xosp.user.created.v9", "data": {}}, headers=publisher)

    assert broken.status_code == 400 and pointers(broken.json()) == [""]
    assert unknown.status_code == 422 and pointers(unknown.json()) == ["/type"]


async def test_other_content_types_are_415(api: ApiUnderTest, publisher: dict[str, str]) -> None:
    body = json.dumps({"type": USER_TYPE, "data": user()})
    response = await api.client.post("/v1/events", content=body, headers={**publisher, "Content-Type": "text/plain"})

    assert response.status_code == 415
    assert pointers(response.json()) == ["Content-Type"]


async def test_a_type_the_token_may_not_publish_is_403_naming_the_scope(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    deposit = {"account_id": "XS:0001", "amount": {"amount": "1.00", "currency": "AUD"}, "reference": "r"}
    response = await api.client.post(
        "/v1/events", json={"type": "xosp.account.funds_deposited.v1", "data": deposit}, headers=publisher
    )
    anonymous = await api.client.post("/v1/events", json={"type": USER_TYPE, "data": user()})

    assert response.status_code == 403
    assert "publish:xosp.account.funds_deposited.v1" in response.json()["detail"]
    assert anonymous.status_code == 401


async def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_streamed(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    oversize = json.dumps({"type": USER_TYPE, "data": user(display_name="x" * MAX_BODY)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(oversize), 4096):
            yield oversize[start : start + 4096]

    declared = await api.client.post(
        "/v1/events", content=oversize, headers={**publisher, "Content-Type": "application/json"}
    )
    streamed = await api.client.post(
        "/v1/events", content=chunks(), headers={**publisher, "Content-Type": "application/json"}
    )

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert str(MAX_BODY) in response.json()["detail"]


async def test_a_batch_publishes_its_valid_events_and_names_each_invalid_one(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    first, last = user(), user()
    events = [
        {"type": USER_TYPE, "data": first},
        {"type": USER_TYPE, "data": user(email="nope")},
        {"type": "xosp.nothing.v1", "data": {}},
        {"type": "xosp.account.closed.v1", "data": {"account_id": "XS:1", "reason": "r"}},
        {"type": USER_TYPE, "data": last},
    ]
    response = await api.client.post("/v1/events/batch", json={"events": events}, headers=publisher)

    assert response.status_code == 207, response.text
    body = response.json()
    results = body["results"]
    assert [result["status"] for result in results] == [202, 422, 422, 403, 202]
    assert (body["published"], body["failed"]) == (2, 3)
    assert pointers(results[1]) == ["/events/1/data/email"]
    assert pointers(results[2]) == ["/events/2/type"]
    assert pointers(results[3]) == ["/events/3/type"] and "publish:xosp.account.closed.v1" in results[3]["detail"]
    for result, data in ((results[0], first), (results[4], last)):
        record = await api.record(result)
        assert record.envelope is not None and record.envelope.id == result["id"]
        assert record.data["login_id"] == data["login_id"]


async def test_a_batch_over_the_limit_is_422_naming_events(api: ApiUnderTest, publisher: dict[str, str]) -> None:
    events = [{"type": USER_TYPE, "data": user()} for _ in range(MAX_BATCH + 1)]
    response = await api.client.post("/v1/events/batch", json={"events": events}, headers=publisher)

    assert response.status_code == 422
    assert pointers(response.json()) == ["/events"]


async def test_repeating_an_event_id_returns_the_first_result_and_publishes_once(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    document = {"type": USER_TYPE, "id": str(uuid.uuid4()), "data": user()}
    first = await api.client.post("/v1/events", json=document, headers=publisher)
    again = await api.client.post("/v1/events", json=document, headers=publisher)
    in_batch = await api.client.post("/v1/events/batch", json={"events": [document]}, headers=publisher)
    changed = await api.client.post("/v1/events", json={**document, "data": user()}, headers=publisher)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert in_batch.json()["results"] == [first.json()]
    assert changed.status_code == 422 and pointers(changed.json()) == ["/id"]
    assert await _records_with_id(api, first.json()) == 1


async def test_repeating_an_idempotency_key_returns_the_first_answer_and_a_different_body_is_422(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    headers = {**publisher, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    batch = {"events": [{"type": USER_TYPE, "data": user()}, {"type": USER_TYPE, "data": user()}]}
    first = await api.client.post("/v1/events/batch", json=batch, headers=headers)
    again = await api.client.post("/v1/events/batch", json=batch, headers=headers)
    other = await api.client.post("/v1/events/batch", json={"events": batch["events"][:1]}, headers=headers)

    assert first.status_code == again.status_code == 207
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and pointers(other.json()) == ["Idempotency-Key"]
    for result in first.json()["results"]:
        assert await _records_with_id(api, result) == 1


async def test_an_event_id_in_flight_elsewhere_is_409_with_retry_after(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    """A claim held by another request (or a process that died less than the takeover time ago)."""
    store = api.resources.idempotency
    event_id = str(uuid.uuid4())
    document = {"type": USER_TYPE, "id": event_id, "data": user()}
    await store.claim(uuid.uuid4(), [(event_key(event_id), _fingerprint_of(document))])
    in_flight = await api.client.post("/v1/events", json=document, headers=publisher)

    assert in_flight.status_code == 409, in_flight.text
    assert 1 <= int(in_flight.headers["retry-after"]) <= store.takeover_seconds


async def test_a_claim_left_by_a_crashed_request_is_taken_over_after_the_takeover_time(api: ApiUnderTest) -> None:
    store = api.resources.idempotency
    impatient = IdempotencyStore(
        api.resources.pool, api.settings.db_schema("api"), window_seconds=60, takeover_seconds=0.0
    )
    key = (event_key(str(uuid.uuid4())), "print")
    await store.claim(uuid.uuid4(), [key])

    [held] = await store.claim(uuid.uuid4(), [key])
    [taken] = await impatient.claim(uuid.uuid4(), [key])
    [other_body] = await impatient.claim(uuid.uuid4(), [(key[0], "another print")])

    assert type(held).__name__ == "InFlight"
    assert type(taken).__name__ == "Claimed"
    assert type(other_body).__name__ == "Mismatch"


def _fingerprint_of(document: dict[str, Any]) -> str:
    """What the API stores for an event id: its type and data as the model dumps them."""
    event = event_types.parse(document["type"], document["data"])
    return fingerprint(event.event_type, event.model_dump(mode="json"))


async def _records_with_id(api: ApiUnderTest, result: dict[str, Any]) -> int:
    """How many records of the result's partition carry its event id."""
    records = await api.records(result["topic"], result["partition"])
    return sum(1 for record in records if record.envelope is not None and record.envelope.id == result["id"])


GOOD = json.dumps({"type": USER_TYPE, "data": user("malformed")})


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status", "named"),
    [
        ("/v1/events", "application/json", b"", 400, [""]),
        ("/v1/events", "application/json", b"[]", 422, [""]),
        ("/v1/events", "application/json", b"null", 422, [""]),
        ("/v1/events", "application/json", b'{"type": 1, "data": {}}', 422, ["/type"]),
        ("/v1/events", "application/json", f'{{"type": "{USER_TYPE}", "data": []}}'.encode(), 422, ["/data"]),
        ("/v1/events", "application/json", b"[" * 10_000, 400, [""]),
        ("/v1/events", "application/json", b"1" * 5_000, 400, [""]),
        ("/v1/events", "application/json", b'{"type": NaN}', 400, [""]),
        ("/v1/events", "application/json", b"\xff\xfe{}", 400, [""]),
        ("/v1/events", "application/json", GOOD.replace('"U"', '"\\ud800"').encode(), 400, [""]),
        ("/v1/events", "application/json", GOOD[:-1].encode() + b', "id": "a\\u0000b"}', 422, ["/id"]),
        ("/v1/events", "application/json", GOOD[:-1].encode() + b', "data2": 1}', 422, ["/data2"]),
        ("/v1/events/batch", "application/json", b'{"events": "x"}', 422, ["/events"]),
        ("/v1/events/batch", "application/json", b'{"events": [], "more": 1}', 422, ["/more"]),
        ("/v1/events/batch", "application/json", b'{"events": []}', 422, ["/events"]),
        ("/v1/events/batch", "application/cloudevents-batch+json", b"{}", 422, [""]),
        ("/v1/events/batch", "text/plain", b"{}", 415, ["Content-Type"]),
    ],
)
async def test_malformed_requests_are_answered_with_a_problem_naming_the_field(
    api: ApiUnderTest,
    publisher: dict[str, str],
    path: str,
    content_type: str,
    body: bytes,
    status: int,
    named: list[str],
) -> None:
    response = await api.client.post(path, content=body, headers={**publisher, "Content-Type": content_type})

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert pointers(response.json()) == named


async def test_batch_items_that_are_not_events_are_named_and_a_bad_idempotency_key_is_422(
    api: ApiUnderTest, publisher: dict[str, str]
) -> None:
    items = await api.client.post("/v1/events/batch", json={"events": [1, None]}, headers=publisher)
    key = await api.client.post(
        "/v1/events/batch", json={"events": [1]}, headers={**publisher, "Idempotency-Key": "a b"}
    )

    assert items.status_code == 207
    assert [pointers(result) for result in items.json()["results"]] == [["/events/0"], ["/events/1"]]
    assert key.status_code == 422 and pointers(key.json()) == ["Idempotency-Key"]


FORGED_FILL = ExecutionReported(
    exchange="XSX",
    order_id="forged-1",
    account_id="XS:0001",
    instrument="XS01.XSX",
    side=OrderSide.SELL,
    kind=ExecutionKind.FILLED,
    currency="AUD",
    settles_through_registry=True,
    fill_quantity=1_000_000,
    fill_price=Decimal("999"),
    venue_trade_id="forged",
    cumulative_quantity=1_000_000,
    leaves_quantity=0,
)


async def test_no_token_publishes_an_internal_event_whatever_its_scopes(api: ApiUnderTest) -> None:
    """A fill, a settlement or a cash movement comes only from the service that owns it: an admin
    token is refused a well-formed execution report, and every other internal type, alone or in a batch."""
    internal = sorted(set(event_types.types()) - api.resources.publishable)
    assert {"xosp.execution.reported.v1", "xosp.settlement.applied.v1", "xosp.cash_movement.applied.v1"} <= set(
        internal
    )
    admin = await api.token("admin")
    answer = (await api.client.get("/v1/event-types", headers=admin)).json()
    listed = {t["type"]: t["publishable"] for t in answer}
    assert not any(listed[t] for t in internal) and listed[USER_TYPE]
    forged = {"type": FORGED_FILL.event_type, "data": json.loads(FORGED_FILL.model_dump_json())}
    before = await api.record_count("xosp.gateway.events")

    for token in (admin, await api.token("publish:*")):
        single = await api.client.post("/v1/events", json=forged, headers=token)
        assert single.status_code == 422 and pointers(single.json()) == ["/type"], single.text
        assert "is not an input event" in single.json()["detail"]
        for chunk in [internal[i : i + MAX_BATCH] for i in range(0, len(internal), MAX_BATCH)]:
            batch = await api.client.post(
                "/v1/events/batch", json={"events": [{"type": t, "data": {}} for t in chunk]}, headers=token
            )
            results = batch.json()["results"]
            assert [r["status"] for r in results] == [422] * len(chunk), results
    assert await api.record_count("xosp.gateway.events") == before


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"login_id": "a\u0000b"}, "/data/login_id"),  # PostgreSQL cannot store it: it stopped every service
        ({"username": "admin\u202egnp.exe"}, "/data/username"),
        ({"display_name": "A\u200bB"}, "/data/display_name"),
        ({"display_name": "A\x1b[2JB"}, "/data/display_name"),
    ],
)
async def test_characters_no_service_should_store_are_refused_at_the_door(
    api: ApiUnderTest, publisher: dict[str, str], change: dict[str, str], pointer: str
) -> None:
    data = {**user(), **change}
    response = await api.client.post("/v1/events", json={"type": USER_TYPE, "data": data}, headers=publisher)

    assert response.status_code == 422, response.text
    assert pointers(response.json()) == [pointer]


async def test_numbers_are_not_coerced_money_has_a_grammar_and_a_key_given_twice_is_refused(
    api: ApiUnderTest,
) -> None:
    token = await api.token("publish:*")
    order = {
        "order_id": "o-1",
        "account_id": "XS:0001",
        "login_id": "u1",
        "instrument": "XS01.XSX",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": 10,
        "limit_price": "12.50",
    }
    deposit = {"account_id": "XS:0001", "amount": {"amount": "1.00", "currency": "AUD"}, "reference": "r"}

    async def status(event_type: str, data: dict[str, Any]) -> tuple[int, list[str]]:
        response = await api.client.post("/v1/events", json={"type": event_type, "data": data}, headers=token)
        return response.status_code, pointers(response.json()) if response.status_code != 202 else []

    assert await status("xosp.order.placed.v1", order) == (202, [])
    for quantity in (True, "10", 10.5):
        assert await status("xosp.order.placed.v1", {**order, "quantity": quantity}) == (422, ["/data/quantity"])
    for amount in ("1e3", "9" * 40, "0.123456789"):
        changed = {**deposit, "amount": {"amount": amount, "currency": "AUD"}}
        assert await status("xosp.account.funds_deposited.v1", changed) == (422, ["/data/amount/amount"])
    twice = json.dumps({"type": USER_TYPE, "data": user()})[:-1] + ', "type": "xosp.user.deleted.v1"}'
    response = await api.client.post("/v1/events", content=twice, headers={**token, "Content-Type": "application/json"})
    assert response.status_code == 400 and "'type' is given twice" in response.json()["detail"]

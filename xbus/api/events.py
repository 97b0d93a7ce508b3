"""POST /v1/events and POST /v1/events/batch: publish over HTTP.

A token may publish an event only with the scope ``publish:<pattern>`` matching its type. Each
route checks the type (known? allowed?) before the data, so that a token learns nothing from the
validation of events it may not send.

The batch answers **207 Multi-Status** whenever it was read item by item, whatever the items'
outcomes (all published included): the client must look at each result, and a single overall
status could not say "3 published, 1 refused". A request that fails as a whole (no token, a body
that is not JSON, too large, too many events, a reused Idempotency-Key) gets that problem instead.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from producers.incoming import InvalidEvent, event_type_of, parse_event_document, pointer
from xbus.api.documents import (
    CLOUD_EVENT,
    CLOUDEVENT,
    CLOUDEVENT_BATCH,
    EVENT_BATCH,
    JSON,
    PLAIN_EVENT,
    cloudevent_batch,
    json_body,
    media_type,
    ref,
    request_body,
)
from xbus.api.publishing import IDEMPOTENCY_KEY, Item, Publication
from xbus.api.resources import ApiResources
from xbus.api.scopes import publish_scope
from xbus.api.tokens import ApiToken
from xbus.problems import FieldError, Problem, ProblemModel, problem_responses

#: Idempotency keys: printable ASCII without spaces, like the UUIDs clients usually send.
KEY_PATTERN = r"^[!-~]{1,255}$"
#: The header of an answer given from an idempotency key (nothing was published by this request).
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "present when every event had been published before: nothing was published now",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class PublishedEvent(BaseModel):
    """An event the broker acknowledged (acks=all): where it is."""

    status: Literal[202] = 202
    id: str = Field(description="the event id (CloudEvents id)")
    type: str
    topic: str
    partition: int
    offset: int
    correlationid: str = Field(description="the flow the event belongs to")


class BatchResult(BaseModel):
    published: int = Field(description="events published (or published before: an idempotent repeat)")
    failed: int = Field(description="events not published; their results are problem documents")
    results: list[PublishedEvent | ProblemModel] = Field(description="one per event, in the order sent")


def events_router(resources: ApiResources) -> APIRouter:
    router = APIRouter(tags=["events"])
    auth = resources.auth
    max_batch = resources.settings.api_max_batch

    @router.post(
        "/v1/events",
        status_code=202,
        response_model=PublishedEvent,
        responses={202: {"headers": REPLAYED}, **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503)},
        openapi_extra=request_body((JSON, ref(PLAIN_EVENT)), (CLOUDEVENT, ref(CLOUD_EVENT))),
        summary="Publish one event; 202 once the broker acknowledged it",
    )
    async def publish_one(
        request: Request,
        token: ApiToken = Depends(auth.token),
        idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_KEY, pattern=KEY_PATTERN),
    ) -> JSONResponse:
        cloudevent = media_type(request, (JSON, CLOUDEVENT)) == CLOUDEVENT
        document = await json_body(request)
        try:
            auth.require(token, publish_scope(event_type_of(document, resources.publishable)))
            outgoing = parse_event_document(document, accepted=resources.publishable, cloudevent=cloudevent)
            item = Item("", outgoing=outgoing)
        except InvalidEvent as error:
            raise invalid(error) from None
        publication = Publication(resources, token, idempotency_key, [request.url.path, document])
        answer = await publication.answer([item], _single)
        if answer.status != 202:
            headers = {"Retry-After": str(publication.retry_after)} if publication.retry_after else {}
            raise Problem(
                answer.body["status"], answer.body["title"], answer.body["detail"], _errors(answer.body), headers
            )
        return _respond(answer.status, answer.body, answer.replayed)

    @router.post(
        "/v1/events/batch",
        status_code=207,
        response_model=BatchResult,
        responses={207: {"headers": REPLAYED}, **problem_responses(400, 401, 409, 413, 415, 422, 429, 503)},
        openapi_extra=request_body((JSON, ref(EVENT_BATCH)), (CLOUDEVENT_BATCH, cloudevent_batch(max_batch))),
        summary=f"Publish up to {max_batch} events: a result per event, valid events published even when others fail",
    )
    async def publish_batch(
        request: Request,
        token: ApiToken = Depends(auth.token),
        idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_KEY, pattern=KEY_PATTERN),
    ) -> JSONResponse:
        cloudevents = media_type(request, (JSON, CLOUDEVENT_BATCH)) == CLOUDEVENT_BATCH
        document = await json_body(request)
        documents, at = (document, ()) if cloudevents else (_events_of(document), ("events",))
        _check_count(documents, pointer(*at), max_batch)
        items = [
            _item(resources, token, entry, pointer(*at, index), cloudevents) for index, entry in enumerate(documents)
        ]
        publication = Publication(resources, token, idempotency_key, [request.url.path, document])
        answer = await publication.answer(items, _batch)
        return _respond(answer.status, answer.body, answer.replayed)

    return router


def _item(resources: ApiResources, token: ApiToken, document: Any, at: str, cloudevent: bool) -> Item:
    try:
        event_type = event_type_of(document, resources.publishable)
    except InvalidEvent as error:
        return Item(at, refusal=invalid(error, at))
    try:
        resources.auth.require(token, publish_scope(event_type))
    except Problem as refusal:
        scope = publish_scope(event_type)
        return Item(
            at, refusal=Problem(403, refusal.title, refusal.detail, [FieldError(f"{at}/type", f"needs {scope}")])
        )
    try:
        return Item(at, outgoing=parse_event_document(document, accepted=resources.publishable, cloudevent=cloudevent))
    except InvalidEvent as error:
        return Item(at, refusal=invalid(error, at))


def invalid(error: InvalidEvent, at: str = "") -> Problem:
    return Problem(
        422,
        "Invalid event",
        str(error),
        errors=[FieldError(at + fault.pointer, fault.reason) for fault in error.faults],
    )


def _events_of(document: Any) -> list[Any]:
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        reason = 'the body must be {"events": [event, ...]}'
        raise Problem(422, "Invalid batch", reason, errors=[FieldError("/events", "required, an array of events")])
    unknown = sorted(set(document) - {"events"})
    if unknown:
        errors = [FieldError(pointer(key), "unknown field; the batch has only 'events'") for key in unknown]
        raise Problem(422, "Invalid batch", f"unknown field(s) {', '.join(unknown)}", errors=errors)
    events: list[Any] = document["events"]
    return events


def _check_count(documents: Any, at: str, max_batch: int) -> None:
    if not isinstance(documents, list):
        raise Problem(
            422, "Invalid batch", "the body must be an array of CloudEvents", errors=[FieldError(at, "an array")]
        )
    if not 1 <= len(documents) <= max_batch:
        reason = f"between 1 and {max_batch} events (XBUS_API_MAX_BATCH); got {len(documents)}"
        raise Problem(422, "Invalid batch", f"a batch holds {reason}", errors=[FieldError(at, reason)])


def _single(results: list[dict[str, Any]]) -> tuple[int, Any]:
    [result] = results
    return result["status"], result


def _batch(results: list[dict[str, Any]]) -> tuple[int, Any]:
    published = sum(1 for result in results if result["status"] == 202)
    return 207, {"published": published, "failed": len(results) - published, "results": results}


def _errors(body: dict[str, Any]) -> list[FieldError]:
    return [FieldError(error["pointer"], error["reason"]) for error in body.get("errors", ())]


def _respond(status: int, body: Any, replayed: bool) -> JSONResponse:
    """The answer; ``Idempotent-Replayed: true`` when it is a stored one (nothing was published now)."""
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else None)

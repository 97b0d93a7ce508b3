"""The bodies POST /v1/events and /v1/events/batch accept: their media types, JSON, and their OpenAPI schemas.

The routes read the body themselves instead of declaring a pydantic body: which model applies
depends on the media type and on each event's ``type``, and a batch must be judged item by item
(a bad item is named, the others still published), which a single body model would refuse whole.
The OpenAPI document still describes every body precisely: one schema per event type, the event's
data being its model's JSON Schema (the components of :func:`event_components`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic.json_schema import models_json_schema

from producers.incoming import loads_strict
from schemas import event_types
from schemas.envelope import MAX_ATTRIBUTE_LENGTH, SPEC_VERSION
from xbus.problems import FieldError, Problem

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"

#: The OpenAPI components of the request bodies (added to the document by the app).
PLAIN_EVENT, CLOUD_EVENT, EVENT_BATCH = "EventDocument", "CloudEvent", "EventBatch"
_REF = "#/components/schemas/{model}"


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The request's media type, if one of ``accepted``; a 415 problem naming them otherwise."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given not in accepted:
        shown = f"'{given}'" if given else "no Content-Type"
        raise Problem(
            415,
            "Unsupported Media Type",
            f"{shown} is not accepted here; send {' or '.join(accepted)}",
            errors=[FieldError("Content-Type", f"must be {' or '.join(accepted)}")],
            headers={"Accept-Post": ", ".join(accepted)},
        )
    return given


async def json_body(request: Request) -> Any:
    """The body as JSON; a 400 problem if it is not (UTF-8 JSON, no NaN or Infinity, no key given
    twice, not nested absurdly)."""
    body = await request.body()
    try:
        document = loads_strict(body)
        if b"\\ud" in body.lower():  # a \uD800-\uDFFF escape: refuse it unless it is half of a pair
            json.dumps(document, ensure_ascii=False).encode()
        return document
    except json.JSONDecodeError as error:
        reason = f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
    except RecursionError:
        reason = "not JSON this service reads: nested too deeply"
    except ValueError as error:  # bad UTF-8, an unpaired surrogate, an integer of thousands of digits, NaN
        reason = f"not JSON this service reads: {error}"
    raise Problem(400, "Bad Request", f"the body is {reason}", errors=[FieldError("", reason)])


def event_components(publishable: frozenset[str], max_batch: int) -> dict[str, Any]:
    """The OpenAPI components: the models of the ``publishable`` types (and what they use), and the body schemas."""
    models = [event_types.model(event_type) for event_type in sorted(publishable)]
    refs, top = models_json_schema([(model, "validation") for model in models], ref_template=_REF)
    components: dict[str, Any] = dict(top.get("$defs", {}))
    plain, cloud = [], []
    for model in models:
        data = refs[(model, "validation")]
        plain.append(_variant(model.event_type, data, cloudevent=False))
        cloud.append(_variant(model.event_type, data, cloudevent=True))
    components[PLAIN_EVENT] = {
        "description": "An event: its type and its data, with optional CloudEvents attributes.",
        "oneOf": plain,
    }
    components[CLOUD_EVENT] = {
        "description": f"A CloudEvent {SPEC_VERSION} in structured JSON mode ({CLOUDEVENT}).",
        "oneOf": cloud,
    }
    components[EVENT_BATCH] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["events"],
        "properties": {"events": _array(PLAIN_EVENT, max_batch)},
    }
    return components


def request_body(*content: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body is read by hand."""
    return {"requestBody": {"required": True, "content": {media: {"schema": schema} for media, schema in content}}}


def ref(component: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=component)}


def cloudevent_batch(max_batch: int) -> dict[str, Any]:
    return _array(CLOUD_EVENT, max_batch)


def _array(component: str, max_batch: int) -> dict[str, Any]:
    return {"type": "array", "items": ref(component), "minItems": 1, "maxItems": max_batch}


def _variant(event_type: str, data: dict[str, str], *, cloudevent: bool) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": 128}
    properties: dict[str, Any] = {
        "type": {"const": event_type},
        "data": data,
        "id": {**text, "description": "the event id; a repeat within the idempotency window publishes nothing"},
        "time": {"type": "string", "format": "date-time"},
        "correlationid": {**text, "description": "the flow this event belongs to (default: its own id)"},
        "causationid": {**text, "description": "the event that caused this one (default: the correlation id)"},
        "specversion": {"const": SPEC_VERSION},
    }
    required = ["type", "data"]
    if cloudevent:
        attribute = {"type": "string", "minLength": 1, "maxLength": MAX_ATTRIBUTE_LENGTH}
        properties["source"] = {**attribute, "description": "checked, not kept: records carry XBUS_SOURCE"}
        properties["subject"] = {**attribute, "description": "if given, the event's aggregate id"}
        properties["datacontenttype"] = {"type": "string", "enum": [JSON]}
        required = ["specversion", "id", "source", "type", "data"]
    return {
        "title": event_type,
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }

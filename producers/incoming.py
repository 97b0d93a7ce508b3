"""Events arriving as JSON documents (NDJSON files, later HTTP): parsed into :class:`Outgoing`.

A document is ``{"type": ..., "data": {...}}`` with the optional CloudEvents attributes ``id``,
``time``, ``correlationid``, ``causationid`` and ``specversion`` - a structured-mode CloudEvent
minus what the publisher derives (``source``, ``subject``). Unknown keys are refused, so a typo
such as ``correlation_id`` is an error rather than a silently new flow.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import ValidationError

from producers.publisher import Outgoing
from schemas import UnknownEventType, describe_validation_error, registry
from schemas.envelope import SPEC_VERSION

_ALLOWED = {"type", "data", "id", "time", "correlationid", "causationid", "specversion"}
_ID_KEYS = ("id", "correlationid", "causationid")


class InvalidEvent(ValueError):
    """The document is not a valid event; the message names the field and the reason."""


def parse_event_document(document: Any) -> Outgoing:
    if not isinstance(document, dict):
        raise InvalidEvent("an event must be a JSON object with 'type' and 'data'")
    unknown = sorted(set(document) - _ALLOWED)
    if unknown:
        raise InvalidEvent(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}")
    type_name = document.get("type")
    if not isinstance(type_name, str):
        raise InvalidEvent("type: required, a string such as xosp.user.created.v1")
    if "data" not in document:
        raise InvalidEvent("data: required, the event's fields as an object")
    if document.get("specversion", SPEC_VERSION) != SPEC_VERSION:
        raise InvalidEvent(f"specversion: only {SPEC_VERSION} is supported")
    for key in _ID_KEYS:
        value = document.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 128):
            raise InvalidEvent(f"{key}: must be a string of 1 to 128 characters")
    try:
        event = registry.parse(type_name, document["data"])
    except UnknownEventType as error:
        raise InvalidEvent(f"type: {error}") from None
    except ValidationError as error:
        raise InvalidEvent(f"{type_name}: data.{describe_validation_error(error)}") from None
    return Outgoing(
        event=event,
        event_id=document.get("id"),
        correlation_id=document.get("correlationid"),
        causation_id=document.get("causationid"),
        time=_parse_time(document.get("time")),
    )


def parse_event_line(line: str) -> Outgoing:
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        raise InvalidEvent(f"not JSON: {error.msg} at column {error.colno}") from None
    return parse_event_document(document)


def _parse_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("time: must be an RFC 3339 timestamp string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"time: {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("time: needs a time zone offset, for example 2026-01-01T09:00:00Z")
    return parsed

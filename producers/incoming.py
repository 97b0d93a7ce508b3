"""Events arriving as JSON documents (NDJSON files, HTTP): parsed into :class:`Outgoing`.

Two shapes. The plain one is ``{"type": ..., "data": {...}}`` with the optional CloudEvents
attributes ``id``, ``time``, ``correlationid``, ``causationid`` and ``specversion``: a
structured-mode CloudEvent minus what the publisher derives (``source``, ``subject``). The
other is a CloudEvent in structured JSON mode (``application/cloudevents+json``): then
``specversion``, ``id``, ``source`` and ``type`` are required, as the CloudEvents spec says;
``subject``, if given, must be the event's aggregate id (it is the Kafka key, so it cannot be
chosen apart from the data); ``datacontenttype``, if given, must be JSON. The sender's ``source``
is checked but the record carries the bus's own ``XBUS_SOURCE``: the bus is the producing system
on the wire, and who sent the event over HTTP is known from its token.

Unknown keys are refused, so a typo such as ``correlation_id`` is an error rather than a silently
new flow. Every problem is a :class:`Fault`: a JSON Pointer into the document and the reason, so
that the HTTP API can name each field and a command line can print one line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from producers.publisher import Outgoing
from schemas import UnknownEventType, describe_validation_error, registry
from schemas.envelope import MAX_ATTRIBUTE_LENGTH, SPEC_VERSION

_PLAIN = frozenset({"type", "data", "id", "time", "correlationid", "causationid", "specversion"})
_CLOUDEVENT = _PLAIN | {"source", "subject", "datacontenttype"}
_ID_KEYS = ("id", "correlationid", "causationid")
_JSON_CONTENT = ("application/json", "text/json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Fault:
    #: A JSON Pointer (RFC 6901) into the document: ``/data/email``; ``""`` is the whole document.
    pointer: str
    reason: str

    def describe(self) -> str:
        """``data.email: reason``: the pointer as a dotted path, for a line of text."""
        path = self.pointer[1:].replace("/", ".")
        return f"{path}: {self.reason}" if path else self.reason


class InvalidEvent(ValueError):
    """The document is not a valid event; each fault names the field and the reason."""

    def __init__(self, *faults: Fault, summary: str | None = None) -> None:
        super().__init__(summary or "; ".join(fault.describe() for fault in faults))
        self.faults = faults

    def within(self, *prefix: str | int) -> InvalidEvent:
        """The same faults, pointing into a larger document (item 3 of a batch: ``/events/3``)."""
        faults = [Fault(pointer(*prefix) + fault.pointer, fault.reason) for fault in self.faults]
        return InvalidEvent(*faults, summary=str(self))


def pointer(*parts: str | int) -> str:
    """The JSON Pointer of a path of keys and indexes (``~`` and ``/`` escaped as RFC 6901 says)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def event_type_of(document: Any) -> str:
    """The known event type a document names, checked before anything else: the HTTP API decides
    from it whether the caller may publish the event at all, before looking at the data."""
    if not isinstance(document, dict):
        raise InvalidEvent(Fault("", "an event must be a JSON object with 'type' and 'data'"))
    type_name = document.get("type")
    if not isinstance(type_name, str):
        raise InvalidEvent(Fault("/type", "required, a string such as xosp.user.created.v1"))
    if type_name not in registry:
        raise InvalidEvent(Fault("/type", str(UnknownEventType(type_name))))
    return type_name


def parse_event_document(document: Any, *, cloudevent: bool = False) -> Outgoing:
    """The event a document describes; ``cloudevent`` for a structured-mode CloudEvent."""
    type_name = event_type_of(document)
    unknown = sorted(set(document) - (_CLOUDEVENT if cloudevent else _PLAIN))
    if unknown:
        allowed = ", ".join(sorted(_CLOUDEVENT if cloudevent else _PLAIN))
        raise InvalidEvent(
            *(Fault(pointer(key), f"unknown field; allowed: {allowed}") for key in unknown),
            summary=f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}",
        )
    faults = _envelope_faults(document, cloudevent)
    data = document.get("data")
    if "data" not in document:
        faults.append(Fault("/data", "required, the event's fields as an object"))
    elif not isinstance(data, dict):
        faults.append(Fault("/data", "must be a JSON object with the event's fields"))
    time, time_fault = _parse_time(document.get("time"))
    faults += time_fault
    if faults:
        raise InvalidEvent(*faults)
    try:
        event = registry.parse(type_name, data)
    except ValidationError as error:
        raise InvalidEvent(
            *_data_faults(error), summary=f"{type_name}: data.{describe_validation_error(error)}"
        ) from None
    subject = document.get("subject")
    if subject is not None and subject != event.aggregate_id:
        reason = f"must be the event's aggregate id (data.{event.aggregate_field}, {event.aggregate_id!r}) or absent"
        raise InvalidEvent(Fault("/subject", reason))
    return Outgoing(
        event=event,
        event_id=document.get("id"),
        correlation_id=document.get("correlationid"),
        causation_id=document.get("causationid"),
        time=time,
    )


def parse_event_line(line: str) -> Outgoing:
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        raise InvalidEvent(Fault("", f"not JSON: {error.msg} at column {error.colno}")) from None
    return parse_event_document(document)


def _envelope_faults(document: dict[str, Any], cloudevent: bool) -> list[Fault]:
    faults: list[Fault] = []
    required = ("specversion", "id", "source") if cloudevent else ()
    faults += [Fault(pointer(key), "required in a CloudEvent") for key in required if key not in document]
    if document.get("specversion", SPEC_VERSION) != SPEC_VERSION:
        faults.append(Fault("/specversion", f"only {SPEC_VERSION} is supported"))
    for key in _ID_KEYS:
        value = document.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 128 or _CONTROL.search(value)):
            faults.append(Fault(pointer(key), "must be a string of 1 to 128 characters, none a control character"))
    for key in ("source", "subject"):
        value = document.get(key)
        if key in document and (not isinstance(value, str) or not 0 < len(value) <= MAX_ATTRIBUTE_LENGTH):
            faults.append(Fault(pointer(key), f"must be a string of 1 to {MAX_ATTRIBUTE_LENGTH} characters"))
    content_type = document.get("datacontenttype")
    if content_type is not None and (
        not isinstance(content_type, str) or content_type.split(";")[0].strip().lower() not in _JSON_CONTENT
    ):
        faults.append(Fault("/datacontenttype", "only application/json data is accepted"))
    return faults


def _data_faults(error: ValidationError) -> list[Fault]:
    return [Fault(pointer("data", *item["loc"]), item["msg"]) for item in error.errors(include_url=False)]


def _parse_time(value: Any) -> tuple[dt.datetime | None, Sequence[Fault]]:
    if value is None:
        return None, ()
    if not isinstance(value, str):
        return None, [Fault("/time", "must be an RFC 3339 timestamp string")]
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None, [Fault("/time", f"{value!r} is not an RFC 3339 timestamp")]
    if parsed.tzinfo is None:
        return None, [Fault("/time", "needs a time zone offset, for example 2026-01-01T09:00:00Z")]
    return parsed, ()

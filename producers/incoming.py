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

Only input events come in this way: the lifecycle types of the upstream topics. A fill, a
settlement or a cash movement is published by the service that owns it, never by a caller, so no
token scope can make one up.

The edge is strict, because what passes it is stored by every service that reads the topic:
unknown keys are refused (a typo such as ``correlation_id`` is an error rather than a silently new
flow), a key given twice is refused (which one wins is up to the parser), JSON types are not
coerced (``true`` or ``"10"`` is not a quantity), money follows its grammar, integers fit a
PostgreSQL ``bigint``, and no string holds a control, bidirectional-override or invisible
character (a NUL cannot be stored; the others spoof logs and terminals). Every problem is a
:class:`Fault`: a JSON Pointer into the document and the reason, so that the HTTP API can name
each field and a command line can print one line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from producers.publisher import Outgoing
from schemas import UnknownEventType, describe_validation_error, event_types
from schemas.envelope import MAX_ATTRIBUTE_LENGTH, SPEC_VERSION

_PLAIN = frozenset({"type", "data", "id", "time", "correlationid", "causationid", "specversion"})
_CLOUDEVENT = _PLAIN | {"source", "subject", "datacontenttype"}
_ID_KEYS = ("id", "correlationid", "causationid")
_JSON_CONTENT = ("application/json", "text/json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: C0 and C1 controls, DEL, bidirectional marks, embeddings, overrides and isolates, zero-width
#: characters and the byte order mark, and lone surrogates (which no UTF-8 encodes).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_BIGINT = 2**63 - 1


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


class DuplicateKey(ValueError):
    """A JSON object names a key twice: refused rather than letting the parser pick one."""


def loads_strict(text: str | bytes) -> Any:
    """JSON as the edge reads it: no key given twice, no NaN or Infinity (ValueError otherwise;
    json.JSONDecodeError, a ValueError too, for text that is not JSON)."""
    return json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise DuplicateKey(f"key {key!r} is given twice in one object")
        document[key] = value
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def event_type_of(document: Any, accepted: Collection[str]) -> str:
    """The input event type a document names, checked before anything else: the HTTP API decides
    from it whether the caller may publish the event at all, before looking at the data."""
    if not isinstance(document, dict):
        raise InvalidEvent(Fault("", "an event must be a JSON object with 'type' and 'data'"))
    type_name = document.get("type")
    if not isinstance(type_name, str):
        raise InvalidEvent(Fault("/type", "required, a string such as xosp.user.created.v1"))
    if type_name not in event_types:
        raise InvalidEvent(Fault("/type", str(UnknownEventType(type_name))))
    if type_name not in accepted:
        reason = "is not an input event: only the service that owns it publishes it, on a topic of its own"
        raise InvalidEvent(Fault("/type", f"{type_name} {reason}"))
    return type_name


def parse_event_document(document: Any, *, accepted: Collection[str], cloudevent: bool = False) -> Outgoing:
    """The event a document describes, if of a type in ``accepted`` (the catalogue's input types);
    ``cloudevent`` for a structured-mode CloudEvent."""
    type_name = event_type_of(document, accepted)
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
    if isinstance(data, dict):
        faults += _unstorable(data, ("data",))
    if faults:
        raise InvalidEvent(*faults)
    try:
        event = event_types.parse_input(type_name, data)
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


def parse_event_line(line: str, *, accepted: Collection[str]) -> Outgoing:
    try:
        document = loads_strict(line)
    except json.JSONDecodeError as error:
        raise InvalidEvent(Fault("", f"not JSON: {error.msg} at column {error.colno}")) from None
    except ValueError as error:
        raise InvalidEvent(Fault("", f"not JSON this bus reads: {error}")) from None
    return parse_event_document(document, accepted=accepted)


def _unstorable(value: Any, at: tuple[str | int, ...]) -> list[Fault]:
    """Strings with a character the edge refuses, integers beyond a ``bigint``, at any depth."""
    if isinstance(value, str):
        found = _UNSAFE.search(value)
        return [Fault(pointer(*at), _unsafe_reason(found.group()))] if found else []
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _BIGINT:
        return [Fault(pointer(*at), f"{str(value)[:24]}… is beyond what the bus stores (at most 2^63-1)")]
    if isinstance(value, dict):
        faults = [Fault(pointer(*at), _unsafe_reason(c.group())) for key in value if (c := _UNSAFE.search(key))]
        return faults + [fault for key, item in value.items() for fault in _unstorable(item, (*at, key))]
    if isinstance(value, list):
        return [fault for index, item in enumerate(value) for fault in _unstorable(item, (*at, index))]
    return []


def _unsafe_reason(character: str) -> str:
    code = f"U+{ord(character):04X}"
    name = unicodedata.name(character, "a control character" if ord(character) < 0xD800 else "a lone surrogate")
    return f"holds {code} ({name}): control, bidirectional and invisible characters are refused"


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

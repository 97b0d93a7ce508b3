"""The CloudEvents 1.0 envelope in Kafka binary mode: attributes travel as ``ce_*`` headers.

The payload is the event's JSON; ``ce_subject`` is the aggregate id (also the Kafka key), and the
extensions ``ce_correlationid`` (the whole provisioning flow) and ``ce_causationid`` (the event
that caused this one) let the tracker follow a flow across services. A root event is its own
correlation and causation, so every header is always present.

A plain slotted dataclass, not a pydantic model: one is built per published event, on the hot
path of the publisher, and the checks that matter run where untrusted headers come in
(:meth:`Envelope.from_headers`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

_IDS_PER_REFILL = 4096
_VARIANT = "89ab"


class _RandomIds:
    """Event ids, cheaply: ``uuid.uuid4()`` reads the OS random source once per id, which costs
    more here than serialising the event; the publisher makes one id per event, so ids are cut
    from a buffer of OS randomness refilled 4,096 ids at a time. Same randomness, same format, one
    syscall per 4,096."""

    def __init__(self) -> None:
        self._buffer = b""
        self._position = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self._position >= len(self._buffer):
                self._buffer, self._position = os.urandom(16 * _IDS_PER_REFILL), 0
            chunk = self._buffer[self._position : self._position + 16]
            self._position += 16
        h = chunk.hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_ids = _RandomIds()


def new_event_id() -> str:
    """A random UUID (version 4, RFC 9562 variant) as its canonical 36-character string."""
    return _ids.next()


SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
MAX_ATTRIBUTE_LENGTH = 512
#: Characters no attribute may hold: they spoof logs and terminals, and U+0000 is more than any
#: PostgreSQL text can store (an inbox row, a dead letter), so such a record is refused at the door.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: header name → envelope field.
HEADER_FIELDS: dict[str, str] = {
    "ce_specversion": "specversion",
    "ce_id": "id",
    "ce_source": "source",
    "ce_type": "type",
    "ce_time": "time",
    "ce_subject": "subject",
    "ce_correlationid": "correlation_id",
    "ce_causationid": "causation_id",
    "content-type": "datacontenttype",
}
_REQUIRED_HEADERS = [name for name in HEADER_FIELDS if name != "content-type"]


class EnvelopeError(ValueError):
    """A record's headers do not make a valid envelope; the message names the header."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    source: str
    type: str
    time: dt.datetime
    subject: str
    correlation_id: str
    causation_id: str
    specversion: str = SPEC_VERSION
    datacontenttype: str = CONTENT_TYPE

    @classmethod
    def new(
        cls,
        *,
        type: str,
        subject: str,
        source: str,
        id: str | None = None,
        time: dt.datetime | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Self:
        """An envelope for a new event; a root event (no correlation given) starts its own flow."""
        event_id = id or new_event_id()
        return cls(
            id=event_id,
            source=source,
            type=type,
            time=time or dt.datetime.now(dt.UTC),
            subject=subject,
            correlation_id=correlation_id or event_id,
            causation_id=causation_id or correlation_id or event_id,
        )

    def to_headers(self) -> list[tuple[str, bytes]]:
        return build_headers(
            id=self.id,
            source=self.source.encode(),
            type=self.type.encode(),
            time=format_time(self.time).encode(),
            subject=self.subject,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]] | None) -> Self:
        """Parse and check untrusted headers; raises :class:`EnvelopeError` naming the bad header."""
        values: dict[str, str] = {}
        for name, raw in headers or ():
            if name not in HEADER_FIELDS:
                continue
            try:
                text = raw.decode()
            except (UnicodeDecodeError, AttributeError):
                raise EnvelopeError(f"header {name} is not UTF-8 text") from None
            if not text or len(text) > MAX_ATTRIBUTE_LENGTH:
                raise EnvelopeError(f"header {name} must be 1 to {MAX_ATTRIBUTE_LENGTH} characters")
            if _CONTROL.search(text):
                raise EnvelopeError(f"header {name} holds a control character (U+0000 to U+001F or U+007F)")
            values[HEADER_FIELDS[name]] = text
        missing = [name for name in _REQUIRED_HEADERS if HEADER_FIELDS[name] not in values]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
        if values["specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"header ce_specversion is {values['specversion']!r}; only {SPEC_VERSION} is supported")
        try:
            time = dt.datetime.fromisoformat(values.pop("time"))
        except ValueError:
            raise EnvelopeError("header ce_time is not an RFC 3339 timestamp") from None
        if time.tzinfo is None:
            raise EnvelopeError("header ce_time has no time zone offset")
        return cls(time=time, **values)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, the form CloudEvents examples use."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_SPEC_VERSION_BYTES = SPEC_VERSION.encode()
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()


def build_headers(
    *, id: str, source: bytes, type: bytes, time: bytes, subject: str, correlation_id: str, causation_id: str
) -> list[tuple[str, bytes]]:
    """The header list of one record. Attributes shared by a whole batch come in pre-encoded."""
    return [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", id.encode()),
        ("ce_source", source),
        ("ce_type", type),
        ("ce_time", time),
        ("ce_subject", subject.encode()),
        ("ce_correlationid", correlation_id.encode()),
        ("ce_causationid", causation_id.encode()),
        ("content-type", _CONTENT_TYPE_BYTES),
    ]

"""Kafka records as the runtime stores them in PostgreSQL (outbox, dead letters, parked events).

Header values are bytes; they are kept in jsonb as latin-1 text, which maps every byte to one
character and back, so a record leaves PostgreSQL exactly as it came from Kafka. The one byte no
PostgreSQL text or jsonb can hold is 0x00: a value holding it is kept as ``{"base64": ...}``
instead, and comes back byte for byte all the same.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

Headers = list[tuple[str, bytes]]

#: What stands for a character PostgreSQL cannot store (U+0000, or invalid UTF-8) in text it shows.
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class StoredRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: U+0000, which no PostgreSQL text holds, replaced."""
    return text.replace("\x00", REPLACEMENT)


@overload
def key_text(key: bytes) -> str: ...
@overload
def key_text(key: None) -> None: ...
@overload
def key_text(key: bytes | None) -> str | None: ...
def key_text(key: bytes | None) -> str | None:
    """A record key as the runtime's tables hold it (blocked keys, parked events, dead letters,
    batch locks): invalid UTF-8 and U+0000 replaced, so that a hostile key is one more key, never
    a statement PostgreSQL refuses (which once stopped the service at every restart)."""
    return None if key is None else storable_text(key.decode(errors="replace"))


def headers_to_json(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[storable_text(name), _stored_value(value)] for name, value in headers])


def headers_from_json(text: str) -> Headers:
    return [(name, _original_value(value)) for name, value in json.loads(text)]


def _stored_value(value: bytes) -> str | dict[str, str]:
    return {"base64": base64.b64encode(value).decode()} if b"\x00" in value else value.decode("latin-1")


def _original_value(stored: str | dict[str, str]) -> bytes:
    return base64.b64decode(stored["base64"]) if isinstance(stored, dict) else stored.encode("latin-1")

"""Kafka records as the runtime stores them in PostgreSQL (outbox, dead letters, parked events).

Header values are bytes; they are kept in jsonb as latin-1 text, which maps every byte to one
character and back, so a record leaves PostgreSQL exactly as it came from Kafka.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class StoredRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


def headers_to_json(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[name, value.decode("latin-1")] for name, value in headers])


def headers_from_json(text: str) -> Headers:
    return [(name, value.encode("latin-1")) for name, value in json.loads(text)]

"""Idempotent publishing over HTTP: a repeated request returns the first result and publishes nothing.

Two kinds of key, each a row of ``idempotency_keys`` in the API's PostgreSQL schema:

- ``event:<id>``: an event id the client chose. Event ids are unique across the bus, so the key is
  global: the same event sent again, by any token, on either route, gets the first result back.
- ``request:<token id>:<Idempotency-Key>``: a whole request (one event or a batch), per token.

A key is **claimed** before publishing (one ``insert ... on conflict``) and its response stored
after the broker acknowledged. Each key holds the fingerprint of what it was claimed for (the
event's type and data; the route and body of a request), so that a key reused for something else
is refused instead of answered with an unrelated result. A claim is ``pending`` while its request
publishes: a duplicate arriving meanwhile is told to retry (409, ``Retry-After``) rather than
waiting or publishing twice. A process that dies mid-request leaves its claim pending; after
``takeover_seconds`` (twice the Kafka request timeout: no publish is legitimately in flight
longer) a request with the same fingerprint takes it over and publishes again, with the same event
ids (derived ones included, see :func:`derived_event_id`), so that consumers' inboxes drop the
copy. A request whose publish failed releases its claims, so that a retry publishes.

Keys live ``window_seconds``; an expired key counts as absent (it is overwritten when claimed
again) and expired rows are deleted by :meth:`IdempotencyStore.purge`, run on a timer.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from consumers.runtime.migrations import MigrateOnce, Migration

KEYS = Migration(
    "0001_idempotency_keys",
    """
    create table if not exists idempotency_keys (
        key text primary key,
        fingerprint text not null,
        owner uuid not null,
        state text not null check (state in ('pending', 'done')),
        claimed_at timestamptz not null,
        expires_at timestamptz not null,
        status integer,
        response jsonb
    );
    create index if not exists idempotency_keys_expiry on idempotency_keys (expires_at);
    """,
)

#: Derived event ids are UUIDs (version 5) in a namespace of their own.
_DERIVED = uuid.UUID("6f1c3a52-8d0e-4b7a-9c43-2e5d7f1a9b60")
#: Expired rows deleted per statement of a purge (a purge repeats until none is left).
_PURGE_CHUNK = 5_000


@dataclass(frozen=True)
class Claimed:
    """The key is this request's: publish, then complete or release it."""


@dataclass(frozen=True)
class Replay:
    """The key was used before for the same thing: answer this, publish nothing."""

    status: int
    body: Any


@dataclass(frozen=True)
class InFlight:
    """Another request holds the key and has not finished (or died less than the takeover time ago)."""

    retry_after: int


@dataclass(frozen=True)
class Mismatch:
    """The key was used for a different event or request."""


Outcome = Claimed | Replay | InFlight | Mismatch


def event_key(event_id: str) -> str:
    return f"event:{event_id}"


def request_key(token_id: str, idempotency_key: str) -> str:
    return f"request:{token_id}:{idempotency_key}"


def fingerprint(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts``: equal for equal content, whatever the key order or spacing."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_event_id(token_id: str, idempotency_key: str, index: int) -> str:
    """The id of item ``index`` of a request sent with an Idempotency-Key and no event id: the same on
    every retry, so that a retry after a crash mid-publish re-publishes the same events."""
    return str(uuid.uuid5(_DERIVED, f"{token_id}\n{idempotency_key}\n{index}"))


class IdempotencyStore:
    """The keys in ``"<schema>".idempotency_keys``, created on first use."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, window_seconds: float, takeover_seconds: float) -> None:
        self._pool = pool
        self._schema = schema
        self._table = f'"{schema}".idempotency_keys'
        self.window_seconds = window_seconds
        self.takeover_seconds = takeover_seconds
        self.migrate = MigrateOnce(pool, schema, [KEYS])

    async def claim(self, owner: uuid.UUID, keys: Sequence[tuple[str, str]]) -> list[Outcome]:
        """Claim each ``(key, fingerprint)`` for ``owner`` (the keys must differ); one outcome per key, in order.

        Keys are inserted in sorted order, so that two requests claiming overlapping sets lock
        them in the same order and never deadlock.
        """
        if not keys:
            return []
        await self.migrate()
        ordered = sorted(keys)
        names, prints = [key for key, _ in ordered], [print_ for _, print_ in ordered]
        claimed = {
            row["key"]
            for row in await self._pool.fetch(
                f"""
                insert into {self._table} as k (key, fingerprint, owner, state, claimed_at, expires_at)
                select u.key, u.fingerprint, $3, 'pending', now(), now() + make_interval(secs => $4)
                from unnest($1::text[], $2::text[]) as u(key, fingerprint)
                on conflict (key) do update set
                    fingerprint = excluded.fingerprint, owner = excluded.owner, state = 'pending',
                    claimed_at = excluded.claimed_at, expires_at = excluded.expires_at, status = null, response = null
                where k.expires_at <= now()
                   or (k.state = 'pending' and k.fingerprint = excluded.fingerprint
                       and k.claimed_at <= now() - make_interval(secs => $5))
                returning k.key
                """,
                names,
                prints,
                owner,
                self.window_seconds,
                self.takeover_seconds,
            )
        }
        held = {
            row["key"]: row
            for row in await self._pool.fetch(
                f"""
                select key, fingerprint, state, status, response,
                       extract(epoch from claimed_at + make_interval(secs => $2) - now())::float8 as wait
                from {self._table} where key = any($1::text[])
                """,
                [name for name in names if name not in claimed],
                self.takeover_seconds,
            )
        }
        return [self._outcome(key, print_, claimed, held) for key, print_ in keys]

    async def complete(self, owner: uuid.UUID, responses: Sequence[tuple[str, int, Any]]) -> None:
        """Store each ``(key, status, body)``: what a repeat of the key gets from now on."""
        if not responses:
            return
        await self._pool.execute(
            f"""
            update {self._table} as k set state = 'done', status = u.status, response = u.response::jsonb
            from unnest($1::text[], $2::int[], $3::text[]) as u(key, status, response)
            where k.key = u.key and k.owner = $4
            """,
            [key for key, _, _ in responses],
            [status for _, status, _ in responses],
            [json.dumps(body) for _, _, body in responses],
            owner,
        )

    async def release(self, owner: uuid.UUID, keys: Sequence[str]) -> None:
        """Give up claims whose request did not publish, so that a retry does."""
        if keys:
            await self._pool.execute(
                f"delete from {self._table} where key = any($1::text[]) and owner = $2 and state = 'pending'",
                list(keys),
                owner,
            )

    async def purge(self) -> int:
        """Delete expired keys (a chunk per statement, so no statement holds many locks); how many went."""
        await self.migrate()
        total = 0
        while True:
            status = await self._pool.execute(
                f"delete from {self._table} where key in "
                f"(select key from {self._table} where expires_at <= now() limit {_PURGE_CHUNK})"
            )
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < _PURGE_CHUNK:
                return total

    def _outcome(self, key: str, print_: str, claimed: set[str], held: dict[str, asyncpg.Record]) -> Outcome:
        if key in claimed:
            return Claimed()
        row = held.get(key)
        if row is None:  # purged between the two statements: it expired, so it is free; ask for a retry
            return InFlight(retry_after=1)
        if row["fingerprint"] != print_:
            return Mismatch()
        if row["state"] == "done":
            return Replay(row["status"], json.loads(row["response"]))
        return InFlight(retry_after=max(1, math.ceil(row["wait"])))

"""API tokens: created and revoked by operators (`xbus tokens`), verified on every HTTP request.

A token reads ``xbt_<id>_<secret>``: the ``xbt_`` prefix makes a leaked token easy to find with grep
or a secret scanner; the id (16 hex digits) finds its row and names it in lists and logs; the secret
is 32 random bytes from :mod:`secrets` (43 URL-safe characters). The token text is shown once, when it
is created, and never stored or logged: its row holds the SHA-256 of the secret. A fast hash is right
here, unlike for passwords: a secret of 256 random bits cannot be guessed from its hash however fast
the hash is, so a slow one (bcrypt, argon2) would only cost every request its time. The stored hash
is compared in constant time.

Verification runs on every request, so a verified row is kept in memory for ``cache_seconds``
(5 s by default): a revocation or expiry change made by another process (`xbus tokens revoke`)
takes effect within that time; one made through the same store, at once. Expiry itself is checked
on every request against the clock. ``last_used_at`` is written at most once a minute per token per
process, so that operators can find unused tokens without a write per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from consumers.runtime.migrations import MigrateOnce, Migration
from infrastructure.errors import XbusError
from xbus.api.scopes import parse_scope

log = structlog.get_logger("xbus.api.tokens")

PREFIX = "xbt_"
VERIFY_CACHE_SECONDS = 5.0
TOUCH_EVERY_SECONDS = 60.0
_SECRET_BYTES = 32
_TOKEN = re.compile(rf"^{PREFIX}([0-9a-f]{{16}})_([A-Za-z0-9_\-]{{43}})$")

TOKENS = Migration(
    "0001_api_tokens",
    """
    create table if not exists api_tokens (
        id text primary key,
        name text not null,
        scopes text[] not null check (cardinality(scopes) > 0),
        secret_hash bytea not null,
        created_at timestamptz not null default now(),
        expires_at timestamptz,
        revoked_at timestamptz,
        last_used_at timestamptz
    );
    """,
)
_COLUMNS = "id, name, scopes, created_at, expires_at, revoked_at, last_used_at"


class TokenError(XbusError):
    """A token that does not exist (revoke), or an expiry that cannot be (create)."""


class InvalidExpiry(TokenError):
    """An expiry in the past or unreadable; a usage error (exit code 2) on the command line."""

    exit_code = 2


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    #: When it last passed verification, to the minute; None if never.
    last_used_at: datetime | None = None

    def refusal(self, now: datetime) -> str | None:
        """Why the token may not be used at ``now`` ("revoked", "expired"), or None if it may."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


@dataclass(frozen=True)
class _Cached:
    secret_hash: bytes
    token: ApiToken
    loaded_at: float


class TokenStore:
    """The tokens of one deployment, in the table ``api_tokens`` of ``schema`` (created on first use)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, cache_seconds: float = VERIFY_CACHE_SECONDS) -> None:
        self._pool = pool
        self._schema = schema
        self._table = f'"{schema}".api_tokens'
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[str, float] = {}
        self.migrate = MigrateOnce(pool, schema, [TOKENS])

    async def create(self, name: str, scopes: Sequence[str], expires_at: datetime | None) -> tuple[ApiToken, str]:
        """A new token and its text, which is returned this once and can never be shown again."""
        checked = tuple(dict.fromkeys(parse_scope(scope) for scope in scopes))
        if not checked:
            raise TokenError("a token needs at least one scope (--scope)")
        if not name.strip():
            raise TokenError("a token needs a name saying who or what uses it")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidExpiry(f"the expiry {_iso(expires_at)} is in the past")
        await self.migrate()
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(_SECRET_BYTES)
        row = await self._pool.fetchrow(
            f"insert into {self._table} (id, name, scopes, secret_hash, expires_at) values ($1, $2, $3, $4, $5) "
            f"returning {_COLUMNS}",
            token_id,
            name.strip(),
            list(checked),
            _hash(secret),
            expires_at,
        )
        token = _token(row)
        log.info("api token created", token_id=token.id, name=token.name, scopes=list(token.scopes))
        return token, f"{PREFIX}{token_id}_{secret}"

    async def list(self) -> list[ApiToken]:
        await self.migrate()
        rows = await self._pool.fetch(f"select {_COLUMNS} from {self._table} order by created_at, id")
        return [_token(row) for row in rows]

    async def revoke(self, token_id: str) -> ApiToken:
        """Revoke for good (a second revoke keeps the first time); TokenError if there is no such token."""
        await self.migrate()
        row = await self._pool.fetchrow(
            f"update {self._table} set revoked_at = coalesce(revoked_at, now()) where id = $1 returning {_COLUMNS}",
            token_id,
        )
        self._cache.pop(token_id, None)
        if row is None:
            raise TokenError(f"there is no API token with id {token_id!r}; `xbus tokens list` shows them")
        token = _token(row)
        log.info("api token revoked", token_id=token.id, name=token.name)
        return token

    async def verify(self, secret: str) -> ApiToken | None:
        """The token whose text this is if it may be used now; None if unknown, expired or revoked."""
        token = await self.identify(secret)
        return token if token is not None and token.refusal(datetime.now(UTC)) is None else None

    async def identify(self, secret: str) -> ApiToken | None:
        """The token whose text this is, usable or not (so that a refusal can say why); None if there is none.

        Text that is not shaped like a token is refused without a query.
        """
        match = _TOKEN.match(secret)
        if match is None:
            return None
        token_id, presented = match.groups()
        cached = await self._row(token_id)
        if cached is None or not hmac.compare_digest(cached.secret_hash, _hash(presented)):
            return None
        if cached.token.refusal(datetime.now(UTC)) is None:
            await self._touch(token_id)
        return cached.token

    async def _row(self, token_id: str) -> _Cached | None:
        now = time.monotonic()
        cached = self._cache.get(token_id)
        if cached is not None and now - cached.loaded_at < self._cache_seconds:
            return cached
        await self.migrate()
        row = await self._pool.fetchrow(f"select {_COLUMNS}, secret_hash from {self._table} where id = $1", token_id)
        if row is None:  # unknown ids are not cached: anyone can make up as many as they like
            self._cache.pop(token_id, None)
            return None
        cached = self._cache[token_id] = _Cached(bytes(row["secret_hash"]), _token(row), now)
        return cached

    async def _touch(self, token_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(token_id)
        if last is not None and now - last < TOUCH_EVERY_SECONDS:
            return
        self._touched[token_id] = now
        await self._pool.execute(f"update {self._table} set last_used_at = now() where id = $1", token_id)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")

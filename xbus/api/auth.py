"""Who is calling, and may they: the FastAPI dependencies every route but the health checks uses.

``Depends(auth.token)`` answers 401 unless the request carries ``Authorization: Bearer <token>``
with a token that exists, has not expired and is not revoked, and 429 (with ``Retry-After``) when
the token has used up its rate; ``auth.require(token, scope)`` answers 403 naming the missing scope;
``Depends(auth.needs(scope))`` is both for a route that needs one fixed scope.

The token text never appears in a problem document or a log line: refusals name the token's id at
most, and only once its secret has been verified.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from fastapi import Request, Security
from fastapi.security import HTTPBearer

from xbus.api.ratelimit import TokenBuckets
from xbus.api.scopes import allows
from xbus.api.tokens import ApiToken, TokenStore
from xbus.problems import FieldError, Problem

log = structlog.get_logger("xbus.api.auth")

AUTHORIZATION = "Authorization"
#: Only for the OpenAPI document (the "Authorize" button of /docs, and clients generated from it):
#: the header is parsed below, so that each way of getting it wrong has its own answer.
_BEARER = HTTPBearer(auto_error=False, scheme_name="token", description="An API token: `xbus tokens create`.")


class Auth:
    """One per app: the token store to verify with, and the rate limit buckets of this process."""

    def __init__(self, store: TokenStore, buckets: TokenBuckets, refusals: TokenBuckets) -> None:
        self.store = store
        self.buckets = buckets
        #: Per client address, the 401s it may earn: a client guessing tokens (each guess a
        #: PostgreSQL look-up) is answered 429 before any look-up once it has used them up.
        self.refusals = refusals

    async def token(self, request: Request, _documented: object = Security(_BEARER)) -> ApiToken:
        """The calling token, verified and within its rate; a 401 or 429 problem otherwise."""
        address = request.client.host if request.client else "unknown"
        wait = self.refusals.waiting(address, time.monotonic())
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise Problem(
                429,
                "Too Many Requests",
                f"too many requests with a missing or refused token from {address}; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        try:
            return await self._verified(request)
        except Problem as refused:
            if refused.status == 401:
                self.refusals.take(address, time.monotonic())
            raise

    async def _verified(self, request: Request) -> ApiToken:
        header = request.headers.get(AUTHORIZATION)
        if header is None:
            raise _unauthorized("no token: send the header 'Authorization: Bearer <token>'")
        scheme, _, text = header.strip().partition(" ")
        text = text.strip()
        if scheme.lower() != "bearer" or not text or " " in text:
            raise _unauthorized(
                "the Authorization header must be 'Bearer <token>'",
                FieldError(AUTHORIZATION, "expected 'Bearer <token>'"),
                error="invalid_request",
            )
        token = await self.store.identify(text)
        if token is None:
            raise _unauthorized("the token is not valid", error="invalid_token")
        refusal = token.refusal(datetime.now(UTC))
        if refusal is not None:
            log.info("api token refused", token_id=token.id, name=token.name, reason=refusal)
            raise _unauthorized(f"the token was {refusal}", error="invalid_token")
        wait = self.buckets.take(token.id, time.monotonic())
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise Problem(
                429,
                "Too Many Requests",
                f"this token may make {self.buckets.rate_per_second:g} requests per second "
                f"(bursts of {self.buckets.burst}); retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        return token

    def require(self, token: ApiToken, scope: str) -> None:
        """A 403 problem unless ``token`` has ``scope`` (or a scope that includes it)."""
        if not allows(token.scopes, scope):
            raise Problem(
                403,
                "Forbidden",
                f"the token lacks scope {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )

    def needs(self, scope: str) -> Callable[..., Awaitable[ApiToken]]:
        """A dependency: the calling token, which must have ``scope``."""

        async def scoped(request: Request, _documented: object = Security(_BEARER)) -> ApiToken:
            token = await self.token(request)
            self.require(token, scope)
            return token

        return scoped


def _unauthorized(detail: str, *errors: FieldError, error: str | None = None) -> Problem:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return Problem(401, "Unauthorized", detail, errors=errors, headers={"WWW-Authenticate": challenge})

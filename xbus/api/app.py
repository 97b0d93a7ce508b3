"""The HTTP API of `xbus serve`: the FastAPI app, its error handling and its lifespan.

Every error is an RFC 9457 problem document (xbus/problems.py), whoever raises it: our
routes (Problem), FastAPI's request validation (one error per field, named by JSON Pointer or
header name), Starlette's routing (404, 405), the body limit (413), a database that does not answer
(503). Nothing a client sends is answered 500: a 500 is a bug, and is still a problem document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from infrastructure.endpoints import Endpoints
from infrastructure.settings import Settings
from producers.incoming import pointer
from xbus.api.documents import event_components
from xbus.api.events import events_router
from xbus.api.middleware import AccessLog, BodyLimit
from xbus.api.reads import mount_lag, reads_router
from xbus.api.resources import ApiResources
from xbus.problems import FieldError, Problem, problems_as_sent

log = structlog.get_logger("xbus.api")

DESCRIPTION = """\
Publish lifecycle events of the XOSP platform over HTTP, and read provisioning status and consumer lag.

**Tokens.** Every route but `/healthz`, `/readyz`, the `/lag` page and these docs needs `Authorization: Bearer <token>`
(`xbus tokens create`). Scopes: `publish:<event type pattern>` (per event), `read:status`, `read:lag`, `admin`.

**Errors** are RFC 9457 problem documents (`application/problem+json`); a bad request names each field
with a JSON Pointer into the body (`/data/email`, `/events/3/type`) or the header's name.

**Idempotency.** An event's `id`, or an `Idempotency-Key` header, repeated within the idempotency window
returns the first result and publishes nothing new.
"""

#: What a request gets from asyncpg when PostgreSQL is away: answered 503, not 500.
_DATABASE_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)


def create_app(settings: Settings, endpoints: Endpoints) -> FastAPI:
    """The app over its resources (``app.state.resources``). Call it inside the event loop that serves it."""
    resources = ApiResources(settings, endpoints)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        try:
            yield
        finally:
            await resources.stop()

    app = FastAPI(title="xosp-bus HTTP API", version=_version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.resources = resources
    app.include_router(events_router(resources))
    app.include_router(reads_router(resources))
    mount_lag(app, resources)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    for unavailable in _DATABASE_ERRORS:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(RecursionError, _nested_too_deeply)
    app.add_exception_handler(Exception, _bug)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(AccessLog)
    app.openapi = lambda: _openapi(app, resources.publishable, settings.api_max_batch)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, event_types: frozenset[str], max_batch: int) -> dict[str, Any]:
    """FastAPI's document plus the components the events routes' bodies refer to (every event model),
    with the problem responses described as they are sent."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        document.setdefault("components", {}).setdefault("schemas", {}).update(event_components(event_types, max_batch))
        app.openapi_schema = problems_as_sent(document)
    return app.openapi_schema


async def _problem(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response()


async def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [FieldError(_named(item["loc"]), item["msg"]) for item in error.errors()]
    named = ", ".join(dict.fromkeys(field.pointer or "the body" for field in errors))
    return Problem(422, "Invalid request", f"invalid: {named}", errors=errors).response()


def _named(loc: tuple[Any, ...]) -> str:
    """A validation error's location as the contract names fields: a header by its name, anything
    else (body, path and query parameters) by JSON Pointer (``/kind``)."""
    where, *path = loc
    if where == "header" and path:
        return str(path[0])
    return pointer(*path)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    title = HTTPStatus(error.status_code).phrase
    detail = error.detail if isinstance(error.detail, str) and error.detail != title else _detail(error.status_code)
    return Problem(error.status_code, title, detail, headers=error.headers or {}).response()


def _detail(status: int) -> str:
    if status == 404:
        return "no such route: /docs lists them"
    if status == 405:
        return "the route does not take this method: see the Allow header"
    return HTTPStatus(status).description


async def _database_unavailable(_: Request, error: Exception) -> JSONResponse:
    log.warning("PostgreSQL did not answer a request", error=f"{type(error).__name__}: {error}")
    detail = "PostgreSQL did not answer; retry later (GET /readyz says when the API is ready again)"
    return Problem(503, "Service Unavailable", detail, headers={"Retry-After": "5"}).response()


async def _nested_too_deeply(_: Request, error: Exception) -> JSONResponse:
    """A body nested just shallow enough to parse can still be too deep to hash or validate."""
    reason = "nested too deeply"
    return Problem(400, "Bad Request", f"the body is {reason}", errors=[FieldError("", reason)]).response()


async def _bug(_: Request, error: Exception) -> JSONResponse:
    log.error("request failed", error=f"{type(error).__name__}: {error}", exc_info=error)
    return Problem(500, "Internal Server Error", "the server failed; this is a bug, and it is logged").response()


def _version() -> str:
    try:
        return version("xosp-bus")
    except PackageNotFoundError:
        return "0"

"""ASGI middleware of the HTTP API: the request body limit, and one access log line and metric per request.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: the limit has to sit between the server
and whoever reads the body, message by message, and nothing here needs a Request object.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xbus.problems import Problem

log = structlog.get_logger("xbus.api.access")

REQUESTS = Counter(
    "xbus_api_requests", "HTTP API requests by route (its path template) and status.", ["method", "route", "status"]
)
DURATION = Histogram(
    "xbus_api_request_duration_seconds",
    "Time to answer an HTTP API request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class BodyLimit:
    """Answers 413 for a body over ``max_bytes``: at once from ``Content-Length``, and otherwise (a
    chunked body) as soon as the bytes received pass the limit, so that no more than the limit and
    one message of the server's is ever read. The 413 closes the connection: the rest of the body
    is not read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large().response()(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self.too_large()
            return message

        await self.app(scope, limited, send)

    def too_large(self) -> Problem:
        return Problem(
            413,
            "Content Too Large",
            f"the request body is larger than {self.max_bytes} bytes (XBUS_API_MAX_BODY_BYTES); send less, "
            "or split a batch",
            headers={"Connection": "close"},
        )


class AccessLog:
    """One structured log line per request: method, path (never the query string), status, time.

    Never a header: the Authorization header holds a token. The path is logged without its query
    string for the same reason (a client that puts a token there by mistake must not leak it into
    logs). Metrics are labelled by the matched route's template, not the path, so that requests
    for made-up paths cannot create new time series.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers, the server answers 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            DURATION.labels(route).observe(elapsed)
            emit = log.warning if status >= 500 else log.info
            emit(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round(elapsed * 1000, 1),
                client=scope["client"][0] if scope.get("client") else None,
            )

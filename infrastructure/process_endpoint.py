"""One HTTP port per process: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (JSON).

Served from a thread, not from the event loop, so that it still answers when the loop is blocked,
and can then say so: the health it reports carries the age of the last check, and a check that
is too old is itself a failure. ``/healthz`` is 503 while anything is stalled or unresponsive
(a liveness probe restarts the process); ``/readyz`` is 503 until every part has been checked
once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import REGISTRY, make_wsgi_app

from infrastructure.errors import XbusError

log = structlog.get_logger("xbus.health")


@dataclass(frozen=True)
class HealthReport:
    live: bool
    ready: bool
    body: dict[str, Any]
    #: Why it is not live or not ready, in a line: what a 503 logs.
    why: str = ""


class EndpointError(XbusError):
    exit_code = 2


class ProcessEndpoint:
    def __init__(self, host: str, port: int, health: Callable[[], HealthReport]) -> None:
        self._health = health
        self._metrics = make_wsgi_app(REGISTRY)
        try:
            self._server = make_server(host, port, self._app, _ThreadingServer, handler_class=_QuietHandler)
        except OSError as error:
            raise EndpointError(
                f"cannot serve /metrics and /healthz on {host}:{port} ({error.strerror}); "
                "set XBUS_METRICS_PORT to a free port, or 0 for any"
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="xbus-endpoint", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> ProcessEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path not in {"/healthz", "/readyz"}:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]
        report = self._health()
        good = report.live if path == "/healthz" else report.ready
        if not good:  # an orchestrator acts on it: the process says why, each time
            log.warning("health probe answered 503", path=path, why=report.why)
        body = json.dumps(report.body, indent=2).encode()
        start_response(
            "200 OK" if good else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds would flood stderr with access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

"""The `xbus monitor` web app: the lag routes, the page at /, Prometheus /metrics and /healthz.

The app only reads what the sampler kept; the sampler's loop runs beside the server (see
xbus/cli/monitor_cmd.py), so an app built over a sampler that was never run still answers, with
503s that say why.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from xbus.monitor.api import lag_router, page_response, page_router
from xbus.monitor.metrics import lag_registry
from xbus.monitor.sampler import LagSampler
from xbus.problems import problem


def create_app(sampler: LagSampler) -> FastAPI:
    app = FastAPI(
        title="xbus monitor",
        summary="Consumer lag of every group: Prometheus gauges, JSON and a live page.",
        version="1",
    )
    app.include_router(lag_router(sampler))
    app.include_router(page_router())
    registry = lag_registry(sampler)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return page_response()

    @app.get("/metrics", summary="Prometheus exposition of the latest lag report")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="200 while lag samples succeed; 503 once none has for a while")
    def healthz() -> Any:
        age = sampler.age()
        if age is None or age > sampler.stale_after:
            what = "no lag sample yet" if age is None else f"no good lag sample for {age:.0f} s"
            return problem(503, "Lag is not being sampled", f"{what}; last error: {sampler.last_error or 'none'}")
        return {"status": "ok", "last_sample_age_seconds": round(age, 3), "failures": sampler.failures}

    return app

"""The lag routes: the latest report, the history behind the charts, and the page that shows both.

A router factory, so that `xbus monitor` and the HTTP API of `xbus serve` mount the same routes
over their own sampler. The page polls the JSON routes by relative URL, so it works under any
mount point and behind a path-rewriting proxy.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from xbus.api.problems import problem
from xbus.monitor.sampler import LagSampler

#: The page: polls v1/lag and v1/lag/history every 2 s; no build step, nothing loaded from elsewhere.
PAGE = "lag_page.html"


@cache
def page_html() -> str:
    return files("xbus.monitor").joinpath(PAGE).read_text(encoding="utf-8")


def page_response() -> HTMLResponse:
    return HTMLResponse(page_html(), headers={"Cache-Control": "no-cache"})


def lag_router(sampler: LagSampler) -> APIRouter:
    router = APIRouter(tags=["lag"])

    @router.get("/v1/lag", summary="The latest lag report: every group, partition, status and the business lag")
    def latest() -> Any:
        if sampler.latest is None:
            return not_sampled_yet(sampler)
        return {**sampler.latest.to_json(), "interval_seconds": sampler.interval}

    @router.get("/v1/lag/history", summary="Per group, total lag, max lag seconds and status of each recent sample")
    def history() -> Any:
        if sampler.latest is None:
            return not_sampled_yet(sampler)
        return {
            "interval_seconds": sampler.interval,
            "groups": {group: [point.to_json() for point in points] for group, points in sampler.history().items()},
        }

    @router.get("/lag", response_class=HTMLResponse, summary="The live lag page")
    def page() -> HTMLResponse:
        return page_response()

    return router


def not_sampled_yet(sampler: LagSampler) -> JSONResponse:
    detail = "no lag sample has been taken yet; the first one is under way"
    if sampler.last_error is not None:
        detail = f"no lag sample could be taken yet: {sampler.last_error}"
    return problem(503, "No lag sample yet", detail, headers={"Retry-After": str(max(1, round(sampler.interval)))})

"""The lag routes: the latest report, the history behind the charts, and the page that shows both.

A router factory, so that `xbus monitor` and the HTTP API of `xbus serve` mount the same routes
over their own sampler. The page polls the JSON routes by relative URL, so it works under any
mount point and behind a path-rewriting proxy.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from xbus.lag.model import Status
from xbus.monitor.sampler import LagSampler
from xbus.problems import problem

#: The page: polls v1/lag and v1/lag/history every 2 s; no build step, nothing loaded from elsewhere.
PAGE = "lag_page.html"


@cache
def page_html() -> str:
    return files("xbus.monitor").joinpath(PAGE).read_text(encoding="utf-8")


def page_response() -> HTMLResponse:
    return HTMLResponse(page_html(), headers={"Cache-Control": "no-cache"})


#: A status by name, as the JSON says it (the README explains each).
StatusName = Annotated[str, Field(json_schema_extra={"enum": [status.name for status in Status]})]


class PartitionLagModel(BaseModel):
    """The OpenAPI description of ``PartitionReport.to_json()`` (xbus/lag/model.py)."""

    topic: str
    partition: int
    committed: int | None = Field(description="the next offset the group reads; null if it never committed")
    log_start: int
    log_end: int
    lag: int = Field(description="records not yet consumed")
    lag_seconds: float = Field(description="age of the first record not yet consumed; 0 when caught up")
    owner: str | None = Field(description="the member that owns the partition, where the broker says")
    status: StatusName
    reason: str = Field(description="why the status is what it is")
    time_to_loss_seconds: float | None = Field(description="until retention deletes unconsumed records; null if none")
    retention_at_risk: bool


class GroupMemberModel(BaseModel):
    member_id: str
    client_id: str
    host: str
    assignment: list[str] = Field(description="topic[partition] names; empty where the broker does not say")


class GroupLagModel(BaseModel):
    """The OpenAPI description of ``GroupReport.to_json()``."""

    group: str
    state: str = Field(description="the broker's state of the group (Stable, Empty...)")
    status: StatusName
    lag: int
    lag_seconds: float
    members: list[GroupMemberModel]
    partitions: list[PartitionLagModel]


class LagReportModel(BaseModel):
    """The OpenAPI description of ``LagReport.to_json()`` and the sampler's interval."""

    taken_at: str = Field(json_schema_extra={"format": "date-time"})
    retention_enforced: bool = Field(description="false on the embedded broker, which never deletes records")
    business: dict[str, float | None] = Field(
        description="per provisioning kind, seconds since the oldest flow not yet complete began; null if none"
    )
    groups: list[GroupLagModel]
    interval_seconds: float


class HistoryPointModel(BaseModel):
    """The OpenAPI description of ``HistoryPoint.to_json()`` (xbus/monitor/sampler.py)."""

    t: float = Field(description="Unix time of the sample")
    lag: int
    lag_seconds: float
    status: StatusName


class LagHistoryModel(BaseModel):
    interval_seconds: float
    groups: dict[str, list[HistoryPointModel]] = Field(description="per group, its samples, oldest first")


def lag_router(sampler: LagSampler) -> APIRouter:
    """The JSON routes declare their models: FastAPI checks each answer against them, so the
    OpenAPI document cannot drift from what ``to_json()`` produces."""
    router = APIRouter(tags=["lag"])

    @router.get(
        "/v1/lag",
        response_model=LagReportModel,
        summary="The latest lag report: every group, partition, status and the business lag",
    )
    def latest() -> Any:
        if sampler.latest is None:
            return not_sampled_yet(sampler)
        return {**sampler.latest.to_json(), "interval_seconds": sampler.interval}

    @router.get(
        "/v1/lag/history",
        response_model=LagHistoryModel,
        summary="Per group, total lag, max lag seconds and status of each recent sample",
    )
    def history() -> Any:
        if sampler.latest is None:
            return not_sampled_yet(sampler)
        return {
            "interval_seconds": sampler.interval,
            "groups": {group: [point.to_json() for point in points] for group, points in sampler.history().items()},
        }

    return router


def page_router() -> APIRouter:
    """The page at /lag: static HTML that holds no data, so it needs no token even where the data
    routes do (`xbus serve`); it sends the token given in its address (``/lag#token=...``)."""
    router = APIRouter(tags=["lag"])

    @router.get("/lag", response_class=HTMLResponse, summary="The live lag page (its data needs read:lag)")
    def page() -> HTMLResponse:
        return page_response()

    return router


def not_sampled_yet(sampler: LagSampler) -> JSONResponse:
    detail = "no lag sample has been taken yet; the first one is under way"
    if sampler.last_error is not None:
        detail = f"no lag sample could be taken yet: {sampler.last_error}"
    return problem(503, "No lag sample yet", detail, headers={"Retry-After": str(max(1, round(sampler.interval)))})

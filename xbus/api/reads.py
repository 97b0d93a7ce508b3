"""The read routes: event types with their schemas, provisioning status, lag, metrics, health.

/healthz says the process is up (for a liveness probe: no dependency is asked, so an outage of
Kafka or PostgreSQL never gets a healthy API process restarted). /readyz says whether it can work
now (for a readiness probe): the broker answers a metadata request and PostgreSQL ``select 1``,
each within :data:`READY_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Path, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field

from consumers.provisioning.flows import FlowState, StepState
from consumers.provisioning.queries import flows_of
from schemas import event_types
from schemas.export import event_schema
from schemas.provisioning import FlowKind
from xbus.api.resources import ApiResources
from xbus.api.scopes import READ_LAG, READ_STATUS
from xbus.api.tokens import ApiToken
from xbus.monitor import lag_registry, lag_router
from xbus.monitor.api import page_router
from xbus.problems import Problem, problem_responses

#: Seconds each dependency gets to answer a readiness check.
READY_TIMEOUT = 2.0


class EventType(BaseModel):
    type: str = Field(description="the CloudEvents type, e.g. xosp.user.created.v1")
    model: str
    topics: list[str] = Field(description="the topics.yaml names (or templates) of the topics that carry it")
    publishable: bool = Field(description="whether POST /v1/events takes it (an input event, of an upstream topic)")
    key: str = Field(description="the data field whose value is the aggregate id (Kafka key, CloudEvents subject)")
    json_schema: dict[str, Any] = Field(alias="schema", description="the JSON Schema of the event's data")


class Step(BaseModel):
    step: str
    service: str
    state: StepState
    time: str | None = Field(description="when the step last changed (RFC 3339); null while merely expected")
    reason: str | None


class Flow(BaseModel):
    flow_id: str
    kind: FlowKind
    entity_id: str
    started_by: str = Field(description="the event type that started the flow")
    state: FlowState
    started_at: str
    completed_at: str | None
    failed_at: str | None
    overdue_at: str | None = Field(
        description="when the tracker reported the flow overdue (RFC 3339); it may have completed since"
    )
    steps: list[Step]


class Provisioning(BaseModel):
    kind: FlowKind
    id: str
    flows: list[Flow] = Field(description="every flow of the entity, oldest first")


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    broker: str = "ok"
    database: str = "ok"


def reads_router(resources: ApiResources) -> APIRouter:
    router = APIRouter()
    auth = resources.auth
    types = _event_types(resources)

    @router.get(
        "/v1/event-types",
        response_model=list[EventType],
        responses=problem_responses(401, 429, 503),
        tags=["events"],
        summary="Every event type with its topic, key and JSON Schema (any valid token)",
    )
    async def event_types(token: ApiToken = Depends(auth.token)) -> JSONResponse:
        return JSONResponse(types)

    @router.get(
        "/v1/provisioning/{kind}/{entity_id}",
        response_model=Provisioning,
        responses=problem_responses(401, 403, 404, 422, 429, 503),
        tags=["provisioning"],
        summary="The provisioning flows of a user (login id), operator, account or exchange, with every step",
    )
    async def provisioning(
        kind: FlowKind,
        entity_id: str = Path(
            min_length=1,
            max_length=512,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="login id, operator id, account (OWNER:ACCOUNT) or exchange code",
        ),
        token: ApiToken = Depends(auth.needs(READ_STATUS)),
    ) -> JSONResponse:
        try:
            flows = await flows_of(resources.pool, kind, entity_id, schema=resources.settings.db_schema("provisioning"))
        except asyncpg.UndefinedTableError:  # the tracker has never run on this database
            flows = []
        if not flows:
            raise Problem(404, "Not Found", f"no provisioning flow of {kind.value} {entity_id!r} is known")
        return JSONResponse({"kind": kind.value, "id": entity_id, "flows": [flow.to_json() for flow in flows]})

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
            **problem_responses(401, 403, 429, 503),
        },
        tags=["lag"],
        summary="Prometheus: this process's metrics and the lag of every consumer group",
    )
    async def metrics(token: ApiToken = Depends(auth.needs(READ_LAG))) -> Response:
        text = generate_latest(REGISTRY) + generate_latest(lag_registry(resources.sampler))
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", response_model=Health, tags=["health"], summary="200 while the process is up (no token)")
    async def healthz() -> Health:
        return Health()

    @router.get(
        "/readyz",
        response_model=Ready,
        responses=problem_responses(503),
        tags=["health"],
        summary="200 when the broker and PostgreSQL answer; 503 naming what does not (no token)",
    )
    async def readyz() -> Ready:
        broker, database = await asyncio.gather(_broker_down(resources), _database_down(resources))
        down = [f"{name}: {reason}" for name, reason in (("broker", broker), ("database", database)) if reason]
        if down:
            raise Problem(503, "Not Ready", "; ".join(down), headers={"Retry-After": "5"})
        return Ready()

    return router


def mount_lag(app: FastAPI, resources: ApiResources) -> None:
    """The monitor's lag routes (/v1/lag, /v1/lag/history) behind ``read:lag``, and its page, which
    holds no data, open: a browser cannot send a header when it opens a page (the page sends the
    token it is given in its address fragment, which never reaches a server or a log)."""
    app.include_router(
        lag_router(resources.sampler),
        dependencies=[Depends(resources.auth.needs(READ_LAG))],
        responses=problem_responses(401, 403, 429, 503),
    )
    app.include_router(page_router())


def _event_types(resources: ApiResources) -> list[dict[str, Any]]:
    """Computed once: the registry and the catalogue do not change while the process runs."""
    return [
        {
            "type": model.event_type,
            "model": model.__name__,
            "topics": resources.catalogue.carriers(model.event_type),
            "publishable": model.event_type in resources.publishable,
            "key": model.aggregate_field,
            "schema": event_schema(model),
        }
        for model in event_types.models()
    ]


async def _broker_down(resources: ApiResources) -> str | None:
    try:
        await asyncio.wait_for(resources.admin.list_topics(), READY_TIMEOUT)
    except TimeoutError:
        return f"no answer to a metadata request within {READY_TIMEOUT:g} s"
    except (KafkaError, OSError) as error:
        return f"{type(error).__name__}: {error}"
    return None


async def _database_down(resources: ApiResources) -> str | None:
    try:
        await asyncio.wait_for(resources.pool.fetchval("select 1"), READY_TIMEOUT)
    except TimeoutError:
        return f"no answer to select 1 within {READY_TIMEOUT:g} s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"{type(error).__name__}: {error}"
    return None

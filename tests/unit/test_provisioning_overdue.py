"""Overdue flows: the tracker's timer reports a flow still open after XBUS_PROVISIONING_OVERDUE_SECONDS
once, with ``ProvisioningOverdue``; the retired ``ProvisioningStalled`` (``xosp.provisioning.stalled.v1``)
is no longer sent but its records, already on the topic, still parse."""

from __future__ import annotations

import datetime as dt
import json
from typing import cast

from aiokafka import ConsumerRecord

import schemas
from consumers.provisioning.overdue import OVERDUE
from consumers.provisioning.service import SERVICE
from consumers.provisioning.store import Flows
from consumers.runtime import FakeUnitOfWork, TimerUnit
from consumers.runtime.timers import TICK_TYPE
from consumers.runtime.unit_of_work import DbConnection
from infrastructure.catalogue import Catalogue
from infrastructure.reader import decode
from infrastructure.settings import PROJECT_ROOT, load_settings
from schemas import Envelope, Event
from schemas.provisioning import FlowKind, ProvisioningOverdue, ProvisioningStalled
from schemas.users import UserDisabled
from tests.support.memory_provisioning import MemoryFlows

OLD_TYPE = "xosp.provisioning.stalled.v1"


async def start(event: Event, flows: MemoryFlows) -> Envelope:
    """``event`` applied by the tracker's own wiring: the flow it starts, by its cause."""
    unit: FakeUnitOfWork[Flows] = FakeUnitOfWork.handling(event, flows, service="provisioning")
    await SERVICE.by_type[event.event_type](event, unit)
    return unit.cause


async def tick(flows: MemoryFlows, at: dt.datetime) -> TimerUnit:
    """One tick of the tracker's timer at ``at``, over ``flows``, as the runtime would run it."""
    cause = Envelope.new(type=TICK_TYPE, subject=OVERDUE.name, source="test", time=at)
    unit = TimerUnit(
        cast(DbConnection, None),
        cause,
        "xbus/provisioning",
        "provisioning",
        store=flows,
        timer=OVERDUE.name,
        settings=load_settings(provisioning_overdue_seconds=60.0),
    )
    await OVERDUE.fn(unit)
    return unit


async def test_a_flow_open_past_the_overdue_time_is_reported_once_with_provisioning_overdue() -> None:
    flows = MemoryFlows()
    cause = await start(UserDisabled(login_id="od-1", reason="left"), flows)
    flow_id, started = cause.id, cause.time

    assert (await tick(flows, started + dt.timedelta(seconds=59))).recorded == []
    [recorded] = (await tick(flows, started + dt.timedelta(seconds=61))).recorded
    assert recorded.event == ProvisioningOverdue(
        flow_id=flow_id,
        kind=FlowKind.USER,
        entity_id="od-1",
        silent_steps=("authentication.disable", "authorisation.revoke", "sessions.end"),
        silent_seconds=61,
    )
    assert recorded.envelope.type == "xosp.provisioning.overdue.v1" and recorded.envelope.causation_id == flow_id
    assert flows.flows[flow_id].overdue_at == started + dt.timedelta(seconds=61)
    assert (await tick(flows, started + dt.timedelta(seconds=600))).recorded == []  # once per flow
    assert SERVICE.timers == (OVERDUE,) and OVERDUE.name == "overdue"


def test_an_old_stalled_record_still_parses_and_is_still_routed_to_the_provisioning_topic() -> None:
    """Records written before the rename stay on xosp.provisioning.events (30 days) and in dead
    letters: `xbus tail`, replays and redrives must still read them."""
    data = {
        "flow_id": "0195f7a2-old-flow",
        "kind": "user",
        "entity_id": "u-old",
        "silent_steps": ["authorisation.revoke", "sessions.end"],
        "silent_seconds": 301,
    }
    envelope = Envelope.new(type=OLD_TYPE, subject="0195f7a2-old-flow", source="xbus/provisioning")
    record = ConsumerRecord(
        topic="xosp.provisioning.events",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"0195f7a2-old-flow",
        value=json.dumps(data).encode(),
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=-1,
        headers=envelope.to_headers(),
    )

    read = decode(record)
    assert read.problem is None and read.envelope is not None and read.envelope.type == OLD_TYPE
    event = schemas.event_types.parse(read.envelope.type, json.dumps(read.data))
    assert isinstance(event, ProvisioningStalled)
    assert (event.flow_id, event.silent_steps, event.silent_seconds) == (
        "0195f7a2-old-flow",
        ("authorisation.revoke", "sessions.end"),
        301,
    )
    catalogue = Catalogue.load(PROJECT_ROOT / "topics.yaml", schemas.event_types)
    for type_name in (OLD_TYPE, ProvisioningOverdue.event_type):
        assert catalogue.carriers(type_name) == ["xosp.provisioning.events"]


def test_the_retired_and_the_new_type_have_the_same_fields() -> None:
    new, old = ProvisioningOverdue.model_json_schema(), ProvisioningStalled.model_json_schema()
    assert (new["properties"], new["required"]) == (old["properties"], old["required"])
    assert "no longer emitted" in (ProvisioningStalled.__doc__ or "")

"""Wiring of the provisioning tracker: every flow-starting input event and every step report."""

from __future__ import annotations

from pathlib import Path

from consumers.provisioning import handlers
from consumers.provisioning.flows import COMPLETES, STARTERS
from consumers.provisioning.overdue import OVERDUE
from consumers.provisioning.store import PostgresFlows
from consumers.runtime import Handler, Service
from schemas import Envelope, Event, event_types
from schemas.authentication import LoginProvisioned
from schemas.operators import ManualActionCompleted
from schemas.provisioning import StepFailed, StepWaiting
from schemas.users import UserCreated, UserEnabled, UserSessionPolicyRemoved, UserUpdated

_HANDLERS: dict[type[Event], Handler] = {
    **dict.fromkeys(map(event_types.model, STARTERS), handlers.flow_started),
    UserCreated: handlers.user_created,
    UserEnabled: handlers.user_enabled,
    UserUpdated: handlers.user_updated,
    UserSessionPolicyRemoved: handlers.session_policy_removed,
    **dict.fromkeys(map(event_types.model, COMPLETES), handlers.step_done),
    LoginProvisioned: handlers.login_provisioned,
    ManualActionCompleted: handlers.manual_action_completed,
    StepWaiting: handlers.step_waiting,
    StepFailed: handlers.step_failed,
}


def flow_locked(event: Event, envelope: Envelope) -> list[str]:
    """The flow an event touches, locked for its whole batch before any handler runs
    (``Service.locks``): a report names its flow, an upstream event starts the flow its own id
    names. A flow's reports come from several topics at once; locked as each handler went, two
    batches holding each other's flows deadlocked (16 times in bench/flows.py's backlog)."""
    flow_id = getattr(event, "flow_id", None)
    return [f"flow:{flow_id if isinstance(flow_id, str) else envelope.id}"]


SERVICE = Service(
    name="provisioning",
    handlers=_HANDLERS,
    locks=flow_locked,
    store=PostgresFlows,
    migrations=Path(__file__).parent / "sql",
    timers=(OVERDUE,),
    description="The provisioning tracker: flows, their steps' state, outcomes, failures and overdue flows.",
)

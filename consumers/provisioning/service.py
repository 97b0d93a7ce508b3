"""Wiring of the provisioning tracker: every flow-starting input event and every step report."""

from __future__ import annotations

from pathlib import Path

from consumers.provisioning import handlers
from consumers.provisioning.flows import COMPLETES, STARTERS
from consumers.provisioning.stalls import STALLS
from consumers.runtime import Handler, Service
from schemas.authentication import LoginProvisioned
from schemas.operators import ManualActionCompleted
from schemas.provisioning import StepFailed, StepWaiting
from schemas.users import UserCreated, UserEnabled, UserUpdated

_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(STARTERS, handlers.flow_started),
    UserCreated.event_type: handlers.user_created,
    UserEnabled.event_type: handlers.user_enabled,
    UserUpdated.event_type: handlers.user_updated,
    **dict.fromkeys(COMPLETES, handlers.step_done),
    LoginProvisioned.event_type: handlers.login_provisioned,
    ManualActionCompleted.event_type: handlers.manual_action_completed,
    StepWaiting.event_type: handlers.step_waiting,
    StepFailed.event_type: handlers.step_failed,
}

SERVICE = Service(
    name="provisioning",
    handlers=_HANDLERS,
    migrations=Path(__file__).parent / "sql",
    timers=(STALLS,),
    description="The provisioning tracker: flows, their steps' state, outcomes, failures and stalls.",
)

"""Flows and steps: what the provisioning tracker follows, and the events that report on them.

A **flow** is what one upstream event sets in motion (a user created, an account opened, a
user disabled...). Its id is that event's envelope id, so it is known to every service that
handles the event, and to one that applies it later (an event kept pending until the login it
names arrives keeps the flow id with it). A **step** is one service's part of a flow, named
``<service>.<what>`` (``authentication.login``, ``registry.account``).

Services report a step done with their own follow-up event, which carries ``flow_id`` (for
example ``LoginProvisioned``); a step that waits on something (an unknown login) or that is
refused (closing an account that still holds cash) is reported with :class:`StepWaiting` or
:class:`StepFailed`, the two event types every service's follow-up topic carries. The tracker
answers with the flow's outcome on ``xosp.provisioning.events``, keyed by flow id so that a
flow's events stay in order.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.event import Event
from schemas.types import ExchangeCode, LoginId, NonEmpty, OperatorId, OperatorSystem, TradingAccountId

#: The id of the upstream event that started the flow.
FlowId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]
#: ``<service>.<what>``, for example ``authorisation.access``.
StepName = Annotated[str, Field(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=64)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class FlowKind(StrEnum):
    USER = "user"
    OPERATOR = "operator"
    ACCOUNT = "account"
    EXCHANGE = "exchange"


class StepWaiting(Event):
    """A step cannot be taken yet (a login the event names is unknown): kept, applied later, never lost."""

    event_type = "xosp.step.waiting.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    service: NonEmpty
    step: StepName
    reason: Reason
    #: What the step waits for, for example ``login:<login id>``.
    waiting_for: tuple[NonEmpty, ...] = ()


class StepFailed(Event):
    """A service refused its step for a reason of the domain; the tracker fails the flow."""

    event_type = "xosp.step.failed.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    service: NonEmpty
    step: StepName
    reason: Reason


#: Carried by every service's follow-up topic (each service publishes them on its own).
STEP_REPORTS: tuple[type[Event], ...] = (StepWaiting, StepFailed)


class UserProvisioned(Event):
    event_type = "xosp.user.provisioned.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    login_id: LoginId
    steps: tuple[StepName, ...]


class OperatorProvisioned(Event):
    event_type = "xosp.operator.provisioned.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    operator_id: OperatorId
    steps: tuple[StepName, ...]


class TradingAccountProvisioned(Event):
    event_type = "xosp.account.provisioned.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    account_id: TradingAccountId
    steps: tuple[StepName, ...]


class ExchangeOnboarded(Event):
    """The exchange's feed runs, its OMS adapter takes orders and, where asked, the registry settles it."""

    event_type = "xosp.exchange.onboarded.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    exchange: ExchangeCode
    steps: tuple[StepName, ...]


class ChangeApplied(Event):
    """A change flow (disable, link, suspend, deposit...) is complete everywhere it had to go."""

    event_type = "xosp.change.applied.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    kind: FlowKind
    entity_id: NonEmpty
    #: The event type that started it, for example ``xosp.user.disabled.v1``.
    change: NonEmpty
    steps: tuple[StepName, ...]


class ManualActionRequired(Event):
    """A step with no API (the Prodigy operator): a person does it and sends ``ManualActionCompleted``."""

    event_type = "xosp.manual_action.required.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    step: StepName
    system: OperatorSystem
    operator_id: OperatorId
    instructions: Reason


class ProvisioningOverdue(Event):
    """A flow is overdue: steps neither done nor failed XBUS_PROVISIONING_OVERDUE_SECONDS after it started.

    Sent once per flow by the tracker's timer; a late report still completes the flow. It replaced
    ``ProvisioningStalled`` (same fields) so that "stall" means one thing in the project: a Kafka
    partition whose committed offset does not move while it has lag.
    """

    event_type = "xosp.provisioning.overdue.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    kind: FlowKind
    entity_id: NonEmpty
    silent_steps: tuple[StepName, ...]
    silent_seconds: Annotated[int, Field(ge=0)]


class ProvisioningStalled(Event):
    """Retired, no longer emitted: replaced by ``ProvisioningOverdue`` (xosp.provisioning.overdue.v1).

    Kept registered, its fields unchanged, so that the records already on
    ``xosp.provisioning.events`` and in dead letters still replay and parse.
    """

    event_type = "xosp.provisioning.stalled.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    kind: FlowKind
    entity_id: NonEmpty
    silent_steps: tuple[StepName, ...]
    silent_seconds: Annotated[int, Field(ge=0)]


class ProvisioningFailed(Event):
    """A step of the flow was refused; services undo what they did for it (compensation)."""

    event_type = "xosp.provisioning.failed.v1"
    aggregate_field = "flow_id"

    flow_id: FlowId
    kind: FlowKind
    entity_id: NonEmpty
    service: NonEmpty
    step: StepName
    reason: Reason

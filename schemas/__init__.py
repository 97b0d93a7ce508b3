"""Event models of xosp-bus: the CloudEvents envelope and every versioned event.

Importing this package registers every model in :data:`schemas.event_types`.
"""

from schemas import (
    accounts,
    authentication,
    authorisation,
    exchanges,
    gateway,
    groups,
    market_data,
    oms,
    operators,
    orders,
    provisioning,
    registry,
    session_pools,
    sessions,
    users,
)
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import (
    Event,
    EventTypes,
    UnknownEventType,
    describe_validation_error,
    event_types,
)

__all__ = [
    "Envelope",
    "EnvelopeError",
    "Event",
    "EventTypes",
    "UnknownEventType",
    "accounts",
    "authentication",
    "authorisation",
    "describe_validation_error",
    "event_types",
    "exchanges",
    "gateway",
    "groups",
    "market_data",
    "oms",
    "operators",
    "orders",
    "provisioning",
    "registry",
    "session_pools",
    "sessions",
    "users",
]

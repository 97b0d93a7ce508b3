"""Event models of xosp-bus: the CloudEvents envelope and every versioned event.

Importing this package registers every model in :data:`schemas.registry`.
"""

from schemas import (
    accounts,
    authentication,
    authorisation,
    exchanges,
    foundry,
    gateway,
    market_data,
    oms,
    operators,
    orders,
    provisioning,
    sessions,
    users,
)
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import (
    Event,
    EventRegistry,
    UnknownEventType,
    describe_validation_error,
    registry,
)

__all__ = [
    "Envelope",
    "EnvelopeError",
    "Event",
    "EventRegistry",
    "UnknownEventType",
    "accounts",
    "authentication",
    "authorisation",
    "describe_validation_error",
    "exchanges",
    "foundry",
    "gateway",
    "market_data",
    "oms",
    "operators",
    "orders",
    "provisioning",
    "registry",
    "sessions",
    "users",
]

"""aiokafka client options from settings: bootstrap, client id, SASL and TLS, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.helpers import create_ssl_context

from infrastructure.settings import SecurityProtocol, Settings


def client_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Keyword arguments every aiokafka client (producer, consumer, admin) takes."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    if settings.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            password=settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None,
        )
    if settings.kafka_sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options


@dataclass(frozen=True)
class MemberTiming:
    """A consumer group member's timing: the settings where given, else the connected broker's
    defaults (infrastructure/brokers.py: member_timing)."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    fetch_max_wait_ms: int


def member_options(settings: Settings, bootstrap: str, group: str, timing: MemberTiming) -> dict[str, Any]:
    """Keyword arguments of a consumer group member as xbus runs one: offsets committed by hand
    once the work is done, a group without offsets reading from the beginning, and the session
    and fetch timing the broker needs (infrastructure/brokers.py says why each is what it is)."""
    return {
        **client_options(settings, bootstrap),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": timing.session_timeout_ms,
        "heartbeat_interval_ms": timing.heartbeat_interval_ms,
        "fetch_max_wait_ms": timing.fetch_max_wait_ms,
    }

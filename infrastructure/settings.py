"""Settings from ``XBUS_*`` environment variables (pydantic-settings).

With neither ``XBUS_KAFKA_BOOTSTRAP`` nor ``XBUS_DATABASE_URL`` set, xbus runs on its embedded
stack under ``XBUS_DATA_DIR``. A bad value stops the program with one line naming the variable.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infrastructure.errors import SettingsError

ENV_PREFIX = "XBUS_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: Settings renamed (old field → new field): the old variable, still set, stops the program with
#: one line naming the new one rather than being silently ignored.
RENAMED = {"provisioning_stall_seconds": "provisioning_overdue_seconds"}


#: What a yes-or-no setting may be written as (pydantic's words for a boolean).
_BOOLEAN_WORDS = {"true", "false", "on", "off", "yes", "no", "1", "0", "t", "f", "y", "n"}


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class EmbeddedBrokerChoice(StrEnum):
    """Which broker the embedded stack starts: Apache Kafka where it is installed, else Tansu."""

    AUTO = "auto"
    KAFKA = "kafka"
    TANSU = "tansu"


class LogFormat(StrEnum):
    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    #: Apache Kafka bootstrap servers, ``host:port[,host:port...]``; unset = embedded broker.
    kafka_bootstrap: str | None = None
    #: PostgreSQL URL (``postgresql://user:pass@host:5432/db``); unset = embedded PostgreSQL.
    database_url: str | None = None
    #: Where the embedded stack keeps its state, PostgreSQL data and logs.
    data_dir: Path = Path(".xbus")
    #: The embedded broker: Apache Kafka (durable; needs Java 17+ and dev.py's download), Tansu
    #: (memory only; needs nothing), or ``auto``: Apache Kafka where it is installed.
    embedded_broker: EmbeddedBrokerChoice = EmbeddedBrokerChoice.AUTO
    #: Port of the embedded broker; 0 picks a free one.
    embedded_kafka_port: int = Field(default=0, ge=0, le=65535)
    client_id: str = Field(default="xbus", min_length=1, max_length=100)
    #: CloudEvents ``source`` of events this process publishes.
    source: str = Field(default="xbus", min_length=1, max_length=512)
    #: Prepended to every topic name of topics.yaml (isolates tests or tenants on one cluster).
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._\-]*$", max_length=100)
    #: Prepended to consumer group ids; unset: the topic prefix. A new prefix makes new groups that read
    #: the topics from the beginning (a replay into a fresh schema) without touching the running ones.
    group_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._\-]*$", max_length=100)
    #: Prepended to each service's PostgreSQL schema name (isolates tests or tenants in one database).
    db_schema_prefix: str = Field(default="", pattern=r"^[a-z0-9_]*$", max_length=40)
    topics_file: Path = PROJECT_ROOT / "topics.yaml"
    #: Consumer group timing; unset, the connected broker's defaults (infrastructure/brokers.py): Kafka's own
    #: 45 s session on Apache Kafka, 6 s on Tansu, which makes a joining member wait half of it.
    consumer_session_timeout_ms: int | None = Field(default=None, ge=1_000, le=300_000)
    consumer_heartbeat_interval_ms: int | None = Field(default=None, ge=100, le=60_000)
    #: How long a consumer's fetch may wait for data; unset, 500 ms on Apache Kafka (which answers
    #: as soon as records arrive) and 20 ms on Tansu (which answers up to about half the wait later).
    consumer_fetch_max_wait_ms: int | None = Field(default=None, ge=1, le=10_000)
    #: A partition with lag whose committed offset has not moved for this long is reported stalled.
    stall_after_seconds: float = Field(default=60.0, gt=0, le=86_400)
    #: A transaction applying several partitions' records that runs longer than this is rolled back
    #: and its partitions are applied one by one, so that one slow or stuck event holds back only
    #: its own partition (consumers/runtime/runner.py).
    batch_split_seconds: float = Field(default=1.0, gt=0, le=3_600)
    #: How long an event may wait for its prerequisite (an update for its create) before it is
    #: dead-lettered; until then it is applied the moment its prerequisite is.
    pending_timeout_seconds: float = Field(default=3_600.0, gt=0, le=30 * 86_400)
    #: How often each runner's watchdog samples lag and stall state.
    health_interval_seconds: float = Field(default=5.0, gt=0, le=3_600)
    #: On SIGTERM, how long batches under way may take to apply and commit before they are abandoned.
    stop_grace_seconds: float = Field(default=30.0, gt=0, le=3_600)
    #: The provisioning tracker reports a flow whose expected steps are not all done this long after
    #: it started as overdue (once per flow: ``ProvisioningOverdue``).
    provisioning_overdue_seconds: float = Field(default=300.0, gt=0, le=30 * 86_400)
    #: Port of a process's /metrics and /healthz endpoint (`xbus run`); 0 picks a free port.
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    #: Where /metrics and /healthz listen: this host only unless told otherwise, since they answer
    #: anyone (a container that is scraped from elsewhere sets 0.0.0.0, as docker-compose.yml does).
    metrics_host: str = Field(default="127.0.0.1", min_length=1)
    #: `xbus serve`: where the HTTP API listens (0.0.0.0 to be reached from other hosts).
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: Largest request body the API reads; a larger one is answered 413 without being read.
    api_max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    #: Most events in one POST /v1/events/batch.
    api_max_batch: int = Field(default=500, ge=1, le=10_000)
    #: Requests per second each token may make (a token bucket of ``api_rate_burst``), per API process.
    api_rate_per_second: float = Field(default=50.0, gt=0, le=1_000_000)
    api_rate_burst: int = Field(default=100, ge=1, le=1_000_000)
    #: Requests with a missing or refused token each client address may make per second (bursts of
    #: ``api_refusal_burst``) before it is answered 429 without its token being looked up.
    api_refusals_per_second: float = Field(default=1.0, gt=0, le=1_000_000)
    api_refusal_burst: int = Field(default=20, ge=1, le=1_000_000)
    #: How long a repeated event id or Idempotency-Key returns the first result instead of publishing again.
    api_idempotency_window_seconds: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "info"
    #: Whether this deployment runs the Foundry Registry (the reference deployment's ``UsingFoundry``).
    #: With it, the registry is the book of record of cash and holdings: it settles every exchange's
    #: fills, takes deposits, withdrawals and closings, and the OMS mirrors it. Without it, the
    #: registry service is not run and the OMS is the book (docs/operations.md, "Without the registry").
    registry: bool = True

    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    #: Time to wait for the broker on start-up and for each request.
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1_000, le=600_000)

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_setting(cls, data: object) -> object:
        """A renamed variable still set would be ignored without a word: stop and name the new one."""
        environment = {name.upper() for name in os.environ}
        given = {str(name).lower() for name in data} if isinstance(data, dict) else set()
        for old, new in RENAMED.items():
            if f"{ENV_PREFIX}{old}".upper() in environment or old in given:
                raise _SettingProblem(old, f"was renamed to {ENV_PREFIX}{new.upper()}; set that instead")
        return data

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_port_list(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server.strip()!r} is not host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return value.lower()

    @field_validator("registry", mode="before")
    @classmethod
    def _yes_or_no(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in _BOOLEAN_WORDS:
            raise ValueError("must be true or false (also on/off, yes/no, 1/0)")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value

    @model_validator(mode="after")
    def _security_is_complete(self) -> Self:
        sasl = self.kafka_security_protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)
        if sasl and self.kafka_sasl_mechanism is None:
            raise _SettingProblem("kafka_sasl_mechanism", f"is required with {self.kafka_security_protocol}")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise _SettingProblem("kafka_sasl_username", "and XBUS_KAFKA_SASL_PASSWORD are required with SASL")
        if self.kafka_sasl_mechanism is not None and not sasl:
            raise _SettingProblem("kafka_security_protocol", "must be SASL_PLAINTEXT or SASL_SSL to use SASL")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise _SettingProblem("kafka_ssl_certfile", "and XBUS_KAFKA_SSL_KEYFILE must be given together")
        return self

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def topic(self, name: str) -> str:
        """The physical name of a catalogue topic."""
        return f"{self.topic_prefix}{name}"

    def group(self, group_id: str) -> str:
        """The physical consumer group id: groups are isolated by the same prefix as topics."""
        return f"{self.topic_prefix if self.group_prefix is None else self.group_prefix}{group_id}"

    def db_schema(self, service: str) -> str:
        return f"{self.db_schema_prefix}{service}"


class _SettingProblem(ValueError):
    """A cross-field problem that still names the one variable to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`SettingsError` with one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        context = first.get("ctx", {})
        problem = context.get("error") if isinstance(context.get("error"), _SettingProblem) else None
        if problem is not None:
            name, message = problem.field, problem.message
        else:
            name = str(first["loc"][0]) if first["loc"] else "settings"
            message = first["msg"].removeprefix("Value error, ")
        value = "" if problem is not None else _shown_input(name, first.get("input"))
        raise SettingsError(f"invalid setting {ENV_PREFIX}{name.upper()}{value}: {message}") from None


def child_environment(settings: Settings, bootstrap: str, database_url: str) -> dict[str, str]:
    """The environment of an `xbus` command started in a process of its own on this broker,
    database, topics and schemas, in the same kind of deployment (with or without the registry):
    the caller's environment without its own XBUS_* settings,
    which would otherwise win over these (tests and benchmarks start services this way)."""
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)},
        f"{ENV_PREFIX}KAFKA_BOOTSTRAP": bootstrap,
        f"{ENV_PREFIX}DATABASE_URL": database_url,
        f"{ENV_PREFIX}TOPIC_PREFIX": settings.topic_prefix,
        f"{ENV_PREFIX}DB_SCHEMA_PREFIX": settings.db_schema_prefix,
        f"{ENV_PREFIX}REGISTRY": str(settings.registry).lower(),
    }


def _shown_input(name: str, value: object) -> str:
    """Echo the bad value, except secrets: a password never reaches a terminal or a log."""
    if value is None or isinstance(value, dict) or "password" in name:
        return ""
    return f"={value!s}"

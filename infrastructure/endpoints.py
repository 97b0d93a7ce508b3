"""Where the broker and the database are, starting the embedded stack when nothing is configured.

Every command that talks to Kafka or PostgreSQL goes through :func:`connect`, so "no settings"
always means "the embedded stack under XBUS_DATA_DIR", started on first use, with topics.yaml
applied to a new broker before any client produces or subscribes (the embedded broker would
otherwise auto-create topics with 4 partitions).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

import schemas
from infrastructure.brokers import BrokerKind, broker_traits, remember
from infrastructure.catalogue import Catalogue
from infrastructure.embedded.stack import EmbeddedStack
from infrastructure.kafka_clients import admin_client
from infrastructure.settings import Settings
from infrastructure.topic_admin import ApplyReport, apply_topics

log = structlog.get_logger("xbus.endpoints")


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    #: What the broker at ``kafka_bootstrap`` is (the embedded stack knows; an external one is asked).
    broker: BrokerKind


def load_catalogue(settings: Settings) -> Catalogue:
    return Catalogue.load(settings.topics_file, schemas.event_types)


async def connect(settings: Settings, *, database: bool = True) -> Endpoints:
    """The endpoints to use; starts whatever embedded part is needed and not running. A command
    that needs the broker only says ``database=False``: no embedded PostgreSQL is started for it
    (its endpoints' database URL is then whatever is configured, maybe empty)."""
    embedded_database = settings.embedded_database and database
    if not (settings.embedded_kafka or embedded_database):
        assert settings.kafka_bootstrap and (settings.database_url or not database)
        traits = await broker_traits(settings, settings.kafka_bootstrap)
        return Endpoints(settings.kafka_bootstrap, settings.database_url or "", traits.kind)
    stack = EmbeddedStack(settings.data_dir, settings.embedded_kafka_port, settings.embedded_broker)
    result = await asyncio.to_thread(stack.up, kafka=settings.embedded_kafka, postgres=embedded_database)
    if result.broker_data_lost:
        log.warning(
            "the embedded broker had stopped and was started again: its topics, groups and offsets are gone "
            "(Tansu keeps them in memory); PostgreSQL state is kept; topics.yaml is applied again"
        )
    elif result.broker_was_lost:
        log.warning("the embedded broker had stopped and was started again with its log: nothing is lost")
    if settings.embedded_kafka:
        kind = result.state.broker_kind or BrokerKind.TANSU  # a stack.json older than Apache Kafka's arrival
        remember(result.state.kafka_bootstrap or "", kind)
    else:
        assert settings.kafka_bootstrap
        kind = (await broker_traits(settings, settings.kafka_bootstrap)).kind
    endpoints = Endpoints(
        kafka_bootstrap=settings.kafka_bootstrap or result.state.kafka_bootstrap or "",
        database_url=settings.database_url or result.state.database_url or "",
        broker=kind,
    )
    if result.broker_is_new:
        await apply_catalogue(settings, endpoints.kafka_bootstrap)
    return endpoints


async def connect_database(settings: Settings) -> str:
    """The PostgreSQL URL, for a command that needs nothing else: the embedded PostgreSQL is
    started if it is the one configured and not running; the broker is never started for it."""
    if not settings.embedded_database:
        assert settings.database_url
        return settings.database_url
    stack = EmbeddedStack(settings.data_dir, settings.embedded_kafka_port, settings.embedded_broker)
    result = await asyncio.to_thread(stack.up, kafka=False, postgres=True)
    return result.state.database_url or ""


async def apply_catalogue(settings: Settings, bootstrap: str) -> ApplyReport:
    async with admin_client(settings, bootstrap) as admin:
        report = await apply_topics(admin, load_catalogue(settings), settings.topic_prefix)
    if report.created:
        log.info("topics created", count=len(report.created), prefix=settings.topic_prefix or None)
    return report

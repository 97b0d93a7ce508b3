"""What the connected broker does, so that every workaround is taken only where it is needed.

The bus runs on Apache Kafka (production, and the embedded default where Java is installed) and
on Tansu (the embedded broker of a machine with only Python). Tansu differs from Kafka in ways
measured and listed in docs/brokers.md; each difference is one field of :class:`BrokerTraits`,
and code asks the traits instead of assuming either broker. The kind is detected once per
bootstrap and process, from the cluster id DescribeCluster reports (Tansu's is ``tansu_cluster``);
the idempotent producer is also probed directly (infrastructure/endpoints.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infrastructure.errors import BrokerUnavailable
from infrastructure.kafka_clients import MemberTiming, client_options, member_options
from infrastructure.settings import Settings

log = structlog.get_logger("xbus.brokers")

TANSU_CLUSTER_ID = "tansu_cluster"


class BrokerKind(StrEnum):
    APACHE_KAFKA = "kafka"
    TANSU = "tansu"

    @property
    def product(self) -> str:
        return "Apache Kafka" if self is BrokerKind.APACHE_KAFKA else "Tansu"


@dataclass(frozen=True)
class BrokerTraits:
    """How a broker kind behaves where the bus depends on it (docs/brokers.md has the measurements)."""

    kind: BrokerKind
    #: ListOffsets(latest) answers the high watermark (Tansu: the last batch's base offset + 1).
    true_end_offsets: bool
    #: ListOffsets(timestamp) finds records by their own timestamps (Tansu: by when it stored each
    #: batch, and 0 for a future time).
    true_offsets_for_times: bool
    #: Topics, groups and offsets survive a broker restart (Tansu keeps everything in memory).
    durable: bool
    #: ``retention.ms`` deletes old records (Tansu stores the setting and never acts on it).
    enforces_retention: bool
    #: Consumer group timing when the settings leave it open: Kafka's own session default
    #: (45 s, KIP-735); Tansu makes a joining member wait half the session, so it gets a short one.
    session_timeout_ms: int
    heartbeat_interval_ms: int
    #: Tansu answers a fetch up to about half its wait after records arrive, so a short wait keeps
    #: latency low; Kafka answers as soon as they arrive, and its own 500 ms saves idle requests.
    fetch_max_wait_ms: int


APACHE_KAFKA = BrokerTraits(
    kind=BrokerKind.APACHE_KAFKA,
    true_end_offsets=True,
    true_offsets_for_times=True,
    durable=True,
    enforces_retention=True,
    session_timeout_ms=45_000,
    heartbeat_interval_ms=3_000,
    fetch_max_wait_ms=500,
)
TANSU = BrokerTraits(
    kind=BrokerKind.TANSU,
    true_end_offsets=False,
    true_offsets_for_times=False,
    durable=False,
    enforces_retention=False,
    session_timeout_ms=6_000,
    heartbeat_interval_ms=1_500,
    fetch_max_wait_ms=20,
)
TRAITS = {traits.kind: traits for traits in (APACHE_KAFKA, TANSU)}

#: Detected kinds, per bootstrap: one DescribeCluster per process and broker.
_DETECTED: dict[str, BrokerTraits] = {}
_DETECTING: dict[str, asyncio.Lock] = {}


async def broker_traits(settings: Settings, bootstrap: str) -> BrokerTraits:
    """The traits of the broker at ``bootstrap``, detected on first use in this process."""
    if bootstrap in _DETECTED:
        return _DETECTED[bootstrap]
    async with _DETECTING.setdefault(bootstrap, asyncio.Lock()):
        if bootstrap not in _DETECTED:
            _DETECTED[bootstrap] = TRAITS[await _detect_kind(settings, bootstrap)]
            log.debug("broker detected", bootstrap=bootstrap, kind=_DETECTED[bootstrap].kind.value)
    return _DETECTED[bootstrap]


def remember(bootstrap: str, kind: BrokerKind) -> None:
    """Record a kind known without asking (the embedded stack knows what it started)."""
    _DETECTED[bootstrap] = TRAITS[kind]


async def _detect_kind(settings: Settings, bootstrap: str) -> BrokerKind:
    """Raises :class:`BrokerUnavailable` when nothing answers: a broker that could not be asked is
    not taken for either kind (the answer would be kept for the life of the process)."""
    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap))
    try:
        await admin.start()
    except KafkaError as error:
        await admin.close()
        raise BrokerUnavailable.at(bootstrap, error) from None
    try:
        cluster = await admin.describe_cluster()
    except KafkaError as error:
        # a broker too old for DescribeCluster (Kafka before 2.8) is no Tansu either
        log.debug("DescribeCluster failed; taking the broker for Apache Kafka", error=repr(error))
        return BrokerKind.APACHE_KAFKA
    finally:
        await admin.close()
    return BrokerKind.TANSU if cluster.get("cluster_id") == TANSU_CLUSTER_ID else BrokerKind.APACHE_KAFKA


def member_timing(settings: Settings, traits: BrokerTraits) -> MemberTiming:
    session = settings.consumer_session_timeout_ms or traits.session_timeout_ms
    heartbeat = settings.consumer_heartbeat_interval_ms or min(traits.heartbeat_interval_ms, session // 3)
    return MemberTiming(session, heartbeat, settings.consumer_fetch_max_wait_ms or traits.fetch_max_wait_ms)


async def group_member_options(settings: Settings, bootstrap: str, group: str) -> dict[str, Any]:
    """:func:`infrastructure.kafka_clients.member_options` with the timing of the broker at ``bootstrap``."""
    return member_options(settings, bootstrap, group, member_timing(settings, await broker_traits(settings, bootstrap)))

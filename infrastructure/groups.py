"""Consumer groups seen from outside: who is in them, what they committed, and moving their offsets.

Lag, replay and rebuild all look at a group without joining it (joining would take partitions
from the running members). What works on both Apache Kafka and the embedded broker
(docs/brokers.md):

- members come from DescribeGroups, one group per request; the embedded broker reports member
  ids but empty client ids, hosts and assignments, so "which partition has which member" is
  known only on Kafka;
- committed offsets come from OffsetFetch *with the partitions named* (the embedded broker
  cannot encode the answer to "all partitions");
- offsets are moved by an OffsetCommit with no generation (what ``kafka-consumer-groups
  --reset-offsets`` does), which both accept only while the group has no members. The embedded
  broker does not keep commit metadata, so nothing may rely on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest, MemberAssignment
from aiokafka.structs import OffsetAndMetadata

from infrastructure.brokers import broker_traits, member_timing
from infrastructure.errors import XbusError
from infrastructure.kafka_clients import client_options
from infrastructure.settings import Settings

log = structlog.get_logger("xbus.groups")


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str
    #: Empty when the broker does not report assignments (the embedded broker never does).
    assignment: tuple[TopicPartition, ...] = ()

    def __str__(self) -> str:
        where = f"{self.client_id}@{self.host}" if self.client_id or self.host else "client unknown"
        return f"{self.member_id} ({where})"


@dataclass(frozen=True)
class GroupDescription:
    group: str
    #: The broker's state of the group: Stable, Empty, PreparingRebalance, Dead...
    state: str
    members: tuple[GroupMember, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return bool(self.members)

    @property
    def assignment_known(self) -> bool:
        return any(member.assignment for member in self.members)

    def owner(self, tp: TopicPartition) -> GroupMember | None:
        return next((member for member in self.members if tp in member.assignment), None)


class GroupActive(XbusError):
    """A group's offsets cannot be moved (or its state rebuilt) while members consume it."""

    def __init__(self, description: GroupDescription) -> None:
        members = ", ".join(map(str, description.members))
        super().__init__(
            f"group {description.group} has {len(description.members)} active member(s): {members}; "
            "stop them first (a group's offsets can only be moved while it is empty)"
        )
        self.description = description


async def list_groups(admin: AIOKafkaAdminClient) -> list[str]:
    return sorted(group for group, *_ in await admin.list_consumer_groups())


async def describe_group(admin: AIOKafkaAdminClient, group: str) -> GroupDescription:
    """The group described by a DescribeGroups of its own: the embedded broker answers a request
    naming several groups with error -1 and no name for every group after the first (measured),
    so callers that describe several groups send one request per group, at once."""
    [response] = await admin.describe_consumer_groups([group], group_coordinator_id=await admin.find_coordinator(group))
    [(error_code, _group, state, _protocol_type, _protocol, members, *_)] = response.groups
    if error_code:
        raise XbusError(f"the broker could not describe group {group} (error code {error_code})")
    return GroupDescription(group, state, tuple(_member(*m[:5]) for m in members))


async def require_inactive(admin: AIOKafkaAdminClient, group: str) -> GroupDescription:
    """The group's description, or :class:`GroupActive` naming its members."""
    description = await describe_group(admin, group)
    if description.active:
        raise GroupActive(description)
    return description


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: Iterable[TopicPartition], coordinator: int | None = None
) -> dict[TopicPartition, int | None]:
    """The group's committed offset (the next to read) per partition, ``None`` where it has none."""
    asked = sorted(set(partitions))
    if not asked:
        return {}
    answer = await admin.list_consumer_group_offsets(group, group_coordinator_id=coordinator, partitions=asked)
    return {tp: (answer[tp].offset if tp in answer and answer[tp].offset >= 0 else None) for tp in asked}


async def commit_offsets(settings: Settings, bootstrap: str, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    """Set ``group``'s committed offsets without joining it (the caller made sure it has no members)."""
    if not offsets:
        return
    consumer = AIOKafkaConsumer(**client_options(settings, bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))  # a manual assignment joins nothing: the commit carries no generation
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


async def partitions_of_topics(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` that exist (an unknown one is left out: asking the embedded
    broker about it by name would create it)."""
    present = set(await admin.list_topics())
    wanted = sorted(set(topics) & present)
    if not wanted:
        return []
    described = await admin.describe_topics(wanted)
    return sorted(TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"])


async def topics_under(admin: AIOKafkaAdminClient, prefix: str) -> list[str]:
    """Topic names starting with ``prefix``, Kafka's internal ones left out."""
    return sorted(t for t in await admin.list_topics() if t.startswith(prefix) and not t.startswith("__"))


async def group_partitions(
    admin: AIOKafkaAdminClient,
    description: GroupDescription,
    candidates: Sequence[TopicPartition],
    declared: Iterable[TopicPartition] = (),
) -> dict[TopicPartition, int | None]:
    """The partitions ``description``'s group reads, with its committed offsets: those among
    ``candidates`` it has committed on, those its members are assigned (where the broker says),
    and ``declared`` ones (the topics of an xbus service) even before its first commit there.

    Kafka could answer "every partition the group committed on" by itself; the embedded broker
    cannot (docs/brokers.md), so the caller names the candidates (usually every partition of
    the topics in question) and the answer keeps those with an offset.
    """
    assigned = {tp for member in description.members for tp in member.assignment}
    declared_set = set(declared)
    offsets = await committed_offsets(admin, description.group, {*candidates, *assigned, *declared_set})
    return {tp: offset for tp, offset in offsets.items() if offset is not None or tp in assigned or tp in declared_set}


async def delete_group(admin: AIOKafkaAdminClient, group: str) -> None:
    """Delete an empty group and its committed offsets (a group left behind, such as a swapped-in
    shadow's, would otherwise show in every lag report). aiokafka has no call for DeleteGroups;
    both Kafka and the embedded broker answer the raw request."""
    node = await admin.find_coordinator(group)
    response = await admin._send_request(DeleteGroupsRequest([group]), node)
    for name, error_code in response.results:
        if error_code:
            raise XbusError(f"the broker could not delete group {name} (error code {error_code})")


@dataclass(frozen=True)
class Membership:
    """A consumer's place in its group, as aiokafka keeps it (see :func:`membership`)."""

    group: str
    member_id: str
    generation: int


def membership(consumer: AIOKafkaConsumer) -> Membership | None:
    """The consumer's membership, read before ``stop()``, which forgets it; None before it joined."""
    coordinator = getattr(consumer, "_coordinator", None)  # aiokafka keeps the membership here
    if coordinator is None or not coordinator.member_id:
        return None
    return Membership(coordinator.group_id, coordinator.member_id, coordinator.generation)


async def leave_group(settings: Settings, bootstrap: str, member: Membership) -> None:
    """Send a LeaveGroup for ``member`` from a client of its own. Best effort, as aiokafka's own,
    and given a session timeout (a broker that answers nothing would hold it for the request
    timeout): if it fails, the member is removed when its session expires or the next one joins."""
    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap))
    try:
        async with asyncio.timeout(await _session_seconds(settings, bootstrap)):
            await admin.start()
            node = await admin.find_coordinator(member.group)
            await admin._send_request(LeaveGroupRequest(member.group, member.member_id), node)
    except (KafkaError, TimeoutError) as error:
        log.info("leaving the group failed; the member expires later", group=member.group, error=repr(error))
    finally:
        await admin.close()


async def stop_and_leave(consumer: AIOKafkaConsumer, settings: Settings, bootstrap: str) -> None:
    """``consumer.stop()`` and out of the group, so that its partitions move at once and the group
    looks empty to replay and rebuild; in bounded time, so that SIGTERM always ends the process.

    Two cases aiokafka's ``stop()`` does not cover:

    - it sends LeaveGroup only from generation 1 on (Kafka numbers a new group's first
      generation 1). The embedded broker numbers it 0, and a member stopped there stays listed
      until another member joins (measured: 40 s and counting with a 3 s session timeout);
    - it waits for a JoinGroup under way, which a broker may hold until every member has rejoined
      (on Kafka, up to the rebalance timeout: minutes).

    So the member leaves from a client of its own when it is in generation 0 or when ``stop()``
    has not returned within a session timeout, which on Kafka answers the held join. If ``stop()``
    still hangs (a broker that answers nothing holds it for the request timeout), it is
    cancelled and the client's connections closed: a stop takes three session timeouts at most.
    """
    member = membership(consumer)
    patience = await _session_seconds(settings, bootstrap)
    stopping = asyncio.ensure_future(consumer.stop())
    if await _settled(stopping, patience):
        if member is not None and member.generation == 0:
            await leave_group(settings, bootstrap, member)
        return
    log.warning("the consumer's stop is held; leaving the group from outside", group=member and member.group)
    if member is not None:
        await leave_group(settings, bootstrap, member)
    if await _settled(stopping, patience):
        return
    log.warning("the consumer did not stop; closing its connections", group=member and member.group)
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    await consumer._client.close()  # what the rest of stop() would have done


async def _session_seconds(settings: Settings, bootstrap: str) -> float:
    """The session timeout the group's members have on this broker (the settings', or its default:
    then the broker is asked what it is, once per process)."""
    if settings.consumer_session_timeout_ms:
        return settings.consumer_session_timeout_ms / 1000
    return member_timing(settings, await broker_traits(settings, bootstrap)).session_timeout_ms / 1000


async def _settled(task: asyncio.Future[None], timeout: float) -> bool:
    """Whether ``task`` ended within ``timeout`` (it is left running otherwise); its error is raised."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done:
        task.result()
    return bool(done)


def _member(member_id: str, client_id: str, host: str, _metadata: bytes, assignment: bytes) -> GroupMember:
    partitions: tuple[TopicPartition, ...] = ()
    if assignment:
        decoded = MemberAssignment.decode(assignment)
        partitions = tuple(sorted(TopicPartition(topic, p) for topic, ps in decoded.assignment for p in ps))
    return GroupMember(member_id, client_id, host, partitions)

"""Publishing the events of one HTTP request: idempotency claims, the publish, a result per event.

Shared by POST /v1/events (a request of one event) and /v1/events/batch. Each item arrives either
as an event to publish or already refused (bad data, a type the token may not publish); it leaves
with a result: ``{"status": 202, id, type, topic, partition, offset, correlationid}``, or a
problem document whose ``status`` says why it was not published.

Order of work: the request's Idempotency-Key is claimed first (a repeat returns the stored
response, and nothing else happens); then each event id (given, or derived from the key) is
claimed; the events claimed are published in one ``publish_many`` (acks=all); the results are
stored under their keys. A request whose items all got a final answer (published, or refused for
what they are) is stored under its key; one with an item that may succeed later (409: its id in
flight elsewhere; 503: the broker refused it) releases its key, so that a retry with the same key
does the rest, the items already published being answered from their event ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from prometheus_client import Counter

from producers import Outgoing, Published
from xbus.api.idempotency import (
    Claimed,
    IdempotencyStore,
    InFlight,
    Mismatch,
    Outcome,
    Replay,
    derived_event_id,
    event_key,
    fingerprint,
    request_key,
)
from xbus.api.resources import ApiResources
from xbus.api.tokens import ApiToken
from xbus.problems import FieldError, Problem

log = structlog.get_logger("xbus.api.events")

EVENTS = Counter(
    "xbus_api_events",
    "Events received over HTTP by outcome: published, replayed (a repeat answered from its idempotency key), "
    "refused (invalid or not allowed), failed (the broker did not take it, or its id was in flight).",
    ["outcome"],
)
IDEMPOTENCY_KEY = "Idempotency-Key"
#: Item statuses that a later retry may turn into a publish: such a request is not stored under its key.
_RETRYABLE = (409, 503)
#: Builds a request's status and body from its items' results.
Respond = Callable[[list[dict[str, Any]]], tuple[int, Any]]


@dataclass(frozen=True)
class Item:
    """One event of a request: to publish, or refused already. ``at`` is its JSON Pointer in the body."""

    at: str
    outgoing: Outgoing | None = None
    refusal: Problem | None = None


@dataclass(frozen=True)
class Answer:
    """What the request gets: the status and body (stored as such under its Idempotency-Key);
    ``replayed`` when every event of it had been published before (nothing is published now)."""

    status: int
    body: Any
    replayed: bool = False


class Publication:
    """The publishing of one request's items, for one token, with or without an Idempotency-Key."""

    def __init__(self, resources: ApiResources, token: ApiToken, idempotency_key: str | None, request: Any) -> None:
        self.resources = resources
        self.store: IdempotencyStore = resources.idempotency
        self.token = token
        self.key = idempotency_key
        #: What the key's fingerprint covers: the route and the whole body.
        self.request = request
        self.owner = uuid.uuid4()
        #: Set when an event id was in flight elsewhere: the Retry-After of a single event's 409.
        self.retry_after: int | None = None
        #: Items answered from their event id's stored result (published by an earlier request).
        self._replayed = 0

    async def answer(self, items: Sequence[Item], respond: Respond) -> Answer:
        """Publish ``items`` and build the answer with ``respond(results) -> (status, body)``."""
        if self.key is None:
            status, body = respond(await self._results(items))
            return Answer(status, body, replayed=self._replayed == len(items))
        request_claim = request_key(self.token.id, self.key)
        [outcome] = await self.store.claim(self.owner, [(request_claim, fingerprint(self.request))])
        if isinstance(outcome, Replay):
            EVENTS.labels("replayed").inc(len(items))
            return Answer(outcome.status, outcome.body, replayed=True)
        if isinstance(outcome, InFlight):
            raise _in_flight(outcome, f"a request with this {IDEMPOTENCY_KEY} is still being processed")
        if isinstance(outcome, Mismatch):
            raise Problem(
                422,
                "Idempotency-Key reused",
                f"this {IDEMPOTENCY_KEY} was used for a different request in the last "
                f"{self.store.window_seconds:g} s; use a new key for a new request",
                errors=[FieldError(IDEMPOTENCY_KEY, "already used for a different request")],
            )
        try:
            results = await self._results([self._with_derived_id(index, item) for index, item in enumerate(items)])
            status, body = respond(results)
            answer = Answer(status, body, replayed=self._replayed == len(items))
        except BaseException:
            await self.store.release(self.owner, [request_claim])
            raise
        if any(result["status"] in _RETRYABLE for result in results):
            await self.store.release(self.owner, [request_claim])
        else:
            await self.store.complete(self.owner, [(request_claim, answer.status, answer.body)])
        return answer

    def _with_derived_id(self, index: int, item: Item) -> Item:
        if self.key is None or item.outgoing is None or item.outgoing.event_id is not None:
            return item
        derived = derived_event_id(self.token.id, self.key, index)
        return replace(item, outgoing=replace(item.outgoing, event_id=derived))

    async def _results(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        for index, item in enumerate(items):
            if item.refusal is not None:
                results[index] = item.refusal.to_json()
        pending = _refuse_repeated_ids(items, results)
        claims = await self._claim_ids(items, pending, results)
        to_publish = [index for index in pending if results[index] is None]
        try:
            published = await self.resources.publisher.publish_many([_outgoing(items[index]) for index in to_publish])
        except BaseException:  # cancelled (the client went away, the server stops): free the ids for a retry
            await self.store.release(self.owner, list(claims.values()))
            raise
        stored: list[tuple[str, int, Any]] = []
        released: list[str] = []
        for index, outcome in zip(to_publish, published, strict=True):
            if isinstance(outcome, Published):
                results[index] = _published(outcome)
                if index in claims:
                    stored.append((claims[index], 202, results[index]))
            else:
                results[index] = _problem(
                    503, "Not published", f"the broker did not take the event: {outcome.error}; retry"
                )
                if index in claims:
                    released.append(claims[index])
        await self.store.complete(self.owner, stored)
        await self.store.release(self.owner, released)
        done = [result for result in results if result is not None]
        assert len(done) == len(items), "every item gets a result"
        now = sum(1 for outcome in published if isinstance(outcome, Published))
        self._count(done, published=now)
        return done

    async def _claim_ids(
        self, items: Sequence[Item], pending: list[int], results: list[dict[str, Any] | None]
    ) -> dict[int, str]:
        """Claim the event id of each pending item that has one; fill in the results of those that
        were published before (or are in flight, or name another event). Returns the claimed keys."""
        keyed = {index: _outgoing(items[index]) for index in pending if _outgoing(items[index]).event_id}
        keys = {index: event_key(outgoing.event_id or "") for index, outgoing in keyed.items()}
        outcomes: list[Outcome] = await self.store.claim(
            self.owner, [(keys[index], _event_fingerprint(outgoing)) for index, outgoing in keyed.items()]
        )
        claimed: dict[int, str] = {}
        for index, outcome in zip(keyed, outcomes, strict=True):
            at = items[index].at
            if isinstance(outcome, Claimed):
                claimed[index] = keys[index]
            elif isinstance(outcome, Replay):
                results[index] = outcome.body
                self._replayed += 1
            elif isinstance(outcome, InFlight):
                self.retry_after = max(self.retry_after or 0, outcome.retry_after)
                results[index] = _in_flight(
                    outcome, "an event with this id is being published by another request"
                ).to_json()
            else:
                results[index] = _problem(
                    422,
                    "Event id reused",
                    "this event id was used for a different event; event ids must be unique",
                    FieldError(f"{at}/id", "already used for a different event"),
                )
        return claimed

    def _count(self, results: list[dict[str, Any]], published: int) -> None:
        """Count and log the request's events (``published``: by this request, not replayed)."""
        statuses = [result["status"] for result in results]
        outcomes = {
            "published": published,
            "replayed": self._replayed,
            "refused": sum(1 for status in statuses if status not in (202, *_RETRYABLE)),
            "failed": sum(1 for status in statuses if status in _RETRYABLE),
        }
        for outcome, count in outcomes.items():
            if count:
                EVENTS.labels(outcome).inc(count)
        log.info("events received", token_id=self.token.id, **outcomes)


def _refuse_repeated_ids(items: Sequence[Item], results: list[dict[str, Any] | None]) -> list[int]:
    """The items still to publish, after refusing each that repeats an earlier item's event id."""
    first: dict[str, int] = {}
    pending = []
    for index, item in enumerate(items):
        if results[index] is not None or item.outgoing is None:
            continue
        event_id = item.outgoing.event_id
        if event_id is not None and event_id in first:
            earlier = items[first[event_id]].at
            results[index] = _problem(
                422,
                "Invalid event",
                f"the event id repeats {earlier}'s; each event of a batch needs its own id",
                FieldError(f"{item.at}/id", f"the same id as {earlier}"),
            )
            continue
        if event_id is not None:
            first[event_id] = index
        pending.append(index)
    return pending


def _outgoing(item: Item) -> Outgoing:
    assert item.outgoing is not None, "only items to publish are published"
    return item.outgoing


def _event_fingerprint(outgoing: Outgoing) -> str:
    """What an event id stands for: the type and data (so a repeat in another form is still a repeat)."""
    return fingerprint(outgoing.event.event_type, outgoing.event.model_dump(mode="json"))


def _published(result: Published) -> dict[str, Any]:
    return {
        "status": 202,
        "id": result.event_id,
        "type": result.event_type,
        "topic": result.topic,
        "partition": result.partition,
        "offset": result.offset,
        "correlationid": result.correlation_id,
    }


def _problem(status: int, title: str, detail: str, *errors: FieldError) -> dict[str, Any]:
    return Problem(status, title, detail, errors=errors).to_json()


def _in_flight(outcome: InFlight, what: str) -> Problem:
    return Problem(
        409,
        "Conflict",
        f"{what}; retry after {outcome.retry_after} s",
        headers={"Retry-After": str(outcome.retry_after)},
    )

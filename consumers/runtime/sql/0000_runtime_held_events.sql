-- What an operator asked of a dead letter, carried out by the service's own process
-- (consumers/runtime/held_events.py). redriven_at now means "redrive asked for at": the
-- stored record is applied again to this service only, never re-published to a topic others read.
-- A discard records who threw the event away, when and why, and releases the events parked
-- behind it; the entry stays as the audit trail.
alter table xbus_dead_letters
    add column discard_requested_at timestamptz,
    add column discarded_by text,
    add column discard_reason text,
    add column discarded_at timestamptz;

-- Events waiting for a prerequisite that has not been applied here yet (an update before its
-- create, a fill before its account): held, not dead-lettered, and applied as soon as an event
-- keyed waits_for has been; dead-lettered only after XBUS_PENDING_TIMEOUT_SECONDS. They do not
-- block their key (the prerequisite may well come under that same key), but a later event of the
-- key lets them try first, so the key's events keep their order.
create table xbus_pending (
    seq bigserial primary key,
    event_id text not null unique,
    key text,
    waits_for text not null,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    value bytea,
    headers jsonb not null,
    reason text not null,
    pending_since timestamptz not null default now()
);
create index xbus_pending_waits_for on xbus_pending (waits_for, seq);
create index xbus_pending_key on xbus_pending (key, seq);

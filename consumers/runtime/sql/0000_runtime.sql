-- Runtime tables every service schema has: the inbox (exactly-once effects), the outbox
-- (follow-up events and dead letters, published by the relay), dead-letter entries and events
-- parked behind a dead-lettered event of the same key.
create table xbus_inbox (
    event_id text primary key,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    applied_at timestamptz not null default now()
);

create table xbus_outbox (
    id bigserial primary key,
    topic text not null,
    key bytea,
    value bytea,
    headers jsonb not null,
    created_at timestamptz not null default now(),
    sent_at timestamptz
);
create index xbus_outbox_unsent on xbus_outbox (id) where sent_at is null;

create table xbus_dead_letters (
    event_id text primary key,
    key text,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    value bytea,
    headers jsonb not null,
    error_type text not null,
    error_message text not null,
    attempts integer not null,
    failed_at timestamptz not null default now(),
    redriven_at timestamptz
);

-- A key is blocked while one of its events is dead-lettered and not yet applied.
create table xbus_blocked_keys (
    key text primary key,
    blocked_by text not null references xbus_dead_letters (event_id)
);

create table xbus_parked (
    seq bigserial primary key,
    key text not null,
    event_id text not null unique,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    value bytea,
    headers jsonb not null,
    parked_at timestamptz not null default now()
);
create index xbus_parked_by_key on xbus_parked (key, seq);

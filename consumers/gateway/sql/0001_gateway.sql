-- Exchanges whose OMS adapter the gateway runs. An exchange suspended or removed takes no
-- instruction: what is routed to it then is rejected with the reason.
create table exchanges (
    code text primary key,
    adapter text not null,
    settles_through_registry boolean not null,
    -- market code -> currency: the currency an instrument CODE.MARKET trades in
    market_currencies jsonb not null,
    state text not null check (state in ('active', 'suspended', 'removed')),
    state_reason text,
    -- times are the events' (never the clock): replaying the topics rebuilds the same rows
    changed_at timestamptz not null
);

-- Per instrument, the adapter's state after the last instruction applied (for Prodigy, the order
-- book). Written in the same transaction as the execution reports' outbox rows, so an
-- instruction is applied exactly once; `instructions` counts them, for operators and tests.
create table adapter_states (
    instrument text primary key,
    exchange text not null references exchanges (code),
    state jsonb not null,
    instructions bigint not null,
    changed_at timestamptz not null
);

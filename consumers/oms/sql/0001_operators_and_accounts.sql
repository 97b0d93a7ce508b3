-- Operators registered through the OMS's Identity function; a deregistered one keeps its row.
create table operators (
    operator_id text primary key,
    login_id text not null,
    features text[] not null,
    owners text[] not null,
    exchanges text[] not null,
    status text not null check (status in ('registered', 'deregistered')),
    deregistered_reason text,
    -- times are the events' (never the clock): replaying the topics rebuilds the same rows
    registered_at timestamptz not null,
    changed_at timestamptz not null
);

-- Trading-account metadata and vetting settings. opened_by_flow names the opening flow, so that
-- only a failure of that very flow is compensated here; state_flow_id names the flow that set
-- the state, so that a second request of the same change by the same flow is not reported twice.
create table accounts (
    account_id text primary key,
    owner text not null,
    name text not null,
    classification text not null,
    currency text not null,
    categories text[] not null,
    attributes jsonb not null,
    allowed_exchanges text[] not null,
    max_order_value numeric,
    max_order_value_currency text,
    max_order_quantity bigint,
    state text not null check (state in ('active', 'suspended', 'closed')),
    state_reason text,
    state_flow_id text not null,
    opened_by_flow text not null,
    opened_at timestamptz not null,
    changed_at timestamptz not null,
    constraint max_order_value_whole check ((max_order_value is null) = (max_order_value_currency is null))
);

-- Closures of accounts the OMS has not seen opened yet: the registry's close and the
-- compensation of a failed opening come on other topics than the opening, in no order with
-- it. Applied, in arrival order, when the opening arrives.
create table pending_closures (
    seq bigserial primary key,
    account_id text not null,
    flow_id text not null,
    cause text not null check (cause in ('registry_closed', 'opening_failed')),
    reason text,
    received_at timestamptz not null,
    unique (account_id, flow_id, cause)
);

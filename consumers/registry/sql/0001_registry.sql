-- The Foundry Registry: operators of its Identity function, investors (legal owners), trading
-- accounts they own, settled cash per currency, the cash movements booked on it, and holdings
-- per instrument. Money is numeric(36,8), never a float; quantities are whole numbers.

create table operators (
    operator_id text primary key,
    login_id text not null,
    features text[] not null,
    status text not null check (status in ('registered', 'deregistered')),
    -- the flow of the registration in force (a re-registration replaces it)
    registered_flow_id text not null,
    registered_at timestamptz not null,
    deregistered_at timestamptz,
    deregistration_reason text
);

-- No raw personal data: the PII hash stands for it.
create table investors (
    investor_id text primary key,
    full_name text not null,
    country text not null check (country ~ '^[A-Z]{2}$'),
    type text not null check (type in ('individual', 'company', 'trust')),
    pii_hash text,
    recorded_at timestamptz not null
);

create table accounts (
    account_id text primary key,
    investor_id text not null references investors (investor_id),
    owner text not null,
    name text not null,
    default_currency text not null check (default_currency ~ '^[A-Z]{3}$'),
    state text not null check (state in ('active', 'suspended', 'closed')),
    state_reason text,
    -- the flow that opened it: a failed opening is compensated by this id
    opening_flow_id text not null unique,
    opened_at timestamptz not null,
    state_changed_at timestamptz not null
);
create index accounts_by_investor on accounts (investor_id);

-- Settled cash never goes below zero: a withdrawal beyond it is refused before it gets here.
create table cash (
    account_id text not null references accounts (account_id),
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    settled numeric(36, 8) not null default 0 check (settled >= 0),
    primary key (account_id, currency)
);

-- The ledger of deposits and withdrawals: per account and currency the deltas sum to the
-- settled cash (settlements will add their own ledger).
create table cash_movements (
    seq bigint generated always as identity primary key,
    flow_id text not null unique,
    account_id text not null references accounts (account_id),
    currency text not null,
    delta numeric(36, 8) not null check (delta <> 0),
    balance_after numeric(36, 8) not null check (balance_after >= 0),
    reference text not null,
    applied_at timestamptz not null
);
create index cash_movements_by_account on cash_movements (account_id, currency);

-- Filled by settlement (a later issue); holdings never go negative.
create table holdings (
    account_id text not null references accounts (account_id),
    instrument text not null,
    quantity bigint not null check (quantity >= 0),
    primary key (account_id, instrument)
);

-- Failures of account openings that arrived before the opening itself (topics are not
-- ordered against each other): the opening, when it comes, is undone at once.
create table failed_openings (
    flow_id text primary key,
    account_id text not null,
    service text not null,
    step text not null,
    reason text not null,
    failed_at timestamptz not null
);

-- Orders and what they draw on (docs/exchanges.md): exchanges and their instruments, the
-- gateway's adapters, last prices, logins' rights per account, cash and holdings positions.
-- Money is numeric(36,8) as in the registry's ledger; quantities are whole numbers. Times are the
-- events' (never the clock), so replaying the topics rebuilds the same rows.

-- Exchanges as xosp.exchanges last described them; a removed one keeps its row.
create table exchanges (
    code text primary key,
    name text not null,
    -- the OMS adapter ExchangeAdded names: orders are routed to it
    adapter text not null,
    settles_through_registry boolean not null,
    state text not null check (state in ('listed', 'suspended', 'removed')),
    state_reason text,
    changed_at timestamptz not null
);

-- Instruments SYMBOL.MARKET of the exchanges' markets, with the market's currency.
create table instruments (
    instrument text primary key,
    exchange text not null references exchanges (code),
    market text not null,
    currency text not null check (currency ~ '^[A-Z]{3}$')
);
create index instruments_by_exchange on instruments (exchange);

-- The gateway's adapters. Apart from exchanges: the gateway's topic is not ordered against
-- xosp.exchanges, so an adapter may be registered before the OMS has read its exchange.
create table adapters (
    exchange text primary key,
    adapter text not null,
    running boolean not null,
    stopped_reason text,
    changed_at timestamptz not null
);

-- Last price per instrument: the adapter's reference price until a fill sets it (since 0003,
-- fills go to fill_prices and only reference prices are kept here). Keyed by the
-- instrument alone, for the same reason as adapters. Fills of different accounts come on
-- different partitions, in no order between them: the latest fill is the one with the latest
-- (report time, venue trade id), whatever the order the OMS applied them in, so that a replay
-- rebuilds the same last price.
create table last_prices (
    instrument text primary key,
    price numeric(36, 8) not null check (price > 0),
    source text not null check (source in ('reference', 'fill')),
    venue_trade_id text check ((source = 'fill') = (venue_trade_id is not null)),
    changed_at timestamptz not null
);

-- Logins' rights per account, as Resource Authorisation grants and revokes them. No time of
-- the grant: Resource Authorisation grants an association when its last login is known, so the
-- event's time (and id) depends on the order it read its topics in, and a replay would differ.
create table account_rights (
    account_id text not null,
    login_id text not null,
    rights text[] not null,
    granted_by_flow text not null,
    primary key (account_id, login_id)
);
create index account_rights_by_login on account_rights (login_id);

-- Every order placed with a new id: rejected ones too, so that their ids stay taken.
create table orders (
    order_id text primary key,
    account_id text not null,
    login_id text not null,
    instrument text not null,
    side text not null,
    order_type text not null,
    quantity bigint not null check (quantity > 0),
    limit_price numeric(36, 8),
    lifetime text not null,
    expiry_date date,
    state text not null check (state in ('rejected', 'routed', 'acknowledged', 'partially_filled', 'completed')),
    -- set when accepted
    exchange text,
    adapter text,
    currency text,
    price numeric(36, 8),
    protection_price numeric(36, 8),
    -- what is still reserved: cash for a buy, quantity for a sell
    reserved numeric(36, 8) not null default 0 check (reserved >= 0),
    held_back bigint not null default 0 check (held_back >= 0),
    filled_quantity bigint not null default 0 check (filled_quantity between 0 and quantity),
    filled_value numeric(36, 8) not null default 0,
    outcome text check (outcome in ('filled', 'cancelled', 'expired', 'rejected')),
    rejection_code text,
    reason text,
    placed_at timestamptz not null,
    changed_at timestamptz not null,
    constraint accepted_orders_are_routed check (state = 'rejected' or (exchange is not null and price is not null)),
    constraint completed_orders_have_an_outcome check ((state = 'completed') = (outcome is not null)),
    constraint completed_orders_reserve_nothing check (state <> 'completed' or (reserved = 0 and held_back = 0))
);
create index orders_by_account on orders (account_id);

-- Fills booked, one per (exchange, venue trade id, order) as the registry settles them: a fill
-- reported twice is booked once.
create table fills (
    exchange text not null,
    venue_trade_id text not null,
    order_id text not null references orders (order_id),
    quantity bigint not null check (quantity > 0),
    price numeric(36, 8) not null check (price > 0),
    booked_at timestamptz not null,
    primary key (exchange, venue_trade_id, order_id)
);

-- Cash per account and currency: booked (the registry's movements and the fills) and what open
-- buys reserve. Booked may fall below zero: a withdrawal while a buy is open (docs/exchanges.md).
create table cash (
    account_id text not null,
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    booked numeric(36, 8) not null default 0,
    reserved numeric(36, 8) not null default 0 check (reserved >= 0),
    primary key (account_id, currency)
);

-- Holdings per account and instrument: the OMS accepts only sells it holds, and holds them back.
create table holdings (
    account_id text not null,
    instrument text not null,
    quantity bigint not null default 0 check (quantity >= 0),
    held_back bigint not null default 0 check (held_back between 0 and quantity),
    primary key (account_id, instrument)
);

-- Settlement of exchanges' fills (docs/exchanges.md, "Settlement (the registry)").

-- The exchanges the registry has been told of and whether it settles their fills, as the latest
-- ExchangeAdded or ExchangeUpdated says. Fills carry the flag themselves and are settled on it.
create table exchanges (
    code text primary key,
    settles_through_registry boolean not null,
    -- the flow of the event that last set the flag
    flow_id text not null,
    changed_at timestamptz not null
);

-- A fill is a fact the exchange has executed, so a buy beyond settled cash (a withdrawal raced
-- an open buy) is booked, and takes settled cash below zero: only a settlement can. Withdrawals
-- are still refused beyond settled cash before they get here, so none leaves a negative balance;
-- a deposit onto a balance that a settlement took below zero may.
alter table cash drop constraint cash_settled_check;
alter table cash_movements drop constraint cash_movements_balance_after_check;
alter table cash_movements add constraint cash_movements_withdrawal_covered check (delta > 0 or balance_after >= 0);

-- One row per fill booked, unique per fill: a redelivered fill (another event id, the same fill)
-- finds its row and changes nothing. Per account and currency, the cash deltas here and in
-- cash_movements sum to the settled cash; per account and instrument, the holding deltas sum to
-- the holding.
create table settlements (
    seq bigint generated always as identity primary key,
    exchange text not null,
    venue_trade_id text not null,
    order_id text not null,
    -- the ExecutionReported booked
    event_id text not null unique,
    account_id text not null references accounts (account_id),
    instrument text not null,
    side text not null check (side in ('BUY', 'SELL')),
    quantity bigint not null check (quantity > 0),
    -- as the exchange reported it, unrounded
    price numeric not null check (price > 0),
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    cash_delta numeric(36, 8) not null,
    cash_after numeric(36, 8) not null,
    holding_delta bigint not null,
    holding_after bigint not null check (holding_after >= 0),
    settled_at timestamptz not null,
    unique (exchange, venue_trade_id, order_id),
    -- a buy pays and receives, a sell delivers and is paid
    check (case side when 'BUY' then cash_delta < 0 and holding_delta = quantity
                     else cash_delta > 0 and holding_delta = -quantity end)
);
create index settlements_by_account on settlements (account_id, seq);

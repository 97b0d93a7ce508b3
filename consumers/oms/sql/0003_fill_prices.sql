-- Fill prices, appended and never updated: an instrument's last price is its latest fill here
-- (latest report time, then greatest venue trade id), else its reference price in last_prices.
-- Updating one last_prices row per instrument made the batches of fills of every partition
-- queue on the same rows, in no common order, and deadlock one another.
create table fill_prices (
    instrument text not null,
    changed_at timestamptz not null,
    venue_trade_id text not null,
    price numeric(36, 8) not null check (price > 0),
    primary key (instrument, changed_at, venue_trade_id)
);

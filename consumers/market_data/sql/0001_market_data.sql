-- The market-data service: the feed of each exchange it was told about, and the latest state of
-- each instrument those feeds publish. Prices are numeric as the exchange sent them (never a
-- float); quantities are whole numbers.

-- One row per exchange: what its feed is given (the ExchangeAdded with every ExchangeUpdated
-- applied) and whether it should run. The feed supervisor of every instance reads this table;
-- one instance at a time feeds each running exchange.
create table feeds (
    exchange text primary key,
    plugin text not null,
    definition jsonb not null,
    instruments integer not null check (instruments >= 0),
    state text not null check (state in ('running', 'stopped')),
    -- why a feed is stopped (suspended, removed, its plugin not installed); null while running
    reason text check ((state = 'stopped') = (reason is not null)),
    -- the flow of the event that last changed the feed
    flow_id text not null,
    -- bumped whenever the feed must (re)start with a new definition or plugin
    revision integer not null,
    changed_at timestamptz not null
);

-- The latest state of each instrument, folded from its exchange's market data in seq order
-- (consumers/runtime/projection.py keeps it; its offsets are in xbus_projection_offsets).
create table instruments (
    instrument text primary key,
    exchange text not null,
    -- the highest seq applied (feed session × 10^9 + the plugin's seq); an event at or below it changes nothing
    last_seq bigint not null check (last_seq >= 1),
    -- how many times seq jumped by more than one (ticks lost between feed and topic)
    gaps bigint not null check (gaps >= 0),
    status text check (status in ('pre_open', 'open', 'halted', 'closed')),
    last_price numeric check (last_price > 0),
    last_quantity bigint check (last_quantity > 0),
    last_trade_at timestamptz,
    bid_price numeric check (bid_price > 0),
    bid_quantity bigint check (bid_quantity > 0),
    ask_price numeric check (ask_price > 0),
    ask_quantity bigint check (ask_quantity > 0),
    quoted_at timestamptz,
    -- the UTC date of the trades day_open .. day_volume sum up
    day date,
    day_open numeric,
    day_high numeric,
    day_low numeric,
    day_volume bigint not null check (day_volume >= 0),
    -- the `at` of the last event applied
    updated_at timestamptz not null
);
create index instruments_by_exchange on instruments (exchange, instrument);

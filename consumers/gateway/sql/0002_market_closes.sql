-- The markets of each exchange with their daily close, which ends their DAY orders (the
-- gateway's end-of-day timer, consumers/gateway/closing.py). Exchanges added before this table
-- existed have no rows until an ExchangeUpdated with markets or a new ExchangeAdded names them.
create table markets (
    exchange text not null references exchanges (code),
    market text not null,
    -- IANA time zone and wall-clock close of the market (ExchangeAdded markets[].trading_hours.close)
    time_zone text not null,
    close time not null,
    -- the latest trading date (in the market's time zone) whose close the gateway has handled:
    -- the DAY orders of that day and before are over
    ended_through date not null,
    primary key (exchange, market)
);

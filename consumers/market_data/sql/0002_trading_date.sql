-- The day figures of an instrument are those of its market's trading date, which the feed stamps
-- on each trade (consumers/runtime/trading_days.py: a day runs from one close to the next, on the
-- market's wall clock), and take the names Zenith gives a Security's: Open, High, Low, Close (the
-- previous trading date's closing price, new here) and Volume, and a Market's TradingDate.
-- A row folded before keeps the UTC date it had until a trade of a later trading date opens a day.
alter table instruments rename column day to trading_date;
alter table instruments rename column day_open to open;
alter table instruments rename column day_high to high;
alter table instruments rename column day_low to low;
alter table instruments rename column day_volume to volume;
alter table instruments rename constraint instruments_day_volume_check to instruments_volume_check;
alter table instruments add column close numeric check (close > 0);

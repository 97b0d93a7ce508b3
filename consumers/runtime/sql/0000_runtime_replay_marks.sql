-- Where a replay of a partition began: records below until_offset had been read before the
-- group's offsets were moved back (`xbus replay`, `xbus rebuild`), so handlers see them as
-- replayed. The row goes once the service has read past it.
create table xbus_replay_marks (
    topic text not null,
    partition integer not null,
    until_offset bigint not null,
    marked_at timestamptz not null default now(),
    primary key (topic, partition)
);

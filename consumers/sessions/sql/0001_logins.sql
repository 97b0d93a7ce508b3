-- One row per login Session Management has heard of.
-- The policy is kept as given upstream (a null pool: the login has none), and the limits in force
-- as assigned from it (null when it has no policy or names an unknown pool). A disabled login
-- keeps its policy, so that enabling it restores the same limits; its sessions are marked ended.
create table logins (
    login_id text primary key,
    pool text,
    override_max_sessions integer,
    override_max_connections integer,
    override_grace_period_seconds integer,
    max_sessions integer,
    max_connections integer,
    grace_period_seconds integer,
    disabled boolean not null default false,
    sessions_ended_at timestamptz,
    ended_reason text,
    -- the time of the event that last changed the row (never the clock: replays rebuild it)
    changed_at timestamptz not null,
    constraint limits_whole check (
        (max_sessions is null) = (max_connections is null)
        and (max_sessions is null) = (grace_period_seconds is null)
    ),
    constraint limits_need_a_pool check (pool is not null or max_sessions is null)
);

-- Session pools as data (docs/provisioning.md, "Session pools").
--
-- reference_pools: the platform's pools, as the reference deployment's Config/Init/sessions-init.ps1
-- sets them:
--     Pool Set XOSP Default
--     Pool Set XOSP General -Sessions 1 -Connections 5 -Grace '00:00:04' -Resource
-- Default sets no limit (null: none of that kind); General is resource-scoped (-Resource). A view,
-- not a table: `xbus rebuild` empties every table of the schema and reads the topics again, and no
-- event on them seeds these pools, so they live where a rebuild leaves them.
create view reference_pools (name, max_sessions, max_connections, grace_period_seconds, resource_scoped) as
values ('Default', null::integer, null::integer, null::integer, false),
       ('General', 1, 5, 4, true);

-- pools: the pools in force, one row per name: those SessionPoolDefined and SessionPoolChanged set
-- (changed_at: that event's time), and a platform pool, copied from reference_pools the first time
-- a policy or a pool event needs it (changed_at null: no event has set it). The row is what a
-- login's assignment reads FOR SHARE and a pool's change updates, so that neither applies the
-- pool's settings as they were before the other committed.
create table pools (
    name text primary key,
    max_sessions integer check (max_sessions >= 1),
    max_connections integer check (max_connections >= 1),
    grace_period_seconds integer check (grace_period_seconds >= 0),
    resource_scoped boolean not null,
    changed_at timestamptz
);

-- A login's limits in force may now be absent one by one (Default sets none): whether it has limits
-- assigned at all is resource_scoped, set with them (null: none, the login has no policy, or an
-- earlier release refused its pool). Rows processes still running the old code write during the
-- rollout have limits without it, and read as none assigned until their login's next event.
alter table logins add column resource_scoped boolean;
alter table logins drop constraint limits_whole;
alter table logins drop constraint limits_need_a_pool;
alter table logins add constraint limits_need_a_pool check (
    pool is not null
    or (resource_scoped is null and max_sessions is null and max_connections is null and grace_period_seconds is null)
);

-- The limits assigned so far came from pools the code had invented (Default 5/20/60 s, General
-- 10/50/120 s): each login's are now its platform pool's, with its overrides. changed_at stays: it
-- is the time of the event that last changed the row, and a rebuild from the events gives the same.
update logins l set
    max_sessions = coalesce(l.override_max_sessions, r.max_sessions),
    max_connections = coalesce(l.override_max_connections, r.max_connections),
    grace_period_seconds = coalesce(l.override_grace_period_seconds, r.grace_period_seconds),
    resource_scoped = r.resource_scoped
from reference_pools r
where r.name = l.pool and l.max_sessions is not null;

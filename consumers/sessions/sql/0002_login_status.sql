-- Where each login is in its life, so that Session Management answers a login created twice, an
-- update before its creation and an update after its deletion as authentication and authorisation
-- do (consumers/sessions/handlers.py):
--   not_created  heard of only through a UserDisabled (answered for every login, the tracker
--                expects it), whose row keeps the login disabled until it is created and enabled;
--   created      its UserCreated applied, with a policy or without one (pool null);
--   deleted      its UserDeleted applied: the row stays, without policy or limits, so that the id
--                is not created again and a later update is refused instead of waiting for a
--                creation that already happened.
-- Rows written before this migration are taken as created (the default), and so are the rows
-- that processes still running the old code write during the rollout.
alter table logins add column status text not null default 'created'
    constraint status_known check (status in ('not_created', 'created', 'deleted'));

alter table logins add constraint deleted_keeps_nothing check (
    status <> 'deleted'
    or (pool is null and override_max_sessions is null and override_max_connections is null
        and override_grace_period_seconds is null and max_sessions is null)
);

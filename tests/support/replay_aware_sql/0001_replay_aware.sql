-- The service's state: rebuilt by a replay.
create table logins (
    login_id text primary key,
    username text not null
);

-- Stands for the world outside the service (a mail sent, a third party called): a replay must not
-- add to it, so a test does not truncate it when it simulates a rebuild.
create table side_effects (
    event_id text not null,
    login_id text not null,
    done_at timestamptz not null default now()
);

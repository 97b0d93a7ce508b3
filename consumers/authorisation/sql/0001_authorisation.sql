-- Logins as authorisation knows them, from xosp.users. A disabled or deleted login keeps its
-- rows; what it had is marked revoked, not deleted, so that enabling it restores exactly that.
create table logins (
    login_id text primary key,
    status text not null check (status in ('active', 'disabled', 'deleted')),
    roles text[] not null,
    markets text[] not null,
    created_flow_id text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

-- Permissions derived from the login's roles (role:<role>) and markets (market-data:<market>).
-- revoked_at is set while the login is disabled (or for good once deleted).
create table permissions (
    login_id text not null references logins,
    permission text not null,
    granted_at timestamptz not null,
    revoked_at timestamptz,
    primary key (login_id, permission)
);

-- Trading accounts authorisation has heard of: opened (xosp.accounts), closed (the registry's
-- RegistryAccountStateChanged, or the compensation of a failed opening). A close can arrive
-- before the opening (the topics are not ordered against each other): the row then exists
-- with no opening yet.
create table accounts (
    account_id text primary key,
    state text not null check (state in ('open', 'closed')),
    opened_flow_id text unique,
    opened_at timestamptz,
    closed_flow_id text,
    closed_at timestamptz
);

-- Account <-> login associations with their rights. revoked_by says who took the access away,
-- so that each undo restores only its own: 'login' (disabled or deleted; enable restores),
-- 'account_login' (unlinked; a new link restores), 'account' (closed; nothing restores).
create table account_access (
    account_id text not null references accounts,
    login_id text not null references logins,
    rights text[] not null,
    -- the flow whose step authorisation.access granted it
    flow_id text not null,
    granted_at timestamptz not null,
    revoked_by text check (revoked_by in ('login', 'account_login', 'account')),
    revoked_at timestamptz,
    primary key (account_id, login_id),
    check ((revoked_by is null) = (revoked_at is null))
);
create index account_access_by_login on account_access (login_id);

-- Associations (an opening or a link) naming logins not known yet: kept whole, with the flow
-- they belong to, and granted when the last of their logins arrives.
create table pending_access (
    flow_id text primary key,
    seq bigserial not null unique,
    account_id text not null references accounts,
    received_at timestamptz not null
);

create table pending_access_logins (
    flow_id text not null references pending_access on delete cascade,
    position integer not null,
    login_id text not null,
    rights text[] not null,
    primary key (flow_id, login_id)
);
create index pending_access_logins_by_login on pending_access_logins (login_id);

-- Failed account flows this service has not seen start (ProvisioningFailed can overtake the
-- opening): an opening with one of these ids is compensated as soon as it is applied.
create table failed_flows (
    flow_id text primary key,
    account_id text not null,
    reason text not null,
    failed_at timestamptz not null
);

-- Every permission a login holds or held: its own, and trade:<account> for each account it may
-- trade. Effective permissions are the rows with no revoked_at.
create view login_permissions as
select login_id, permission, granted_at, revoked_at from permissions
union all
select login_id, 'trade:' || account_id, granted_at, revoked_at from account_access where 'trade' = any(rights);

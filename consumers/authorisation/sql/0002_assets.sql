-- Typed assets and the associations between them, as the platform's Authority service holds
-- permissions: an asset is a type and a code (User:<login id>, TradingAccount:XS:0001,
-- Market:XSX, Group:Traders), an association goes from one asset to another, and what an asset
-- may reach is every asset its associations in force lead to, followed transitively.
--
-- This migration converts what 0001 kept as strings and links: a login's market-data:<market>
-- permissions become User -> Market associations, and its account access User -> TradingAccount
-- associations with the same rights, flow and revocation. Role permissions (role:<role>) stay in
-- permissions: roles are the authentication server's, not Authority assets.
--
-- account_access is no longer read or written; it stays, unchanged, for processes of the
-- previous release that still run during a rollout (they keep working, but what they apply is
-- not in associations: roll authorisation over without overlap, or rebuild it after the
-- rollout). A later release drops it.

-- Config/Init/asset-types.csv of the reference deployment, and Group. A domain, not a table of
-- types: a rebuild empties every table of the schema and replays the topics, which hold no types.
create domain asset_type as text check (value in ('Client', 'Group', 'Market', 'News', 'TradingAccount', 'User'));

-- Assets defined by an event of their own: a Market by its exchange's ExchangeAdded (as
-- market-create.ps1 defines it), a Group by GroupDefined. Logins and accounts are their own
-- tables; the view assets shows every asset.
create table asset_definitions (
    type asset_type not null,
    code text not null,
    name text,
    defined_flow_id text not null,
    defined_at timestamptz not null,
    primary key (type, code),
    check (type not in ('User', 'TradingAccount'))
);

create view assets as
select 'User' as type, login_id as code, null::text as name, created_flow_id as defined_flow_id,
       created_at as defined_at
from logins
union all
select 'TradingAccount', account_id, null, coalesce(opened_flow_id, closed_flow_id), coalesce(opened_at, closed_at)
from accounts
union all
select type, code, name, defined_flow_id, defined_at from asset_definitions;

-- One association from an asset to another. An association may name an asset not defined (yet):
-- the Authority service defines assets as associations name them. rights are what an
-- association to a trading account allows there (view, trade, admin); others have none.
-- revoked_by says who took it away, so that each undo restores only its own, as account_access
-- did: 'login' (its login disabled or deleted; enable restores), 'account_login' (unlinked; a new
-- link restores), 'account' (its account closed; nothing restores). A removed association is
-- deleted.
create table associations (
    from_type asset_type not null,
    from_code text not null,
    to_type asset_type not null,
    to_code text not null,
    rights text[] not null default '{}',
    -- the flow (or the group event) that defined it
    flow_id text not null,
    granted_at timestamptz not null,
    revoked_by text check (revoked_by in ('login', 'account_login', 'account')),
    revoked_at timestamptz,
    primary key (from_type, from_code, to_type, to_code),
    check ((revoked_by is null) = (revoked_at is null)),
    check ((to_type = 'TradingAccount') = (cardinality(rights) > 0)),
    check ((from_type, from_code) <> (to_type, to_code))
);
create index associations_to on associations (to_type, to_code);

insert into associations (from_type, from_code, to_type, to_code, flow_id, granted_at, revoked_by, revoked_at)
select 'User', p.login_id, 'Market', substr(p.permission, length('market-data:') + 1), l.created_flow_id,
       p.granted_at, case when p.revoked_at is not null then 'login' end, p.revoked_at
from permissions p join logins l on l.login_id = p.login_id
where starts_with(p.permission, 'market-data:');
delete from permissions where starts_with(permission, 'market-data:');

insert into associations (from_type, from_code, to_type, to_code, rights, flow_id, granted_at, revoked_by, revoked_at)
select 'User', login_id, 'TradingAccount', account_id, rights, flow_id, granted_at, revoked_by, revoked_at
from account_access;

comment on table account_access is
    'Superseded by associations (migration 0002): read by processes of the previous release only.';

-- Every association in force reachable from each asset that has one (root_type, root_code), each
-- once: the root's own, then those of every asset they lead to, and so on (the Authority
-- service's "transitive associations"). A cycle (a group in a group that leads back) ends the walk
-- where it closes. A login that is not active reaches nothing. Asked for one root, the walk runs
-- for that root only (the condition on the root reaches the roots' subquery).
create view transitive_associations as
select r.root_type, r.root_code, t.from_type, t.from_code, t.to_type, t.to_code, t.rights, t.flow_id, t.granted_at
from (select distinct from_type as root_type, from_code as root_code from associations) r
cross join lateral (
    with recursive walk (type, code) as (
        select r.root_type, r.root_code
        union
        select a.to_type, a.to_code
        from walk w join associations a on a.from_type = w.type and a.from_code = w.code
        where a.revoked_by is null
    )
    select a.from_type, a.from_code, a.to_type, a.to_code, a.rights, a.flow_id, a.granted_at
    from walk w join associations a on a.from_type = w.type and a.from_code = w.code
    where a.revoked_by is null
) t
where r.root_type <> 'User'
   or exists (select 1 from logins l where l.login_id = r.root_code and l.status = 'active');

-- Every permission a login holds or held, once each (in force first): its roles, market-data:<m>
-- and trade:<account> of its own associations (revoked ones too), and those its associations
-- reach through groups while in force.
drop view login_permissions;
create view login_permissions as
select distinct on (login_id, permission) login_id, permission, granted_at, revoked_at
from (
    select login_id, permission, granted_at, revoked_at from permissions
    union all
    select from_code, 'market-data:' || to_code, granted_at, revoked_at from associations
    where from_type = 'User' and to_type = 'Market'
    union all
    select from_code, 'trade:' || to_code, granted_at, revoked_at from associations
    where from_type = 'User' and to_type = 'TradingAccount' and 'trade' = any(rights)
    union all
    select root_code, case to_type when 'Market' then 'market-data:' else 'trade:' end || to_code, granted_at, null
    from transitive_associations
    where root_type = 'User' and from_type <> 'User'
      and (to_type = 'Market' or (to_type = 'TradingAccount' and 'trade' = any(rights)))
) held
order by login_id, permission, revoked_at is not null, granted_at;

-- Trade rights in force (docs/exchanges.md, "Trade rights"). Resource Authorisation announces an
-- account's logins keyed by the account and a login's disable keyed by the login: two partitions
-- the OMS reads in no order between them. Deleting the login's rights on the disable let a grant
-- written before it, read after it, give a disabled login its rights back. Now each partition
-- writes only its own table: the grants, unlinks and closes of an account (in their order) the
-- rights granted, and the login's own events (in theirs) whether it is disabled; a right is in
-- force when both allow it, whatever the order the two were read in.

-- Logins' rights per account as Resource Authorisation last announced them, in force or not.
alter table account_rights rename to granted_rights;
alter index account_rights_pkey rename to granted_rights_pkey;
alter index account_rights_by_login rename to granted_rights_by_login;

-- Logins disabled or deleted (AccessRevoked, scope login) and not enabled since (a
-- PermissionsGranted naming permissions). A login with no row, even one never seen, is enabled.
create table disabled_logins (
    login_id text primary key,
    disabled_by_flow text not null
);

-- The rights in force: what vetting, cancels and every reader count.
create view account_rights as
select g.account_id, g.login_id, g.rights, g.granted_by_flow
from granted_rights g
where not exists (select 1 from disabled_logins d where d.login_id = g.login_id);

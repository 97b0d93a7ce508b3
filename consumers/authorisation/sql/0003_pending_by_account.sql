-- An account's pending associations are read by account (an unlink, a close, ready_for_account):
-- without an index that was a scan of every association still waiting for a login.
create index pending_access_by_account on pending_access (account_id);

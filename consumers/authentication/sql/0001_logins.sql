-- Logins the authentication server identifies. A deleted login keeps its row (status deleted)
-- so that its id is never given out again and a late disable or enable is refused, not applied.
create table logins (
    login_id text primary key,
    username text not null,
    email text not null,
    display_name text not null,
    status text not null check (status in ('active', 'disabled', 'deleted')),
    -- why the login is disabled or deleted, as upstream said it
    status_reason text,
    -- a reference to the credential the authentication server holds; never a password
    credential_ref text,
    -- the UserCreated event (flow) that made the login
    created_flow_id text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

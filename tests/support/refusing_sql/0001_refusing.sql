create table logins (
    login_id text primary key,
    display_name text not null
);

-- Every applied update, in the order applied: what ordering tests read back.
create table login_changes (
    seq bigserial primary key,
    login_id text not null,
    display_name text not null
);

-- While a login is listed here, its updates fail; deleting the row "fixes the cause".
create table refused_logins (
    login_id text primary key
);

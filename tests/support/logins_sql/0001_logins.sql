create table logins (
    login_id text primary key,
    username text not null,
    display_name text not null,
    status text not null,
    changes integer not null default 0
);

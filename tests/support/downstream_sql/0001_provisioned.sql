-- times counts how often each login's follow-up took effect: exactly-once means 1 everywhere.
create table provisioned (login_id text primary key, times integer not null);

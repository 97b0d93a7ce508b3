-- The provisioning tracker: flows, the steps each expects and their state, step reports that
-- arrived before their flow, and what it learnt of logins' session policies.

-- A flow is named by the id of the event that started it (docs/provisioning.md).
create table flows (
    flow_id text primary key,
    kind text not null check (kind in ('user', 'operator', 'account', 'exchange')),
    entity_id text not null,
    -- the event type that started it, for example xosp.user.created.v1
    started_by text not null,
    -- the starting event's correlation id: the tracker's own events about the flow carry it
    correlation_id text not null,
    state text not null default 'open' check (state in ('open', 'completed', 'failed')),
    started_at timestamptz not null,
    completed_at timestamptz,
    failed_at timestamptz,
    -- when ProvisioningStalled was recorded (wall clock of the timer's tick); at most once
    stalled_at timestamptz,
    -- arrival order: breaks ties between flows started at the same time
    seq bigserial not null unique
);
create index flows_by_entity on flows (kind, entity_id, started_at);
create index flows_open on flows (started_at) where state = 'open';

-- expected: nobody reported yet; manual: a person must do it (ManualActionRequired sent).
create table steps (
    flow_id text not null references flows (flow_id),
    step text not null,
    position integer not null,
    service text not null,
    state text not null check (state in ('expected', 'done', 'waiting', 'failed', 'manual')),
    -- time of the event that last changed the step (none while merely expected)
    updated_at timestamptz,
    reason text,
    primary key (flow_id, step)
);

-- Step reports whose flow the tracker does not know (yet): applied, in arrival order, and
-- deleted when a flow of that id starts. Reports of flows the tracker never tracks (the
-- PermissionsGranted of a UserUpdated) stay here, inert: a flow id is an event id, never reused.
create table early_reports (
    seq bigserial primary key,
    flow_id text not null,
    event_id text not null unique,
    event_type text not null,
    outcome text not null check (outcome in ('done', 'waiting', 'failed')),
    -- named by StepWaiting, StepFailed and ManualActionCompleted; else derived when the flow starts
    step text,
    service text,
    reason text,
    reported_at timestamptz not null
);
create index early_reports_by_flow on early_reports (flow_id, seq);

-- Whether a login has a session policy: a UserEnabled flow expects sessions.limits only then.
create table logins (
    login_id text primary key,
    has_session_policy boolean not null,
    updated_at timestamptz not null
);

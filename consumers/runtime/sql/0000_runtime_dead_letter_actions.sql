-- What an operator asked of a dead letter, carried out by the service's own process
-- (consumers/runtime/dead_letter_actions.py). redriven_at now means "redrive asked for at": the
-- stored record is applied again to this service only, never re-published to a topic others read.
-- A discard records who threw the event away, when and why, and releases the events parked
-- behind it; the entry stays as the audit trail.
alter table xbus_dead_letters
    add column discard_requested_at timestamptz,
    add column discarded_by text,
    add column discard_reason text,
    add column discarded_at timestamptz;

-- A step no service takes (the Prodigy operator) is asked of one operator, the one its
-- ManualActionRequired names: only that operator's ManualActionCompleted closes it. Null for a
-- step a service takes, which closes on the service's own report and never by hand.
alter table steps add column asked_of text;

-- Every manual step so far is the prodigy.operator step of an OperatorRegistered flow, asked of
-- the operator that flow registers (its entity).
update steps set asked_of = flows.entity_id
from flows
where flows.flow_id = steps.flow_id and flows.kind = 'operator' and steps.step = 'prodigy.operator';

-- "Stall" keeps one meaning, a Kafka partition whose committed offset does not move while it has
-- lag; a flow not complete XBUS_PROVISIONING_OVERDUE_SECONDS after it started is overdue.

-- when ProvisioningOverdue (before it, ProvisioningStalled) was recorded (wall clock of the
-- timer's tick); at most once
alter table flows rename column stalled_at to overdue_at;

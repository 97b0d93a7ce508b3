-- Deposits and withdrawals the OMS books itself, in a deployment without the registry
-- (XBUS_REGISTRY=false: the OMS is the book of record; docs/operations.md). With the registry
-- the OMS books the registry's CashMovementApplied on `cash` alone, and this table stays empty.
--
-- A bank transfer is credited once: bank_reference is a deposit's reference, set on deposits only,
-- and the unique key on (account, bank_reference) is the guard (nulls, the withdrawals', never collide).
create table cash_movements (
    seq bigint generated always as identity primary key,
    account_id text not null,
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    delta numeric(36, 8) not null check (delta <> 0),
    reference text not null,
    bank_reference text check (bank_reference is null or (delta > 0 and bank_reference = reference)),
    flow_id text not null,
    booked_at timestamptz not null,
    unique (account_id, bank_reference)
);

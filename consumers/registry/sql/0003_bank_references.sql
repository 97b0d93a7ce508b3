-- A bank transfer is credited to an account once (issue 20, defect 7): a FundsDeposited sent again
-- under a new event id carries the same bank reference, and is refused with the earlier credit.
--
-- bank_reference is a deposit's reference, set on deposits only; the unique key on (account,
-- bank_reference) is the guard (nulls, the withdrawals', never collide). Deposits credited twice
-- before this migration stay in the ledger as they were, for a person to reconcile: only the first
-- credit of each reference is marked, so the key holds from here on.
alter table cash_movements add column bank_reference text;

update cash_movements m set bank_reference = m.reference
where m.delta > 0
  and m.seq = (select min(f.seq) from cash_movements f
               where f.account_id = m.account_id and f.reference = m.reference and f.delta > 0);

alter table cash_movements add constraint cash_movements_bank_reference_once unique (account_id, bank_reference);
alter table cash_movements add constraint cash_movements_bank_reference_of_a_deposit
    check (bank_reference is null or (delta > 0 and bank_reference = reference));

-- Every exchange settles through the registry of a deployment that runs one (XBUS_REGISTRY,
-- docs/operations.md): the per-exchange flag is no longer read or written. The column stays for
-- processes of the previous release still running (expand, then contract in a later release),
-- true for rows they write and for the rows they wrote.
alter table exchanges alter column settles_through_registry set default true;
update exchanges set settles_through_registry = true where not settles_through_registry;

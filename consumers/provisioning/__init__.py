"""The provisioning tracker: flows (of users, operators, accounts and exchanges), the steps each
expects, and their outcome (docs/provisioning.md; exchanges: docs/exchanges.md)."""

"""The provisioning tracker: flows, the steps each expects, and their outcome (docs/provisioning.md)."""

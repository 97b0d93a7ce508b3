"""The HTTP side of the bus: `xbus serve` (publish over HTTP, status and lag queries, scoped tokens)."""

"""`xbus rebuild`: a service's state rebuilt from its topics, in place or as a shadow beside it.

- :func:`rebuild` (in place) refuses while the service's group has members, takes the topics'
  log-end offsets as the target, moves the group to the log start, empties the schema
  (state.py) with replay marks at the offsets the group had reached, and runs the
  service's consumer alone (``ServiceRunner(consume_only=True)``: no relay, no timers, no
  background tasks, so nothing is published) until it has committed the target everywhere.
- :func:`rebuild_shadow` does the same into the schema ``<prefix>shadow_<service>`` under the
  group ``<group prefix>shadow.xbus.<service>`` while the live service keeps serving, then
  compares the two states (diff.py): the shadow as of the target with the live state as
  of the comparison.
- :func:`swap_shadow` (the live service stopped) reads the shadow up to the log end, renames the
  live schema to a dated backup and the shadow to the live name in one transaction, and moves
  the live group's offsets to the shadow's.

A service with a projection (``market_data``) is refused: its projection's state is folded by a
background task, which a rebuild does not run.
"""

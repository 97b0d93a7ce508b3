"""Replaying a consumer group: plan where each of its partitions goes, then move it safely.

The plan is pure arithmetic on offsets (current committed, log start, log end, a mode): it can be
printed, tested and read before anything changes. Executing it moves the group's offsets without
joining the group (infrastructure/groups.py), which Kafka allows only while the group has no members, so
we refuse an active group and look again right before committing.

When the group is an xbus service's, the offset each partition had reached is written into the
service's schema as a *replay mark* first (consumers/runtime/replay_marks.py): the service then
hands the records it reads again to its handlers with ``UnitOfWork.replayed`` set, so they can
skip external side effects. Marks go in before the offsets move, so a crash in between leaves
marks that nothing reads below (harmless) and never moved offsets without marks.

Finding the offset of a point in time reads the records' own timestamps (a binary search per
partition), because the embedded broker's ``offsets_for_times`` is wrong (docs/brokers.md).
It assumes timestamps within a partition never go backwards, which holds for our producers
(CreateTime stamped as each record is appended); with out-of-order timestamps the answer is an
offset where they cross ``T``, not necessarily the first one at or after it.
"""

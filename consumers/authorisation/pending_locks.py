"""The accounts whose pending associations a batch touches, locked for the whole batch
(``Service.locks_found``).

An association waits (``pending_access``) until every login it names has arrived. Two of its
logins arriving at once, in two batches, must not each miss the other's uncommitted row (the
association would stay pending for good), nor may an unlink or a close of its account slip
between a login's readiness check and its grant. Each batch that reads or changes an account's
pending associations therefore holds ``pending:<account>``. A batch of account events knows its
accounts from the events; a login's arrival learns them from the table, once its login's lock is
held: no association naming the login can be added after that, since adding one takes the
login's lock too (locks.py).

These were row locks, taken by each ``UserCreated`` handler in turn: a batch of several logins
took one account's rows and then another's, a second batch the same two in the other order, and
the two deadlocked (bench/backlog.py: 68-145 batches retried by authorisation alone). Taken here,
all at once and sorted, after every batch's entity locks, they cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.authorisation.locks import ACCOUNT, entities_of
from consumers.runtime.unit_of_work import DbConnection
from schemas import Event
from schemas.users import UserCreated

PENDING = "pending:"

_ACCOUNTS_PENDING_FOR = """
    select distinct p.account_id from pending_access p
    join pending_access_logins w on w.flow_id = p.flow_id
    where w.login_id = any($1::text[])
"""


async def pending_locks(connection: DbConnection, events: Sequence[Event]) -> list[str]:
    """``pending:<account>`` for every account an event of the batch names, and for every account
    with an association waiting for a login the batch creates."""
    named = (name for event in events for name in entities_of(event))
    accounts = {name.removeprefix(ACCOUNT) for name in named if name.startswith(ACCOUNT)}
    arriving = [event.login_id for event in events if isinstance(event, UserCreated)]
    if arriving:
        accounts.update(row["account_id"] for row in await connection.fetch(_ACCOUNTS_PENDING_FOR, arriving))
    return [f"{PENDING}{account}" for account in sorted(accounts)]

"""A batch waiting for locks is excused only when what it waits on is progressing (lock_waits.py)."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.runtime.lock_waits import Backend, waiting_on_progress, waits_only_on_progress

LIMIT = 1.0


def backends(*items: Backend) -> dict[int, Backend]:
    return {backend.pid: backend for backend in items}


@pytest.mark.parametrize(("quiet", "excused"), [(0.0, True), (0.99, True), (1.0, False), (5.0, False), (None, False)])
def test_a_backend_waiting_on_no_one_is_excused_only_while_it_starts_or_completes_statements(
    quiet: float | None, excused: bool
) -> None:
    """A quiet batch that waits for no lock is stuck in its own handler: its stillness counts. One
    whose statement started or completed within the limit progresses: its watch woke late."""
    assert waits_only_on_progress(1, backends(Backend(1, (), quiet)), LIMIT) is excused


def test_a_backend_not_found_is_not_excused() -> None:
    assert not waits_only_on_progress(1, backends(Backend(2, (), 0.1)), LIMIT)


@pytest.mark.parametrize(("quiet", "excused"), [(0.0, True), (0.99, True), (1.0, False), (7.0, False), (None, False)])
def test_a_wait_on_one_holder_is_excused_while_the_holder_completes_statements(
    quiet: float | None, excused: bool
) -> None:
    found = backends(Backend(1, (2,), 3.0), Backend(2, (), quiet))
    assert waits_only_on_progress(1, found, LIMIT) is excused


def test_a_wait_on_several_holders_needs_every_one_progressing() -> None:
    busy, quiet = Backend(2, (), 0.2), Backend(3, (), 4.0)
    assert waits_only_on_progress(1, backends(Backend(1, (2, 3), 3.0), busy, Backend(3, (), 0.3)), LIMIT)
    assert not waits_only_on_progress(1, backends(Backend(1, (2, 3), 3.0), busy, quiet), LIMIT)


def test_a_holder_that_ended_since_counts_as_progress() -> None:
    """Its locks are released: the waiter's turn is coming."""
    assert waits_only_on_progress(1, backends(Backend(1, (2,), 3.0)), LIMIT)


def test_a_chain_is_followed_to_the_holder_that_does_not_wait() -> None:
    """1 waits on 2, which waits on 3: 2 is quiet because it waits, so 3 decides."""
    chain = [Backend(1, (2,), 3.0), Backend(2, (3,), 3.0)]
    assert waits_only_on_progress(1, backends(*chain, Backend(3, (), 0.1)), LIMIT)
    assert not waits_only_on_progress(1, backends(*chain, Backend(3, (), 2.0)), LIMIT)


def test_a_cycle_is_not_excused() -> None:
    """A deadlock among the others: PostgreSQL breaks it, and until then nothing progresses."""
    cycle = backends(Backend(1, (2,), 3.0), Backend(2, (3,), 0.1), Backend(3, (2,), 0.1))
    assert not waits_only_on_progress(1, cycle, LIMIT)


async def test_a_wait_that_cannot_be_read_is_not_excused() -> None:
    """The database away or the pool closed: the batch is treated as stuck, as before waits were
    told apart."""
    pool = await asyncpg.create_pool("postgresql://nobody@127.0.0.1:1/none", min_size=0)
    await pool.close()
    assert not await waiting_on_progress(pool, 1, LIMIT)

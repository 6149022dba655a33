"""Generators wait on the pool for room under the target and wake on the change that frees it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from selfinstruct_async.run.pool import Pool

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def waiting(wait: Callable[[], Awaitable[None]]) -> AsyncIterator[anyio.Event]:
    """Run ``wait`` in a task until it blocks; the event is set when it returns."""
    woke = anyio.Event()

    async def waiter() -> None:
        await wait()
        woke.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not woke.is_set()
            yield woke


async def test_a_generator_waiting_for_room_wakes_when_a_candidate_is_rejected() -> None:
    pool = Pool([], [], target=1)
    pool.start_generation()
    pool.end_generation(1)  # one candidate under way covers the target
    assert not pool.wants_more()
    async with waiting(pool.wait_until_wanted) as woke:
        pool.decided(False)  # rejected: the place is free again
        await woke.wait()


async def test_a_change_that_frees_no_room_leaves_the_generator_waiting() -> None:
    pool = Pool([], [], target=1)
    pool.start_generation()
    pool.end_generation(2)
    async with waiting(pool.wait_until_wanted) as woke:
        pool.decided(False)  # one of two rejected: the other still covers the target
        await anyio.wait_all_tasks_blocked()
        assert not woke.is_set()
        pool.decided(False)
        await woke.wait()


async def test_the_run_waiting_for_the_target_wakes_on_the_accepting_finish() -> None:
    pool = Pool([], [], target=1, pending=1)
    async with waiting(pool.wait_until_done) as reached:
        pool.finish("Name three rivers.")
        await reached.wait()

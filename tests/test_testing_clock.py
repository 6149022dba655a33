"""selfinstruct_async.testing.ManualClock: virtual time that jumps once every task is blocked."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from selfinstruct_async.client.pacing import Clock
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time


def test_manual_clock_is_a_pacing_clock() -> None:
    clock: Clock = ManualClock(start=5.0)  # mypy checks the Protocol; this checks the start
    assert clock.now() == 5.0


@pytest.mark.anyio
async def test_sleepers_wake_in_deadline_order_each_at_its_own_deadline() -> None:
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.now()))

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, "late", 120.0)
            tg.start_soon(sleeper, "early", 2.5)
            tg.start_soon(sleeper, "middle", 30.0)

    await on_virtual_time(clock, body)
    assert woke == [("early", 2.5), ("middle", 30.0), ("late", 120.0)]
    assert sorted(clock.deadlines) == [2.5, 30.0, 120.0]


@pytest.mark.anyio
async def test_settle_returns_only_once_busy_tasks_are_blocked() -> None:
    steps: list[int] = []
    release = anyio.Event()

    async def busy() -> None:
        for step in range(200):  # runnable all along: settle must not return in between
            steps.append(step)
            await anyio.lowlevel.checkpoint()
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(busy)
        await ManualClock.settle()
        assert len(steps) == 200
        release.set()


@pytest.mark.anyio
async def test_a_set_wake_event_cuts_a_sleep_short_without_moving_time() -> None:
    clock = ManualClock()
    wake = anyio.Event()

    async def waker() -> None:
        await ManualClock.settle()  # the sleeper is blocked now
        wake.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waker)
        await clock.sleep_until(3600.0, wake)
    assert clock.now() == 0.0
    assert not clock.jump()  # the abandoned deadline no longer counts as a sleeper


def test_advance_wakes_exactly_the_sleepers_whose_deadline_came() -> None:
    clock = ManualClock()

    async def body() -> list[float]:
        woke: list[float] = []

        async def sleeper(deadline: float) -> None:
            await clock.sleep_until(deadline)
            woke.append(deadline)

        async with anyio.create_task_group() as tg:
            for deadline in (1.0, 2.0, 3.0):
                tg.start_soon(sleeper, deadline)
            await ManualClock.settle()
            clock.advance(2.0)
            await ManualClock.settle()
            assert woke == [1.0, 2.0]
            clock.advance(1.0)
        return woke

    assert anyio.run(body) == [1.0, 2.0, 3.0]

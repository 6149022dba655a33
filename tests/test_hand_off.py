"""Stage hand-offs take what is ready without a loop turn, yet stay fair and cancellable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectSendStream

from selfinstruct_async.run.hand_off import FAIR_AFTER, Received, hand_over

pytestmark = pytest.mark.anyio


class Turns:
    """Counts the loop turns other tasks get: one tick each time a task lets the loop run."""

    def __init__(self) -> None:
        self.count = 0

    async def tick(self) -> None:
        while True:
            await checkpoint()
            self.count += 1


@asynccontextmanager
async def ticking() -> AsyncIterator[Turns]:
    turns = Turns()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(turns.tick)
            await checkpoint()  # the ticker starts, and waits for its next turn
            yield turns
            tg.cancel_scope.cancel()


async def test_ready_items_are_taken_without_a_loop_turn_and_the_loop_runs_every_few() -> None:
    send, receive = anyio.create_memory_object_stream[int](100)
    for number in range(3 * FAIR_AFTER):
        send.send_nowait(number)
    send.close()
    seen: list[tuple[int, int]] = []
    async with ticking() as turns, receive:
        async for number in Received(receive):
            seen.append((number, turns.count))
    assert [number for number, _ in seen] == list(range(3 * FAIR_AFTER))
    others_ran = [turn for _, turn in seen]
    # The first FAIR_AFTER items come without the other task running at all; then one
    # turn for it, and again after each FAIR_AFTER more.
    assert others_ran[:FAIR_AFTER] == [0] * FAIR_AFTER
    assert others_ran[FAIR_AFTER : 2 * FAIR_AFTER] == [1] * FAIR_AFTER
    assert others_ran[2 * FAIR_AFTER :] == [2] * FAIR_AFTER


async def test_handing_over_into_a_buffer_with_room_lets_no_other_task_run() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    async with ticking() as turns, send, receive:
        before = turns.count
        for number in range(10):
            await hand_over(send, number)
        assert turns.count == before
        assert [receive.receive_nowait() for _ in range(10)] == list(range(10))


async def test_a_full_buffer_makes_the_sender_wait_for_the_receiver() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    got: list[int] = []

    async def consume() -> None:
        async with receive:
            async for number in Received(receive):
                got.append(number)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            async with send:
                for number in range(50):
                    await hand_over(send, number)
                    assert send.statistics().current_buffer_used <= 1
    assert got == list(range(50))


async def test_a_cancelled_receiver_takes_no_more_items_though_they_are_ready() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    for number in range(5):
        send.send_nowait(number)
    got: list[int] = []
    with anyio.CancelScope() as scope:
        async for number in Received(receive):
            got.append(number)
            if number == 1:
                scope.cancel()
    assert scope.cancelled_caught
    assert got == [0, 1]
    assert receive.statistics().current_buffer_used == 3


async def test_a_cancelled_sender_hands_nothing_over_though_there_is_room() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await hand_over(send, 1)
    assert scope.cancelled_caught
    assert receive.statistics().current_buffer_used == 0


async def test_items_end_when_every_sender_has_closed() -> None:
    send, receive = anyio.create_memory_object_stream[str](0)
    got: list[str] = []

    async def produce(name: str, sender: MemoryObjectSendStream[str]) -> None:
        async with sender:
            for number in range(3):
                await hand_over(sender, f"{name}{number}")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, send:
            tg.start_soon(produce, "a", send.clone())
            tg.start_soon(produce, "b", send.clone())
            send.close()
            async for item in Received(receive):
                got.append(item)
    assert sorted(got) == ["a0", "a1", "a2", "b0", "b1", "b2"]

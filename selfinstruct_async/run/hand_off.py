"""Moving items along the stages' streams without a trip through the event loop each time.

anyio's memory object streams checkpoint on every ``send`` and ``receive``: the task goes
to the back of the loop's queue even when an item or a free slot is waiting. In the
pipeline that was about ten loop turns per request (issue 15, ``bench/README.md``).
:func:`hand_over` and :class:`Received` take the free slot or the waiting item at once and
fall back to the stream's own ``send`` and ``receive`` (which checkpoint, then wait) only
when they would block.

What is kept of a checkpoint: a pending cancellation is raised first, as before, so a
cancelled stage still stops at its next hand-off; and a receiver yields to the loop after
:data:`FAIR_AFTER` items in a row that were ready, so a stage with a full input cannot keep
the others from running. A sender needs no such count: a full buffer makes it wait.

Without the loop turn, a sender can reach a stream whose receivers have all gone before
the run's cancellation reaches it, and gets ``BrokenResourceError`` where it used to be
cancelled; so the pipeline keeps the one stream a stage leaves early (``filter_instances``
stops once the target is met) open until the run is cancelled.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from anyio import EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")

# Ready items a receiver takes before it lets the loop run others once: large enough that
# the turn's cost is spread thin, small next to a stream's buffer (run.queue_size).
FAIR_AFTER = 16


async def hand_over(send: MemoryObjectSendStream[T], item: T) -> None:
    """``send.send(item)``, without a loop turn when a receiver waits or the buffer has room."""
    await checkpoint_if_cancelled()
    try:
        send.send_nowait(item)
    except WouldBlock:
        await send.send(item)


class Received(Generic[T]):
    """``async for item in Received(receive)``: the items of ``receive`` until it ends.

    Each item that is already waiting is taken without a loop turn, up to
    :data:`FAIR_AFTER` in a row; otherwise the stream's own ``receive`` waits for one.
    """

    __slots__ = ("_in_a_row", "_receive")

    def __init__(self, receive: MemoryObjectReceiveStream[T]) -> None:
        self._receive = receive
        self._in_a_row = 0

    def __aiter__(self) -> Received[T]:
        return self

    async def __anext__(self) -> T:
        await checkpoint_if_cancelled()
        if self._in_a_row < FAIR_AFTER:
            try:
                item = self._receive.receive_nowait()
            except WouldBlock:
                pass
            except EndOfStream:
                raise StopAsyncIteration from None
            else:
                self._in_a_row += 1
                return item
        # The item a loop turn brings starts the next run of FAIR_AFTER.
        self._in_a_row = 1
        try:
            return await self._receive.receive()
        except EndOfStream:
            raise StopAsyncIteration from None

"""Store calls one at a time, on a worker thread when commits wait for the disk.

With ``run.durability = "power"`` every commit waits for an fsync, so calls run on a worker
thread and disk waits never stall the event loop. With ``"process"`` a commit is a write
to SQLite's WAL in the page cache (tens of microseconds), less than the hop to a thread
and back costs: calls run on the event loop's own thread (``inline``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .counter_buffer import CounterBuffer, TakenCounters

R = TypeVar("R")


class StoreCalls:
    """Runs store methods serialised (SQLite has one writer anyway), off the loop or on it."""

    def __init__(self, counters: CounterBuffer, *, inline: bool = False) -> None:
        self._counters = counters
        self._limiter = anyio.CapacityLimiter(1)
        self.inline = inline
        #: Called on the event loop's thread after every call that returns (the group
        #: committer's wake-up, see ``commit_groups``).
        self.after: Callable[[], None] | None = None

    async def light(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` for a call that writes memory, not the disk (a write kept for the
        next commit, a request number): inline, it runs without a turn for the others, which
        costs more than the call; on a worker thread's store it waits its turn as any call.
        """
        if self.inline:
            return fn(*args)
        return await self(fn, *args)

    async def __call__(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``, on a worker thread unless ``inline``.

        Counters taken for the call go back to the buffer when it does not commit
        (cancelled while waiting for its turn, or rolled back), so the final flush keeps them.
        """
        try:
            if self.inline:
                result = fn(*args)
                if self.after is not None:
                    self.after()
                # A turn for the other tasks, as the hop to a thread gave them, so that a
                # stage deciding many candidates in a row does not hold up the answers
                # waiting to be read. Shielded: a cancellation is not delivered here but
                # at the caller's next await, so the call and what the caller does next
                # with its result (count what it stored) are never split.
                await anyio.lowlevel.cancel_shielded_checkpoint()
                return result
            result = await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
            if self.after is not None:
                self.after()
            return result
        except BaseException:
            for arg in args:
                if isinstance(arg, TakenCounters):
                    self._counters.give_back(arg)
            raise

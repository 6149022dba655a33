"""Store calls on a worker thread, one at a time: disk waits never stall the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .counter_buffer import CounterBuffer, TakenCounters

R = TypeVar("R")


class StoreCalls:
    """Runs store methods off the loop, serialised (SQLite has one writer anyway)."""

    def __init__(self, counters: CounterBuffer) -> None:
        self._counters = counters
        self._limiter = anyio.CapacityLimiter(1)

    async def __call__(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` on a worker thread.

        Counters taken for the call go back to the buffer when it does not commit
        (cancelled while waiting for its turn, or rolled back), so the final flush keeps them.
        """
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except BaseException:
            for arg in args:
                if isinstance(arg, TakenCounters):
                    self._counters.give_back(arg)
            raise

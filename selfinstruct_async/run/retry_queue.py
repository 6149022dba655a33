"""Tasks whose request failed, waiting a fixed delay before they go back into their stage."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .hand_off import hand_over

T = TypeVar("T")


class RetryQueue(Generic[T]):
    """Tasks waiting ``delay`` seconds before they go back into ``stage``'s stream.

    The delay is the same for all, so the queue is in due order and one feeder sleeps
    until the head is due: a computed wait, never a poll. Its length is bounded by the
    pool, which pauses generation while too many tasks wait (``Pool.max_deferred``).
    """

    def __init__(self, stage: str, delay: float, on_resent: Callable[[], None]) -> None:
        self.stage = stage
        self.delay = delay
        self._on_resent = on_resent
        self._due: deque[tuple[float, T]] = deque()
        self._added = anyio.Event()

    def __len__(self) -> int:
        return len(self._due)

    def add(self, item: T) -> None:
        self._due.append((anyio.current_time() + self.delay, item))
        self._added.set()

    async def feed(self, send: MemoryObjectSendStream[T]) -> None:
        """Send each item back once it is due; runs until cancelled."""
        async with send:
            while True:
                while not self._due:
                    self._added = anyio.Event()
                    await self._added.wait()
                due, item = self._due[0]
                await anyio.sleep_until(due)
                self._due.popleft()
                await hand_over(send, item)
                self._on_resent()

"""Helpers for tests, ours and plugin authors': virtual time for code that paces and retries.

Nothing in a run imports this module. :class:`ManualClock` implements
:class:`selfinstruct_async.client.pacing.Clock`; hand it to a
:class:`~selfinstruct_async.client.pacing.Pacer` or to
:func:`~selfinstruct_async.client.http.build_http_client` and run the code under test beside
:meth:`ManualClock.autojump`: every sleep then ends as soon as nothing else can run, at the
deadline it asked for, so a test of minutes of back-off takes milliseconds and sees exact
times.

What it depends on: :meth:`ManualClock.settle` reads ``loop._ready``, the queue of
callbacks ready to run in CPython's asyncio event loop (``asyncio.BaseEventLoop``, as in
the CPython 3.11+ this project supports). It is private: a CPython release may rename or
change it without notice. It is used because "every task is blocked" is exactly "that queue
holds nothing but the waiting task", a check that is instant; the public alternative,
:func:`anyio.wait_all_tasks_blocked`, polls with real 0.1 s sleeps on asyncio, which would
make every virtual-time test slow. On a loop without ``_ready`` (uvloop, another anyio
backend) :meth:`~ManualClock.settle` falls back to that public function: still correct,
only slower.
"""

from __future__ import annotations

import asyncio
import heapq

import anyio
import anyio.lowlevel

__all__ = ["ManualClock"]

# Deadlines this close to now count as due: float sums of intervals are not exact.
_EPS = 1e-9


class ManualClock:
    """Virtual time for tests: time moves only through :meth:`advance` or :meth:`autojump`.

    ``autojump`` (run it in the test's task group) waits until every task is blocked and
    then jumps to the earliest pending deadline, so code that sleeps finishes instantly
    while observing the times it computed. Every deadline asked for is appended to
    :attr:`deadlines`, for tests that check the waits themselves.
    """

    _settling = 0

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._seq = 0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._new_sleeper = anyio.Event()
        self.deadlines: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake sleepers whose deadline has come."""
        self._now += seconds
        self._wake_due()

    def jump(self) -> bool:
        """Jump to the earliest pending deadline; ``False`` if nobody sleeps."""
        while self._sleepers and self._sleepers[0][2].is_set():
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return False
        self._now = max(self._now, self._sleepers[0][0])
        self._wake_due()
        return True

    @staticmethod
    async def settle() -> None:
        """Return once every other task is blocked (waiting on an event, a lock or I/O).

        On asyncio this watches the loop's private ready queue, which is exact and instant
        (see the module docstring); elsewhere it falls back to
        ``anyio.wait_all_tasks_blocked``.
        """
        try:
            loop = asyncio.get_running_loop()
            ready = loop._ready  # type: ignore[attr-defined]
        except (RuntimeError, AttributeError):
            await anyio.wait_all_tasks_blocked()
            return
        # Other tasks settling at the same time each keep one entry in the ready queue.
        ManualClock._settling += 1
        try:
            while True:
                await asyncio.sleep(0)
                if len(ready) < ManualClock._settling:
                    return
        finally:
            ManualClock._settling -= 1

    async def autojump(self) -> None:
        """Forever: once all tasks are blocked, jump to the next deadline."""
        while True:
            await self.settle()
            if not self.jump():
                self._new_sleeper = anyio.Event()
                await self._new_sleeper.wait()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now + _EPS:
            heapq.heappop(self._sleepers)[2].set()

    async def sleep_until(self, deadline: float, wake: anyio.Event | None = None) -> None:
        self.deadlines.append(deadline)
        if deadline <= self._now or (wake is not None and wake.is_set()):
            await anyio.lowlevel.checkpoint()
            return
        due = anyio.Event()
        self._seq += 1
        heapq.heappush(self._sleepers, (deadline, self._seq, due))
        self._new_sleeper.set()
        if wake is None:
            await due.wait()
            return
        async with anyio.create_task_group() as tg:

            async def wait_for(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait_for, due)
            tg.start_soon(wait_for, wake)
        due.set()  # retire the heap entry if ``wake`` won

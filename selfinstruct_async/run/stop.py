"""The graceful stop: no new request starts, those in flight finish and are recorded.

Every request passes through :meth:`StopGate.request`. Once :meth:`StopGate.stop_requesting`
is called, new requests wait forever (the run cancels them after the drain) and
:meth:`StopGate.wait_idle` returns as soon as the last request in flight has ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


class StopGate:
    """The stopping flag and the count of requests in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._stopping = anyio.Event()
        self._idle = anyio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop_requesting(self) -> None:
        """Let no new request start; those in flight finish."""
        self._stopping.set()
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is in flight after :meth:`stop_requesting`."""
        await self._idle.wait()

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Hold one request in flight; once stopping, wait until cancelled instead."""
        if self.stopping:
            await anyio.sleep_forever()  # cancelled once in-flight requests have drained
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self.stopping:
                self._idle.set()

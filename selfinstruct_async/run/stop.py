"""The graceful stop: no new request starts, those in flight finish and are recorded.

Every request passes through :meth:`StopGate.request`. Once :meth:`StopGate.stop_requesting`
is called, new requests wait forever (the run cancels them after the drain) and
:meth:`StopGate.wait_idle` returns as soon as the last request in flight has ended.
"""

from __future__ import annotations

from types import TracebackType

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

    def request(self) -> _InFlight:
        """Hold one request in flight (``async with``); once stopping, wait until cancelled."""
        return _InFlight(self)


class _InFlight:
    """One request in flight. A class, not ``asynccontextmanager``: every request makes one,
    and a generator-based context manager costs several times more."""

    __slots__ = ("_gate",)

    def __init__(self, gate: StopGate) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        gate = self._gate
        if gate.stopping:
            await anyio.sleep_forever()  # cancelled once in-flight requests have drained
        gate.in_flight += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gate = self._gate
        gate.in_flight -= 1
        if gate.in_flight == 0 and gate.stopping:
            gate._idle.set()

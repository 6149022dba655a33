"""A value of the run made once, on first use, by whichever worker needs it first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Once(Generic[T]):
    """Holds one value made by the first :meth:`get`; others wait for it, none remake it.

    A failed (or cancelled) make leaves it empty, so the next caller tries again.
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._lock: anyio.Lock | None = None

    async def get(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._value is not None:
            return self._value
        # Made on first use: the run's event loop is running by then.
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._value is None:
                self._value = await make()
            return self._value

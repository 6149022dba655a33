"""The simulated provider's per-minute limits, enforced in sub-minute windows.

Two ways, as providers do it:

- a continuously refilled bucket holding ``window`` seconds of the limit, full at start
  (the default);
- fixed slices of ``limit_slice`` seconds (``SimulatorSettings.limit_slice``), each
  allowing ``limit / 60 * limit_slice`` (600 rpm in 1 s slices: 10 per slice; in 100 ms
  slices: 1). The slice boundaries are multiples of ``limit_slice`` on the wall clock, so
  they sit wherever they sit relative to a client's clock, as a hosted provider's do.

:meth:`ProviderLimits.headers` reports the state in ``x-ratelimit-*`` headers: what is left
and when it is all back (for slices: the end of the current slice), and
:meth:`ProviderLimits.admit` gives the wait a 429's ``Retry-After`` says (for slices: the
start of the first slice the request fits in).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from ..client.rate_limit import TokenBucket
from .settings import SimulatorSettings

_EPS = 1e-9


class _Window(Protocol):
    """One limit's accounting: when a cost fits, charge it, refund it, report it."""

    def ready_at(self, cost: float, now: float) -> float: ...

    def take(self, cost: float, now: float) -> None: ...

    def give(self, amount: float, now: float) -> None: ...

    def remaining(self, now: float) -> float: ...

    def reset(self, now: float) -> float: ...


class _Sliding:
    """The bucket: ``window`` seconds of the limit, refilled continuously."""

    def __init__(self, per_minute: float, window: float, now: float) -> None:
        capacity = max(1.0, per_minute / 60.0 * window)
        self.bucket = TokenBucket(per_minute / 60.0, capacity, now, level=capacity)

    def ready_at(self, cost: float, now: float) -> float:
        return self.bucket.ready_at(cost, now)

    def take(self, cost: float, now: float) -> None:
        self.bucket.take(cost, now)

    def give(self, amount: float, now: float) -> None:
        self.bucket.give(amount, now)

    def remaining(self, now: float) -> float:
        self.bucket.refill(now)
        return self.bucket.level

    def reset(self, now: float) -> float:
        bucket = self.bucket
        bucket.refill(now)
        return max(0.0, (bucket.capacity - bucket.level) / bucket.rate)


class _Slices:
    """Fixed slices of ``length`` seconds, each allowing ``allowance``.

    A cost larger than a whole slice's allowance is let into an untouched slice and
    carried as debt into the next ones (so big token requests are slowed, not refused
    for ever, like the bucket's debt); otherwise a slice admits while its count fits.
    """

    def __init__(self, per_minute: float, length: float, now: float, wall: float) -> None:
        self.length = length
        self.allowance = per_minute / 60.0 * length
        # Loop time ``t`` is wall time ``t + offset``; slices are wall-clock multiples.
        self.offset = wall - now
        self.index = self._index(now)
        self.used = 0.0

    def _index(self, now: float) -> int:
        return math.floor((now + self.offset) / self.length + _EPS)

    def _start(self, index: int) -> float:
        return index * self.length - self.offset

    def _roll(self, now: float) -> None:
        index = self._index(now)
        if index > self.index:
            self.used = max(0.0, self.used - self.allowance * (index - self.index))
            self.index = index

    def _fits(self, used: float, cost: float) -> bool:
        return used <= _EPS or used + cost <= self.allowance + _EPS

    def ready_at(self, cost: float, now: float) -> float:
        self._roll(now)
        if self._fits(self.used, cost):
            return now
        # The first later slice whose leftover debt lets it in: paid off, or room for it.
        paid = math.ceil((self.used - _EPS) / self.allowance)
        room = math.ceil((self.used + cost - self.allowance - _EPS) / self.allowance)
        return self._start(self.index + max(1, min(paid, room)))

    def take(self, cost: float, now: float) -> None:
        self._roll(now)
        self.used += cost

    def give(self, amount: float, now: float) -> None:
        # Back into the current slice: the slice that charged it may be over.
        self._roll(now)
        self.used = max(0.0, self.used - amount)

    def remaining(self, now: float) -> float:
        self._roll(now)
        return max(0.0, self.allowance - self.used)

    def reset(self, now: float) -> float:
        self._roll(now)
        slices = max(1, math.ceil(self.used / self.allowance - _EPS))
        return max(0.0, self._start(self.index + slices) - now)


class ProviderLimits:
    """The provider's per-minute limits as sub-minute windows, with header values."""

    def __init__(self, settings: SimulatorSettings, now: float, wall: float | None = None) -> None:
        """``now`` is the clock the limits are then asked with; ``wall`` the wall-clock
        time at ``now`` (default ``time.time()``), which places the slice boundaries."""
        at_wall = time.time() if wall is None else wall

        def window(limit: float | None) -> _Window | None:
            if limit is None:
                return None
            if settings.limit_slice is not None:
                return _Slices(limit, settings.limit_slice, now, at_wall)
            return _Sliding(limit, settings.window, now)

        self.rpm, self.tpm = settings.rpm, settings.tpm
        self.requests = window(settings.rpm)
        self.tokens = window(settings.tpm)

    def admit(self, cost: int, now: float) -> tuple[str, float] | None:
        """Charge one request of ``cost`` tokens, or say which limit refuses and for how long."""
        waits: list[tuple[float, str]] = []
        if self.requests is not None:
            waits.append((self.requests.ready_at(1.0, now) - now, "requests"))
        if self.tokens is not None:
            waits.append((self.tokens.ready_at(float(cost), now) - now, "tokens"))
        refused = [(w, kind) for w, kind in waits if w > 0]
        if refused:
            wait, kind = max(refused)
            return kind, wait
        if self.requests is not None:
            self.requests.take(1.0, now)
        if self.tokens is not None:
            self.tokens.take(float(cost), now)
        return None

    def refund(self, tokens: int, now: float) -> None:
        if self.tokens is not None and tokens > 0:
            self.tokens.give(float(tokens), now)

    def headers(self, now: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, limit, window in (
            ("requests", self.rpm, self.requests),
            ("tokens", self.tpm, self.tokens),
        ):
            if limit is None or window is None:
                continue
            out[f"x-ratelimit-limit-{name}"] = str(int(limit))
            left = max(0, math.floor(window.remaining(now) + _EPS))
            out[f"x-ratelimit-remaining-{name}"] = str(left)
            out[f"x-ratelimit-reset-{name}"] = f"{window.reset(now):.3f}s"
        return out

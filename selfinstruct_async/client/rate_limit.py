"""One adaptive per-minute rate and the token bucket that paces it.

:class:`TokenBucket` is refilled continuously and may go into debt; :class:`AdaptiveLimit`
is one requests- or tokens-per-minute rate with its bucket, cut multiplicatively on a 429,
grown additively on success and capped by the configured limit lowered to what the server
announces. The :class:`~selfinstruct_async.client.pacing.Pacer` holds one of each kind.
"""

from __future__ import annotations

import math

_EPS = 1e-9


class TokenBucket:
    """A continuously refilled bucket that may go into debt.

    A cost larger than the capacity waits for a full bucket and leaves it negative, so
    big requests are delayed in proportion to their size instead of never fitting.
    """

    def __init__(self, rate: float, capacity: float, now: float, level: float = 0.0) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"rate and capacity must be positive, got {rate}, {capacity}")
        self.rate, self.capacity = rate, capacity
        self.level = min(level, capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def ready_at(self, cost: float, now: float) -> float:
        """Earliest time at which ``cost`` may be taken."""
        self.refill(now)
        need = min(cost, self.capacity)
        if self.level + _EPS >= need:
            return now
        return now + (need - self.level) / self.rate

    def take(self, cost: float, now: float) -> None:
        self.refill(now)
        self.level -= cost

    def give(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def reconfigure(self, rate: float, capacity: float, now: float) -> None:
        self.refill(now)
        self.rate, self.capacity = rate, capacity
        self.level = min(self.level, capacity)


class AdaptiveLimit:
    """One adaptive rate (requests or tokens per minute) and its bucket."""

    def __init__(
        self,
        name: str,
        per_minute: float | None,
        burst: float,
        unit: float,
        now: float,
        start: float,
    ) -> None:
        if per_minute is not None and per_minute <= 0:
            raise ValueError(f"{name} per minute must be positive, got {per_minute}")
        self.name = name
        self.configured = per_minute
        self.ceiling = per_minute  # configured, lowered by what the server announces
        self.current = per_minute  # what we pace at now; None = unlimited
        self.throttled_at: float | None = None  # rate in force at the last 429
        self.last_cut = -math.inf
        self.last_grow = now
        self._burst, self._unit, self._start = burst, unit, start
        self.bucket: TokenBucket | None = None
        # Observed grant rate (for cutting an unlimited rate): units in this and last second.
        self._window = math.floor(now)
        self._this_window = 0.0
        self._last_window = 0.0
        if per_minute is not None:
            self.bucket = self._make_bucket(per_minute, now, start)

    def _capacity(self, per_minute: float) -> float:
        return max(self._unit, per_minute / 60.0 * self._burst)

    def _make_bucket(self, per_minute: float, now: float, level: float) -> TokenBucket:
        return TokenBucket(per_minute / 60.0, self._capacity(per_minute), now, level)

    def count(self, units: float, now: float) -> None:
        window = math.floor(now)
        if window != self._window:
            self._last_window = self._this_window if window == self._window + 1 else 0.0
            self._this_window = 0.0
            self._window = window
        self._this_window += units

    def observed_per_minute(self, now: float) -> float:
        self.count(0.0, now)
        return max(self._last_window, self._this_window) * 60.0

    def set_current(self, per_minute: float | None, now: float) -> None:
        self.current = per_minute
        if per_minute is None:
            self.bucket = None
        elif self.bucket is None:
            # Start empty, as at start-up: the new rate begins without a burst.
            self.bucket = self._make_bucket(per_minute, now, self._start)
        else:
            self.bucket.reconfigure(per_minute / 60.0, self._capacity(per_minute), now)

    def cut(self, sent_at: float, now: float, factor: float, floor: float) -> bool:
        """Multiplicative decrease for a 429 on a request sent at ``sent_at``."""
        if sent_at < self.last_cut:
            return False  # sent before the last cut: that congestion is already handled
        base = self.current
        if base is None:
            base = self.observed_per_minute(now) or floor / factor
        self.throttled_at = base
        self.last_cut = now
        self.last_grow = now
        self.set_current(max(floor, base * factor), now)
        return True

    def announce(self, limit: float | None, now: float) -> bool:
        """Adopt the server's announced per-minute limit as a ceiling."""
        if limit is None or limit <= 0:
            return False
        ceiling = limit if self.configured is None else min(self.configured, limit)
        if ceiling == self.ceiling:
            return False
        self.ceiling = ceiling
        if self.current is None or self.current > ceiling:
            self.set_current(ceiling, now)
            return True
        return False

    def grow(self, now: float, step_fraction: float, headroom: bool) -> bool:
        """Additive increase after a success, ``step_fraction`` of the reference per second."""
        elapsed = now - self.last_grow
        self.last_grow = now
        if self.current is None or not headroom or elapsed <= 0:
            return False
        reference = self.ceiling if self.ceiling is not None else self.throttled_at
        if reference is None:
            return False
        step = step_fraction * reference * elapsed
        if self.throttled_at is not None and self.current < 0.85 * self.throttled_at:
            step *= 4  # far below the rate that last worked: recover faster
        new = self.current + step
        if self.ceiling is not None and new >= self.ceiling:
            new = self.ceiling
        if new == self.current:
            return False
        self.set_current(new, now)
        return True

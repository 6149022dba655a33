"""Pacing one endpoint: requests/min, tokens/min, a concurrency cap, and adaptive rates.

Each limit is a token bucket refilled continuously that holds about one second of capacity
and starts empty (the requests bucket holds one request at the start, so the first request
goes at once and the next one emission interval later: GCRA's "no burst"). Waiting
requests queue in FIFO order; only the head of the queue waits for the buckets, and it
sleeps for exactly the computed time, woken early only when something changes (a retry
jumped the queue, a slot was freed, a rate moved). There is no polling anywhere.

Rates adapt AIMD-style: a 429 for a request sent at the current rate cuts that rate
multiplicatively (once per congestion episode: answers to requests sent before the cut do
not cut again); successes recover it additively, never above the ceiling, which is the
configured limit lowered to the ``x-ratelimit-limit-*`` the server announces.

Time comes from an injectable :class:`Clock`, so tests run on virtual time
(:class:`selfinstruct_async.testing.ManualClock`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from typing import Protocol

import anyio

from ..errors import RequestTooLarge

_EPS = 1e-9


class Clock(Protocol):
    """Monotonic time in seconds and a sleep that can be cut short."""

    def now(self) -> float:
        """Current time."""
        ...

    async def sleep_until(self, deadline: float, wake: anyio.Event | None = None) -> None:
        """Return at ``deadline``, or earlier once ``wake`` is set."""
        ...


class AnyioClock:
    """Real time: ``time.monotonic``, which is also the asyncio loop's clock.

    Sleeps are computed as relative delays, so this stays correct on a backend whose
    clock has another origin; and it works before an event loop runs (clients are built
    in synchronous code).
    """

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float, wake: anyio.Event | None = None) -> None:
        delay = max(0.0, deadline - time.monotonic())
        if wake is None:
            await anyio.sleep(delay)
            return
        with anyio.move_on_after(delay):
            await wake.wait()


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


class _Limit:
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


class _Waiter:
    __slots__ = ("tokens", "wake")

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.wake = anyio.Event()


class Pacer:
    """Admission control for one endpoint.

    ``await acquire(tokens)`` returns the time the request may be sent; the caller must
    call :meth:`release` when the request is finished (it holds a concurrency slot) and
    :meth:`reconcile` once the server reported the real token count.
    """

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        concurrency: int = 32,
        clock: Clock | None = None,
        burst_seconds: float = 1.0,
        expected_latency: float = 1.0,
        decrease_factor: float = 0.7,
        recovery_per_second: float = 0.02,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be in (0, 1), got {decrease_factor}")
        self._clock: Clock = clock if clock is not None else AnyioClock()
        now = self._clock.now()
        self.requests = _Limit("requests", rpm, burst_seconds, 1.0, now, start=1.0)
        self.tokens = _Limit("tokens", tpm, burst_seconds, 1.0, now, start=0.0)
        self.concurrency = concurrency
        self.expected_latency = expected_latency
        self.decrease_factor = decrease_factor
        self.recovery_per_second = recovery_per_second
        self._queue: deque[_Waiter] = deque()
        self._queued_tokens = 0
        self._inflight = 0
        self._not_before = -math.inf

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def rpm(self) -> float | None:
        """The requests-per-minute rate paced at now (``None``: unlimited)."""
        return self.requests.current

    @property
    def tpm(self) -> float | None:
        """The tokens-per-minute rate paced at now (``None``: unlimited)."""
        return self.tokens.current

    def check_size(self, tokens: int) -> None:
        """Raise :class:`RequestTooLarge` if ``tokens`` exceed a minute's token budget."""
        limit = self.tokens.ceiling
        if limit is not None and tokens > limit:
            raise RequestTooLarge(
                f"request needs {tokens} tokens (prompt + max_tokens * n) but the endpoint "
                f"allows {limit:g} tokens per minute; lower max_tokens or raise tpm"
            )

    # -- admission ------------------------------------------------------------------------

    def _ready_at(self, tokens: int, now: float) -> float:
        at = self._not_before
        bucket = self.requests.bucket
        if bucket is not None:
            at = max(at, bucket.ready_at(1.0, now))
        bucket = self.tokens.bucket
        if bucket is not None and tokens > 0:
            at = max(at, bucket.ready_at(float(tokens), now))
        return at

    def _grant(self, tokens: int, now: float) -> None:
        self._inflight += 1
        self.requests.count(1.0, now)
        self.tokens.count(float(tokens), now)
        if self.requests.bucket is not None:
            self.requests.bucket.take(1.0, now)
        if self.tokens.bucket is not None and tokens > 0:
            self.tokens.bucket.take(float(tokens), now)

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].wake.set()

    async def acquire(self, tokens: int = 0, *, front: bool = False) -> float:
        """Wait for a slot and for the rates; return the grant time.

        ``front=True`` (retries) queues ahead of everything already waiting.
        """
        now = self._clock.now()
        if (
            not self._queue
            and self._inflight < self.concurrency
            and self._ready_at(tokens, now) <= now
        ):
            self._grant(tokens, now)
            return now
        waiter = _Waiter(tokens)
        if front:
            self._wake_head()  # the displaced head must stop waiting for the buckets
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        self._queued_tokens += tokens
        granted = False
        try:
            while True:
                if self._queue[0] is not waiter or self._inflight >= self.concurrency:
                    # A stale wake-up was already acted on: the state was just re-checked.
                    if waiter.wake.is_set():
                        waiter.wake = anyio.Event()
                    await waiter.wake.wait()
                    continue
                now = self._clock.now()
                at = self._ready_at(tokens, now)
                if at <= now:
                    self._queue.popleft()
                    self._grant(tokens, now)
                    granted = True
                    if self._inflight < self.concurrency:
                        # Otherwise the next release() wakes the new head: no idle wake-up.
                        self._wake_head()
                    return now
                if waiter.wake.is_set():
                    waiter.wake = anyio.Event()
                await self._clock.sleep_until(at, waiter.wake)
        finally:
            self._queued_tokens -= tokens
            if not granted:
                was_head = bool(self._queue) and self._queue[0] is waiter
                with contextlib.suppress(ValueError):
                    self._queue.remove(waiter)
                if was_head:
                    self._wake_head()

    def release(self) -> None:
        """Free the concurrency slot of a finished request."""
        self._inflight -= 1
        self._wake_head()

    def reconcile(self, reserved: int, actual: int) -> None:
        """Correct a token reservation with what the server reported."""
        bucket = self.tokens.bucket
        if bucket is None or reserved == actual:
            return
        now = self._clock.now()
        if actual < reserved:
            bucket.give(float(reserved - actual), now)
            self._wake_head()
        else:
            bucket.take(float(actual - reserved), now)

    def hold_until(self, deadline: float) -> None:
        """Send nothing before ``deadline`` (cool-down of a failing endpoint)."""
        if deadline > self._not_before:
            self._not_before = deadline
            self._wake_head()

    @property
    def held_until(self) -> float:
        return self._not_before

    def expected_delay(self, tokens: int) -> float:
        """Rough wait a new request would see here (for choosing among endpoints)."""
        now = self._clock.now()
        delay = max(0.0, self._not_before - now)
        ahead = len(self._queue)
        bucket = self.requests.bucket
        if bucket is not None:
            bucket.refill(now)
            delay = max(delay, (ahead + 1 - bucket.level) / bucket.rate)
        bucket = self.tokens.bucket
        if bucket is not None:
            bucket.refill(now)
            delay = max(delay, (self._queued_tokens + tokens - bucket.level) / bucket.rate)
        busy = self._inflight + ahead + 1 - self.concurrency
        if busy > 0:
            delay += busy / self.concurrency * self.expected_latency
        return delay

    # -- adaptation -----------------------------------------------------------------------

    def on_throttled(
        self, limit_type: str | None, sent_at: float, announced: float | None = None
    ) -> bool:
        """A 429 answered a request sent at ``sent_at``: cut the rate it names.

        Returns whether a rate was cut. Unknown limit types cut the request rate, the one
        every provider has. ``announced`` is the 429's ``x-ratelimit-limit-*`` for that
        limit: when it is at or above our pace, the server is not throttling below what we
        send on average (a burst met a busy window), so the rate is kept and only the
        request waits.
        """
        now = self._clock.now()
        limit = self.tokens if limit_type == "tokens" else self.requests
        if announced is not None:
            limit.announce(announced, now)
            if limit.current is not None and announced >= limit.current:
                return False
        if limit is self.tokens and limit.current is None and not limit.observed_per_minute(now):
            limit = self.requests  # tokens were not counted: slow down by requests instead
        floor = 1.0 if limit is self.requests else max(1.0, (limit.ceiling or 60.0) * 0.01)
        cut = limit.cut(sent_at, now, self.decrease_factor, floor)
        if cut:
            self._wake_head()
        return cut

    def on_success(
        self,
        *,
        limit_requests: float | None = None,
        limit_tokens: float | None = None,
        remaining_requests: float | None = None,
        remaining_tokens: float | None = None,
    ) -> None:
        """Learn announced limits and recover rates after a successful answer."""
        now = self._clock.now()
        changed = self.requests.announce(limit_requests, now)
        changed |= self.tokens.announce(limit_tokens, now)
        changed |= self.requests.grow(
            now, self.recovery_per_second, remaining_requests is None or remaining_requests > 0
        )
        changed |= self.tokens.grow(
            now, self.recovery_per_second, remaining_tokens is None or remaining_tokens > 0
        )
        if changed:
            self._wake_head()

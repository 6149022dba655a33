"""Pacing one endpoint: requests/min, tokens/min, a concurrency cap, and adaptive rates.

Each limit is a token bucket refilled continuously that holds about one second of capacity
and starts empty (the requests bucket holds one request at the start, so the first request
goes at once and the next one emission interval later: GCRA's "no burst"). Waiting
requests queue in FIFO order; only the head of the queue waits for the buckets, and it
sleeps for exactly the computed time, woken early only when something changes (a retry
jumped the queue, a slot was freed, a rate moved). There is no polling anywhere.

Providers often enforce a per-minute limit in fixed slices aligned to their own clock (600
requests/min as 10 per 1 s slice, or 1 per 100 ms). Requests paced evenly at the limit then
sit at some fixed distance from the slice boundaries, and when that distance is small, a
few milliseconds of jitter move one request across a boundary: that slice gets one too
many, a 429. A :class:`SliceLock` learns where the boundaries fall on our clock from the
``x-ratelimit-reset-requests`` of the answers (:meth:`Pacer.observe_reset`) and, while the
request rate is at its ceiling, sends each request midway between two boundaries, one per
emission interval: half an interval of jitter either way is then harmless. At high rates
(a slice of two requests or more) a :class:`SliceWindows` learns the slices whole, their
length, where they end and how much the requests' delays vary, and requests go anywhere
in a slice's interior up to its share: a lattice point per request needs timers precise
to a quarter interval, half a millisecond at 30,000 RPM, which a busy event loop misses.
Above 6,000 RPM (``LATTICE_MIN``) the lattice is never used: until the windows have
learned whether there are slices, requests go at a stretched interval, so the first
slices, which nothing is known about yet, are not filled past their share.

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
from .rate_limit import AdaptiveLimit
from .slice_lock import CAREFUL_STRETCH, SliceLock
from .slice_windows import SliceWindows

# SliceLock is part of what a Pacer shows (``Pacer.slice_lock``): importable from here too.
__all__ = ["AnyioClock", "Clock", "Pacer", "SliceLock", "SliceWindows"]

# Below this emission interval (above 6,000 RPM) a lattice point per request asks an event
# loop's timers for more precision than they have (a quarter interval: under 2.5 ms), so
# slices are paced by SliceWindows alone, carefully (CAREFUL_STRETCH) until they decided.
LATTICE_MIN = 0.010


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
        lock_slices: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be in (0, 1), got {decrease_factor}")
        self._clock: Clock = clock if clock is not None else AnyioClock()
        now = self._clock.now()
        self.requests = AdaptiveLimit("requests", rpm, burst_seconds, 1.0, now, start=1.0)
        self.tokens = AdaptiveLimit("tokens", tpm, burst_seconds, 1.0, now, start=0.0)
        self.concurrency = concurrency
        self.expected_latency = expected_latency
        self.decrease_factor = decrease_factor
        self.recovery_per_second = recovery_per_second
        self._queue: deque[_Waiter] = deque()
        self._queued_tokens = 0
        self._inflight = 0
        self._not_before = -math.inf
        self._lock_slices = lock_slices
        # Careful from the start; dropped by a first answer without a reset header (such a
        # provider is paced as before), remade by a reset header for another ceiling.
        self._slices: SliceLock | None = None
        self._windows: SliceWindows | None = None
        if lock_slices and rpm is not None:
            self._slices = SliceLock(60.0 / rpm)
            self._windows = SliceWindows(60.0 / rpm)
        self._last_grant = -math.inf

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

    @property
    def slice_lock(self) -> SliceLock | None:
        """What was learned about the provider's slice boundaries (``None``: nothing yet)."""
        return self._slices

    @property
    def slice_windows(self) -> SliceWindows | None:
        """What was learned about the provider's slices as a whole (``None``: nothing yet)."""
        return self._windows

    def _windows_at_ceiling(self) -> SliceWindows | None:
        """The learned slices, if the request rate is at the ceiling they were learned at."""
        windows, current = self._windows, self.requests.current
        if windows is None or not windows.ready or current is None:
            return None
        if current != self.requests.ceiling or windows.period != 60.0 / current:
            return None  # cut below the limit, or learned at another ceiling
        return windows

    def _at_ceiling(self) -> SliceLock | None:
        """The slice lock, if the request rate is at the ceiling it was made for."""
        lock, current = self._slices, self.requests.current
        if lock is None or current is None or current != self.requests.ceiling:
            return None  # cut below the limit: the lock's interval is not ours now
        if lock.period != 60.0 / current:
            return None  # made for another ceiling
        return lock

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
        bucket = self.tokens.bucket
        if bucket is not None and tokens > 0:
            at = max(at, bucket.ready_at(float(tokens), now))
        lock = self._at_ceiling()
        bucket = self.requests.bucket
        windows = self._windows_at_ceiling()
        if windows is not None:
            # Slices of many requests: at the request rate, anywhere in a slice's interior,
            # up to its share; placed last, so nothing pushes a request out of a window.
            at = max(at, now)
            if bucket is not None:
                at = max(at, bucket.ready_at(1.0, now))
            return windows.window_at(at)
        if lock is not None and lock.locked and lock.period >= LATTICE_MIN:
            # One request per lattice point replaces the bucket's burst (a burst may land
            # two slices' worth in one of the provider's slices), and it is placed last:
            # a hold or the token rate must not push a request off its point.
            at = max(at, now)
            return max(at, lock.slot(at))
        if bucket is not None:
            at = max(at, bucket.ready_at(1.0, now))
            careful = self._careful_at(lock)
            if careful is not None:
                at = max(at, careful)
        return at

    def _careful_at(self, lock: SliceLock | None) -> float | None:
        """While it is not known whether and where there are slices: the earliest time a
        stretched interval allows (the lattice lock's careful start, or at high rates
        until the slice windows decided)."""
        if lock is None:
            return None
        if lock.period >= LATTICE_MIN:
            return lock.careful_at()
        windows = self._windows
        if windows is None or windows.decided:
            return None
        return self._last_grant + lock.period * CAREFUL_STRETCH

    def _grant(self, tokens: int, now: float) -> None:
        self._inflight += 1
        self._last_grant = now
        cost = 1.0
        if self._windows is not None:
            self._windows.granted(now)
        if self._slices is not None and self._windows_at_ceiling() is None:
            lock = self._at_ceiling()
            if lock is not None and lock.locked and lock.period >= LATTICE_MIN:
                self._slices.granted(lock.slot(now))
            else:
                if self._careful_at(lock) is not None:
                    # The stretched interval is not saved up in the bucket for a burst.
                    cost = CAREFUL_STRETCH
                self._slices.granted(now)
        self.requests.count(1.0, now)
        self.tokens.count(float(tokens), now)
        if self.requests.bucket is not None:
            self.requests.bucket.take(cost, now)
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

    def observe_reset(self, sent_at: float, reset: float | None) -> None:
        """An answer (a success or a 429) to a request granted at ``sent_at`` said its
        request window resets in ``reset`` seconds (``x-ratelimit-reset-requests``).

        Only answers to requests sent at the ceiling rate count: below it (after a cut) the
        sends are off the lattice the lock checks against.
        """
        limit = self.requests
        if not self._lock_slices or reset is None or limit.ceiling is None:
            return
        if limit.current != limit.ceiling:
            return
        period = 60.0 / limit.ceiling
        lock = self._slices
        if lock is None or lock.period != period:
            lock = self._slices = SliceLock(period, self._last_grant)
        windows = self._windows
        if windows is None or windows.period != period:
            windows = self._windows = SliceWindows(period)
        was_ready = windows.ready
        windows.observe(sent_at, reset)
        moved = lock.observe(sent_at, reset, self._clock.now())
        if moved or windows.ready != was_ready:
            self._wake_head()

    def _answered(self) -> None:
        """An answer came back; one without a reset header means there is nothing to lock
        on (:meth:`observe_reset` sees an answer's header before this is called)."""
        lock = self._slices
        if lock is not None and not lock.heard:
            self._slices = self._windows = None
            self._wake_head()

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
        self._answered()
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
        self._answered()
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

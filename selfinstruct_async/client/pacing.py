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
emission interval: half an interval of jitter either way is then harmless.

Rates adapt AIMD-style: a 429 for a request sent at the current rate cuts that rate
multiplicatively (once per congestion episode: answers to requests sent before the cut do
not cut again); successes recover it additively, never above the ceiling, which is the
configured limit lowered to the ``x-ratelimit-limit-*`` the server announces.

Time comes from an injectable :class:`Clock`, so tests run on virtual time
(:class:`selfinstruct_async.testing.ManualClock`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections import deque
from typing import Protocol

import anyio

from ..errors import RequestTooLarge

_EPS = 1e-9

# A slice lock weighs the last _LOCK_SAMPLES boundaries. It locks once at least _LOCK_MIN
# of them, from _LOCK_SLICES distinct boundaries or more, agree to _LOCK_AGREEMENT modulo
# the interval. Agreement is the mean resultant length of the phases as angles: 1 when
# they coincide, 0.45 when they spread evenly over 2/3 of the interval, which still
# leaves a sixth of it either side. It gives up after _LOCK_STRIKES moves of the lattice
# that the boundaries followed instead of staying put. Once settled (verified, or
# undecided after the careful start), it looks again only every _SETTLED_EVERY answers.
_LOCK_SAMPLES = 32
_LOCK_MIN = 6
_CHECK_MIN = 12  # boundaries from sends on a moved lattice before checking it
_LOCK_SLICES = 3
_LOCK_AGREEMENT = 0.45
_NO_LATTICE = 0.25  # agreement below it over several boundaries: not slices
_LOCK_STRIKES = 2
_SETTLED_EVERY = 8
# Until a lock is decided, the first _CAREFUL_GRANTS requests at the ceiling go at
# _CAREFUL_STRETCH times the interval and never in a burst: with the boundaries unknown,
# that spare quarter interval is what absorbs jitter at a boundary.
_CAREFUL_GRANTS = 48
_CAREFUL_STRETCH = 1.25
# A reset this much above the interval is not a slice as short as the interval.
_RESET_SLACK = 1.05


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


def _wrap(x: float, period: float) -> float:
    """``x`` modulo ``period``, in ``[-period / 2, period / 2)``."""
    return (x + period / 2) % period - period / 2


def _circular_mean(phases: list[float], period: float) -> tuple[float, float]:
    """The mean of phases on a circle of ``period``, and how well they agree (0 to 1)."""
    turn = 2 * math.pi / period
    c = sum(math.cos(p * turn) for p in phases) / len(phases)
    s = sum(math.sin(p * turn) for p in phases) / len(phases)
    return (math.atan2(s, c) / turn) % period, math.hypot(c, s)


class SliceLock:
    """Where a provider's fixed slice boundaries fall on our clock, and the send lattice.

    ``period`` is our emission interval (60 / requests-per-minute). A provider that allows
    N per slice of N intervals has its boundaries at one phase modulo ``period``; sending
    at ``phase + period / 2 + k * period`` puts exactly N requests in each slice, each half
    an interval from the nearest boundary.

    Each answer's reset header gives a boundary, ``sent_at + reset``: the network delay to
    the provider cancels out, since a request sent at ``t`` arrives at ``t + d`` and the
    boundary seen from ``t`` is ``d`` early. The lock takes only what looks like fixed
    slices: requests that share a boundary (several per slice), or resets never longer
    than the interval (one per slice). A continuously refilled bucket shows neither while
    it is drawn down, as each request moves its "full again" time one interval on. A full
    bucket does (its reset is one interval), but its boundaries follow our own sends, where
    fixed slices stay put: so after each move of the lattice the lock checks that the
    boundaries stayed where they were, and gives up (:attr:`off`) after ``_LOCK_STRIKES``
    moves they followed. A bucket does not care when its requests come.
    """

    def __init__(self, period: float, last_grant: float = -math.inf) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.phase: float | None = None  # boundaries at phase + k * period, our clock
        self.verified = False  # boundaries seen from sends on the lattice stayed put
        self.off = False
        self.careful_left = _CAREFUL_GRANTS
        self.heard = False  # an answer with a reset header came back
        self._strikes = 0
        self._fresh = 0  # samples since the last look
        self._moved_at = -math.inf
        self._samples: deque[tuple[float, float]] = deque(maxlen=_LOCK_SAMPLES)  # (b, reset)
        self._last_slot = last_grant

    @property
    def locked(self) -> bool:
        return self.phase is not None

    def careful_at(self) -> float | None:
        """While undecided, at first: the earliest time a stretched interval allows."""
        if self.phase is not None or self.off or self.careful_left <= 0:
            return None
        return self._last_slot + self.period * _CAREFUL_STRETCH

    def slot(self, now: float) -> float:
        """The lattice point the next request may go at: at most a quarter interval past
        (a late wake-up still sends there), and an interval after the previous one."""
        assert self.phase is not None
        period = self.period
        first = self.phase + period / 2
        earliest = max(now - period / 4, self._last_slot + period - _EPS)
        return first + math.ceil((earliest - first) / period) * period

    def granted(self, slot: float) -> None:
        """A request went at ``slot`` (its lattice point, or its time when not locked)."""
        self._last_slot = slot
        if self.phase is None:
            self.careful_left -= 1

    def observe(self, sent_at: float, reset: float, now: float) -> bool:
        """Take the boundary an answer gives; whether the lattice moved or was dropped."""
        self.heard = True
        if self.off or sent_at < self._moved_at or not (math.isfinite(reset) and reset >= 0):
            return False
        self._samples.append((sent_at + reset, reset))
        self._fresh += 1
        if len(self._samples) < _LOCK_MIN:
            return False
        settled = self.verified or (self.phase is None and self.careful_left <= 0)
        if settled and self._fresh < _SETTLED_EVERY:
            return False
        self._fresh = 0
        if self.phase is None:
            return self._first_lock(now)
        if len(self._samples) < _CHECK_MIN:
            return False
        mean, agreement = self._mean()
        if agreement < _LOCK_AGREEMENT:
            return False
        # A quarter interval: above the noise of a mean of _CHECK_MIN jittery boundaries,
        # below the half interval a full bucket's boundaries jump when the lattice moves.
        period = self.period
        drift = _wrap(mean - self.phase, period)
        if not self.verified:
            if abs(drift) <= period / 4:
                self.verified = True
                return False
            self._strikes += 1
            if self._strikes >= _LOCK_STRIKES:
                self.off, self.phase = True, None
            else:
                self._move(mean, now)
            return True
        if abs(drift) > period / 4:
            # The clocks drifted apart, or the provider moved its slices: move and recheck.
            self.verified = False
            self._move(mean, now)
            return True
        return False

    def _first_lock(self, now: float) -> bool:
        """Lock if the boundaries look like fixed slices on a lattice; stop being careful
        once they cannot be."""
        period = self.period
        bounds = sorted(b for b, _ in self._samples)
        gaps = [b - a for a, b in itertools.pairwise(bounds)]
        if 1 + sum(1 for gap in gaps if gap > period / 4) < _LOCK_SLICES:
            return False  # too few distinct boundaries yet to tell
        shared = any(gap <= period / 4 for gap in gaps)
        long_resets = max(reset for _, reset in self._samples) > period * _RESET_SLACK
        mean, agreement = self._mean()
        if (shared or not long_resets) and agreement >= _LOCK_AGREEMENT:
            self._move(mean, now)
            return True
        if agreement < _NO_LATTICE or (long_resets and not shared):
            # No lattice, or a bucket being drawn down (each request moves its "full
            # again" one interval on): nothing to be careful about.
            self.careful_left = 0
        return False

    def _mean(self) -> tuple[float, float]:
        return _circular_mean([b % self.period for b, _ in self._samples], self.period)

    def _move(self, phase: float, now: float) -> None:
        self.phase = phase
        self._moved_at = now
        self._samples.clear()


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
        lock_slices: bool = True,
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
        self._lock_slices = lock_slices
        # Careful from the start; dropped by a first answer without a reset header (such a
        # provider is paced as before), remade by a reset header for another ceiling.
        self._slices: SliceLock | None = None
        if lock_slices and rpm is not None:
            self._slices = SliceLock(60.0 / rpm)
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
        if lock is not None and lock.locked:
            # One request per lattice point replaces the bucket's burst (a burst may land
            # two slices' worth in one of the provider's slices), and it is placed last:
            # a hold or the token rate must not push a request off its point.
            at = max(at, now)
            return max(at, lock.slot(at))
        if bucket is not None:
            at = max(at, bucket.ready_at(1.0, now))
            careful = lock.careful_at() if lock is not None else None
            if careful is not None:
                at = max(at, careful)
        return at

    def _grant(self, tokens: int, now: float) -> None:
        self._inflight += 1
        self._last_grant = now
        cost = 1.0
        if self._slices is not None:
            lock = self._at_ceiling()
            if lock is not None and lock.locked:
                self._slices.granted(lock.slot(now))
            else:
                if lock is not None and lock.careful_at() is not None:
                    # The stretched interval is not saved up in the bucket for a burst.
                    cost = _CAREFUL_STRETCH
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
        if lock.observe(sent_at, reset, self._clock.now()):
            self._wake_head()

    def _answered(self) -> None:
        """An answer came back; one without a reset header means there is nothing to lock
        on (:meth:`observe_reset` sees an answer's header before this is called)."""
        lock = self._slices
        if lock is not None and not lock.heard:
            self._slices = None
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

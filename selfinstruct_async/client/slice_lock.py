"""Where a provider's fixed rate-limit slices fall on our clock: the :class:`SliceLock`.

Providers often enforce a per-minute limit in fixed slices aligned to their own clock (600
requests/min as 10 per 1 s slice, or 1 per 100 ms). Requests paced evenly at the limit then
sit at some fixed distance from the slice boundaries, and when that distance is small, a
few milliseconds of jitter move one request across a boundary: that slice gets one too
many, a 429. A :class:`SliceLock` learns where the boundaries fall from the
``x-ratelimit-reset-requests`` of the answers and says when to send each request at the
ceiling: midway between two boundaries, one per emission interval. The
:class:`~selfinstruct_async.client.pacing.Pacer` owns one per endpoint; once its
:class:`~selfinstruct_async.client.slice_windows.SliceWindows` has learned slices of two
requests or more, those decide instead.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

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
# CAREFUL_STRETCH times the interval and never in a burst: with the boundaries unknown,
# that spare quarter interval is what absorbs jitter at a boundary.
_CAREFUL_GRANTS = 48
CAREFUL_STRETCH = 1.25
# A reset this much above the interval is not a slice as short as the interval.
_RESET_SLACK = 1.05


def wrap(x: float, period: float) -> float:
    """``x`` modulo ``period``, in ``[-period / 2, period / 2)``."""
    return (x + period / 2) % period - period / 2


def circular_mean(phases: list[float], period: float) -> tuple[float, float]:
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
        return self._last_slot + self.period * CAREFUL_STRETCH

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
        drift = wrap(mean - self.phase, period)
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
        return circular_mean([b % self.period for b, _ in self._samples], self.period)

    def _move(self, phase: float, now: float) -> None:
        self.phase = phase
        self._moved_at = now
        self._samples.clear()

"""A provider's fixed rate-limit slices, learned as a whole: :class:`SliceWindows`.

The :class:`~selfinstruct_async.client.slice_lock.SliceLock` sends one request per
lattice point, half an interval from the nearest boundary. That needs each request's
timer to fire within a quarter interval of its point: 25 ms at 600 RPM, but half a
millisecond at 30,000 RPM, which an event loop busy with a pipeline does not keep (epoll
alone counts in milliseconds): such a pacer kept a third of a 30,000 RPM limit. Its half
interval of margin is also less than the tens of milliseconds by which a busy client's
requests reach the provider at different delays after their grant.

When a slice holds many requests, what matters is only that no slice gets more than its
share and that nothing lands near a boundary. So this learns the slices themselves from
the ``x-ratelimit-reset-requests`` of the answers:

- the longest reset is a slice's length (an answer that arrived just after a boundary
  waits a whole slice); rounded up to whole intervals, as a slice holds a whole number of
  requests;
- an answer to a request granted at ``sent_at`` names the end of its slice as
  ``sent_at + reset`` less the request's delay on the way; modulo the slice's length these
  gather on one arc of the circle, whose far end is the boundary (the least delayed
  request's) and whose width is how much the delays vary.

Requests then go anywhere in a slice's interior, at the request rate, up to its share.
Delays are one-sided (none is shorter than the least), so the two ends are kept clear for
different reasons: the start (its ``head``) only by a few milliseconds, for the estimate's
own error, as a request granted after it arrives after it; the end (its ``tail``) by as
much as a request's delay may exceed the least: 1.5 times the spread of all but the most
delayed 1%, and at least the longest hold seen lately. An event loop held up (a garbage
collector's full pass over a busy client's heap takes 40-55 ms) delays every request
granted but not yet written, and one granted late in a slice then lands in the next,
which gets its share and one more. Such a held request's boundary can lie more than half
a slice before the others', on the far side of the circle: the boundary is the far end of
the arc that holds the mass of them, not the farthest point. A bucket refilled
continuously shows no arc (each request moves its "full again" on), so nothing is
learned from one.
"""

from __future__ import annotations

import math
from collections import deque

from .slice_lock import circular_mean, wrap

_EPS = 1e-9

# The last _SAMPLES boundaries are weighed, every _EVERY answers once _SAMPLES arrived.
_SAMPLES = 256
_EVERY = 32
# They must agree: the mean resultant length of their phases on the slice's circle at
# least _AGREEMENT (a bucket's spread over the whole circle).
_AGREEMENT = 0.7
# The delays' spread: the arc holding all but the most delayed _OUTLIERS share of them (a
# request held up once must not halve the rate for good). The boundary is the farthest
# of them within _EDGE_SLACK of the arc's end: a held request's lies far beyond it.
_OUTLIERS = 0.01
_EDGE_SLACK = 0.002
# The tail kept clear before a slice's end: _SPREAD_FACTOR times the spread, and the
# longest hold seen, remembered with a half-life of _HELD_HALF_LIFE seconds (a garbage
# collector's full passes come every few seconds). The head after its start: half an
# interval and half the spread. Both at least _MARGIN_FLOOR (a network's jitter), each at
# most _MARGIN_CAP of a slice: a narrower window, which the request bucket fills after
# the dead time, still keeps the rate where giving up would not.
_SPREAD_FACTOR = 1.5
_HELD_HALF_LIFE = 60.0
_MARGIN_FLOOR = 0.005
_MARGIN_CAP = 0.4


def _late(before: float, length: float) -> float:
    """How much later than the least delayed an answer whose boundary lies ``before`` the
    slices' end (negative: beyond it) arrived."""
    if before >= 0:
        return before
    # Beyond the end by more than a quarter slice: held over half a slice, wrapped round
    # the circle. Nearer: one of the least delayed few, left out of the edge (the
    # estimate's own error, not a hold; a hold of over three quarters of a slice is lost).
    return before + length if before < -length / 4 else 0.0


class SliceWindows:
    """The slices of a provider at ``period`` seconds a request (60 / requests-per-minute).

    Feed it every answer's reset (:meth:`observe`); once :attr:`ready`, ask it when the
    next request may go (:meth:`window_at`); tell it every grant (:meth:`granted`).
    """

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.slice: float | None = None  # seconds, once learned
        self.share = 0  # requests a slice allows: its length in intervals
        self.head = 0.0  # kept clear after a slice's start
        self.tail = 0.0  # kept clear before its end
        self.boundary = 0.0  # one boundary, our clock; the others a slice apart
        self.decided = False  # whether enough answers came to tell (slices or none)
        self._longest = 0.0  # the longest reset seen
        self._samples: deque[float] = deque(maxlen=_SAMPLES)  # boundaries named
        self._fresh = 0
        self._held = 0.0  # the longest delay over the least lately (decaying)
        self._held_at = -math.inf  # when it was last weighed (a send time)
        self._last_sent = -math.inf
        self._window = (-math.inf, 0)  # (start of the slice granted in last, its grants)
        self._last_grant = -math.inf

    @property
    def ready(self) -> bool:
        """Whether requests go by slices: learned, two requests a slice or more."""
        return self.slice is not None and self.share >= 2

    def observe(self, sent_at: float, reset: float) -> None:
        """Take the reset an answer to a request granted at ``sent_at`` came with."""
        if not (math.isfinite(reset) and reset >= 0):
            return
        self._longest = max(self._longest, reset)
        self._last_sent = max(self._last_sent, sent_at)
        self._samples.append(sent_at + reset)
        self._fresh += 1
        if self._fresh >= _EVERY and len(self._samples) == _SAMPLES:
            self._fresh = 0
            self._learn()

    def _learn(self) -> None:
        self.decided = True
        period = self.period
        share = math.ceil(self._longest / period - 0.01)
        length = share * period
        if share < 2:
            self._forget()
            return
        mean, agreement = circular_mean(list(self._samples), length)
        if agreement < _AGREEMENT:
            self._forget()
            return
        offsets = sorted(wrap(b - mean, length) for b in self._samples)
        cut = int(len(offsets) * _OUTLIERS)
        edge = offsets[-1 - cut] + _EDGE_SLACK
        end = max(x for x in offsets if x <= edge)  # the least delayed's: the slices' end
        late = sorted(_late(end - x, length) for x in offsets)
        spread = late[-1 - cut]
        now = self._last_sent
        decay = 0.5 ** (max(0.0, now - self._held_at) / _HELD_HALF_LIFE)
        self._held, self._held_at = max(late[-1], self._held * decay), now
        changed = share != self.share
        self.slice, self.share = length, share
        self.boundary = mean + end
        cap = _MARGIN_CAP * length
        # Half the spread as well: the least delay moves when the client's load does.
        self.head = min(max(period / 2, spread / 2, _MARGIN_FLOOR), cap)
        self.tail = min(max(_SPREAD_FACTOR * spread, self._held, period / 2, _MARGIN_FLOOR), cap)
        if changed and math.isfinite(self._last_grant):
            # The grants already made in the current slice were not counted in it (or
            # against another share): none more go there.
            self._window = (self._start(self._last_grant), share)

    def _forget(self) -> None:
        self.slice, self.share = None, 0

    def _start(self, t: float) -> float:
        """The start of the slice holding ``t``."""
        assert self.slice is not None
        anchor = self.boundary
        return anchor + math.floor((t - anchor) / self.slice + _EPS) * self.slice

    def window_at(self, t: float) -> float:
        """The earliest time from ``t`` on that a request may go: inside a slice, at least
        its head and tail clear, while the slice has had fewer than its share."""
        assert self.slice is not None
        length, head, tail = self.slice, self.head, self.tail
        start = self._start(t)
        last, count = self._window
        while True:
            t = max(t, start + head)
            full = abs(start - last) < length / 2 and count >= self.share
            if t <= start + length - tail and not full:
                return t
            start += length
            t = start + head

    def granted(self, t: float) -> None:
        """A request went at ``t`` (tell it every grant, learned or not)."""
        self._last_grant = t
        if self.slice is None:
            return
        start = self._start(t)
        last, count = self._window
        same = abs(start - last) < self.slice / 2
        self._window = (last, count + 1) if same else (start, 1)

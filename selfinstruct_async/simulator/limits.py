"""The simulated provider's per-minute limits, enforced in sub-minute windows.

Each limit is a continuously refilled bucket holding ``window`` seconds of it, full at
start, as providers do; :meth:`ProviderLimits.headers` reports the state of the buckets
in ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math

from ..client.pacing import TokenBucket
from .settings import SimulatorSettings


class ProviderLimits:
    """The provider's per-minute limits as sub-minute buckets, with header values."""

    def __init__(self, settings: SimulatorSettings, now: float) -> None:
        def bucket(limit: float | None) -> TokenBucket | None:
            if limit is None:
                return None
            capacity = max(1.0, limit / 60.0 * settings.window)
            return TokenBucket(limit / 60.0, capacity, now, level=capacity)

        self.rpm, self.tpm = settings.rpm, settings.tpm
        self.requests = bucket(settings.rpm)
        self.tokens = bucket(settings.tpm)

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
        for name, limit, bucket in (
            ("requests", self.rpm, self.requests),
            ("tokens", self.tpm, self.tokens),
        ):
            if limit is None or bucket is None:
                continue
            bucket.refill(now)
            reset = max(0.0, (bucket.capacity - bucket.level) / bucket.rate)
            out[f"x-ratelimit-limit-{name}"] = str(int(limit))
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{name}"] = f"{reset:.3f}s"
        return out

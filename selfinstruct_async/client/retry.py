"""Which failures are worth another attempt, and how long to wait before it.

Classification is by HTTP status and by transport exception; 429 and 5xx, timeouts,
connection resets, malformed JSON, empty ``choices`` and answers over the size cap are
transient, any other 4xx is permanent. The wait honours what the server said
(``retry-after-ms``, ``Retry-After``, ``x-ratelimit-reset-*`` when the matching
``x-ratelimit-remaining-*`` is zero), up to a cap the caller gives (a provider asking for a
day must not park a request for a day), and otherwise backs off exponentially with jitter,
so that retries of one burst do not come back as another burst. Each request waits on its
own: nothing here pauses other requests.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from ..errors import ResponseTooLarge, TransportError, TransportTimeout


class FailureKind(Enum):
    """Why an attempt failed."""

    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    MALFORMED = "malformed"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    CLIENT_ERROR = "client_error"

    @property
    def retryable(self) -> bool:
        return self is not FailureKind.CLIENT_ERROR


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified."""

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    limit_type: str | None = None  # "requests" or "tokens" for a 429, when known
    wait_source: str | None = None  # the header ``retry_after`` came from

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


def classify_status(status: int) -> FailureKind | None:
    """``None`` for success, else the kind of failure a status means."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.CLIENT_ERROR


def classify_exception(exc: TransportError) -> Failure:
    """Classify a transport failure (all of them are transient)."""
    if isinstance(exc, ResponseTooLarge):
        return Failure(FailureKind.TOO_LARGE, str(exc))
    kind = FailureKind.TIMEOUT if isinstance(exc, TransportTimeout) else FailureKind.CONNECTION
    return Failure(kind, f"{type(exc).__name__}: {exc}")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in ``"1.5"``, ``"20ms"``, ``"6m0s"`` or ``"1h2m3.5s"``; ``None`` if invalid."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait the server asked for, in seconds; headers must have lower-case keys.

    ``retry-after-ms`` wins over ``Retry-After`` because it is the more precise of the
    two; ``Retry-After`` may be seconds or an HTTP date.
    """
    found = requested_wait(headers, now=now)
    return None if found is None else found[0]


def requested_wait(
    headers: Mapping[str, str], *, now: float | None = None
) -> tuple[float, str] | None:
    """Like :func:`retry_after`, with the name of the header that said it."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0, "retry-after-ms"
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = parse_duration(raw)
    if seconds is not None:
        return seconds, "Retry-After"
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now)), "Retry-After"


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The ``x-ratelimit-*`` headers of one answer; ``None`` where absent."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None

    @property
    def present(self) -> bool:
        return any(v is not None for v in (self.limit_requests, self.limit_tokens))


def _number(headers: Mapping[str, str], key: str) -> float | None:
    raw = headers.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo:
    """Parse the ``x-ratelimit-*`` headers (keys lower-case)."""

    def reset(key: str) -> float | None:
        raw = headers.get(key)
        return None if raw is None else parse_duration(raw)

    return RateLimitInfo(
        limit_requests=_number(headers, "x-ratelimit-limit-requests"),
        remaining_requests=_number(headers, "x-ratelimit-remaining-requests"),
        reset_requests=reset("x-ratelimit-reset-requests"),
        limit_tokens=_number(headers, "x-ratelimit-limit-tokens"),
        remaining_tokens=_number(headers, "x-ratelimit-remaining-tokens"),
        reset_tokens=reset("x-ratelimit-reset-tokens"),
    )


def _error_type(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    kind = error.get("type")
    return kind if isinstance(kind, str) else None


def failure_from_response(status: int, headers: Mapping[str, str], body: bytes) -> Failure | None:
    """Classify an HTTP answer by status; ``None`` for 2xx (the body is checked later)."""
    kind = classify_status(status)
    if kind is None:
        return None
    excerpt = body[:300].decode("utf-8", "replace")
    message = f"HTTP {status}: {excerpt}"
    found = requested_wait(headers)
    wait, source = found if found is not None else (None, None)
    if kind is not FailureKind.RATE_LIMITED:
        return Failure(kind, message, status, wait, wait_source=source)
    info = rate_limit_info(headers)
    limit_type = _error_type(body)
    if limit_type not in ("requests", "tokens"):
        if info.remaining_tokens == 0 and info.remaining_requests != 0:
            limit_type = "tokens"
        elif info.remaining_requests == 0:
            limit_type = "requests"
        else:
            limit_type = None
    # A spent window's reset time is as good as a Retry-After.
    for name, remaining, reset in (
        ("requests", info.remaining_requests, info.reset_requests),
        ("tokens", info.remaining_tokens, info.reset_tokens),
    ):
        if remaining == 0 and reset is not None and (wait is None or reset > wait):
            wait, source = reset, f"x-ratelimit-reset-{name}"
    return Failure(kind, message, status, wait, limit_type, source)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per request and the wait between them."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")

    def should_retry(self, attempt: int, failure: Failure) -> bool:
        """Whether attempt number ``attempt`` (1-based), which failed, gets a successor."""
        return failure.retryable and attempt < self.max_attempts

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: in ``[b/2, b]`` for ``b = base*2**(n-1)``."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)

    def delay(
        self, attempt: int, failure: Failure, rng: random.Random, *, cap: float | None = None
    ) -> float:
        """Seconds to wait after failed attempt ``attempt`` before queueing the next.

        A server-given wait is honoured as a floor, with up to 10% (at most 1 s) of jitter
        added so that requests throttled together do not return together. A wait longer
        than ``cap`` is cut to ``cap``, jittered below it for the same reason.
        """
        if failure.retry_after is None:
            backoff = self.backoff(attempt, rng)
            return backoff if cap is None else min(backoff, cap)
        if cap is not None and failure.retry_after > cap:
            return cap - rng.uniform(0, min(1.0, 0.1 * cap))
        spread = min(1.0, 0.1 * failure.retry_after + 0.01)
        wait = failure.retry_after + rng.uniform(0, spread)
        return wait if cap is None else min(wait, cap)

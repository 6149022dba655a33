"""Which failures are worth another attempt, and how long to wait before it.

Classification is by HTTP status and by transport exception; 429 and 5xx, timeouts,
connection resets, malformed JSON, empty ``choices`` and answers over the size cap are
transient, any other 4xx is permanent, except a refusal saying that prompt plus
``max_tokens`` overflow the model's context (:func:`context_overflow` reads OpenAI's,
vLLM's, llama.cpp's and llama-cpp-python's wordings): the client retries that one with a
smaller ``max_tokens`` (:func:`next_max_tokens`). The wait honours what the server said
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
    # Prompt + max_tokens overflow the context: the same request can never succeed, a
    # smaller max_tokens may (the HTTP client shrinks it; see :func:`next_max_tokens`).
    CONTEXT_LENGTH = "context_length"

    @property
    def retryable(self) -> bool:
        return self not in (FailureKind.CLIENT_ERROR, FailureKind.CONTEXT_LENGTH)


#: Each blind shrink multiplies ``max_tokens`` by this (when the refusal gives no numbers).
CONTEXT_SHRINK = 0.8
#: The default floor: a ``max_tokens`` that would fall below it is not tried.
MIN_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ContextOverflow:
    """What a context-length refusal said, each number ``None`` where it did not say it.

    ``context``: the model's context in tokens; ``prompt``: the prompt's tokens;
    ``requested``: prompt plus completion as the server added them up; ``completion``:
    the completion part of that sum; ``completion_cap``: the most completion tokens the
    model allows whatever the prompt (OpenAI's "supports at most N completion tokens").
    """

    context: int | None = None
    prompt: int | None = None
    requested: int | None = None
    completion: int | None = None
    completion_cap: int | None = None

    def fit(self, sent: int) -> int | None:
        """The largest ``max_tokens`` the numbers allow (<= 0: the prompt alone is too long),
        or ``None`` when they do not say; ``sent`` is the ``max_tokens`` that was refused."""
        prompt = self.prompt
        if prompt is None and self.requested is not None:
            prompt = self.requested - (self.completion if self.completion is not None else sent)
        room = [self.context - prompt] if self.context is not None and prompt is not None else []
        if self.completion_cap is not None:
            room.append(self.completion_cap)
        return min(room) if room else None


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified."""

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    limit_type: str | None = None  # "requests" or "tokens" for a 429, when known
    wait_source: str | None = None  # the header ``retry_after`` came from
    overflow: ContextOverflow | None = None  # for ``CONTEXT_LENGTH``: what the server said

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


# What marks a refusal as a context overflow, in the servers' own words: OpenAI and vLLM
# ("maximum context length"), llama.cpp ("exceeds the available context size"),
# llama-cpp-python unformatted ("exceed context window"), vLLM's prompt-only checks,
# Hugging Face TGI, and OpenAI's per-model completion cap.
_CONTEXT_WORDING = re.compile(
    r"maximum context length|available context size|exceed(?:s|ed)? (?:the )?context window"
    r"|longer than the maximum model length|too long and exceeds limit of"
    r"|`max_new_tokens` must be <=|supports at most \d+ completion tokens"
    r"|prompt is too long: \d+ tokens",
    re.IGNORECASE,
)
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
# Each number a refusal may state, and the phrasings that state it (first match wins).
_CONTEXT_NUMBERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "context",
        (
            r"maximum context length.{0,80}?(\d+) tokens",
            r"context window of (\d+)",
            r"maximum model length of (\d+)",
            r"exceeds limit of (\d+)",
            r"`max_new_tokens` must be <= (\d+)",
            r"tokens > (\d+) maximum",
        ),
    ),
    (
        "prompt",
        (
            r"\((\d+) in (?:the |your )?(?:messages|prompt)",
            r"your messages resulted in (\d+) tokens",
            r"your request has (\d+) input tokens",
            # llama-cpp-python counts the prompt alone here (it trims max_tokens itself).
            r"requested tokens \((\d+)\) exceed",
            r"prompt \(length (\d+)\)",
            r"input prompt \((\d+) tokens\)",
            r"given: (\d+) `inputs` tokens",
            r"prompt is too long: (\d+) tokens",
        ),
    ),
    ("requested", (r"you requested (\d+) tokens",)),
    ("completion", (r"(\d+) (?:in|for) the completion", r"and (\d+) `max_new_tokens`")),
    ("completion_cap", (r"supports at most (\d+) completion tokens",)),
)
_COMPILED_NUMBERS = tuple(
    (name, tuple(re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns))
    for name, patterns in _CONTEXT_NUMBERS
)


def _error_fields(body: bytes) -> tuple[str, dict[str, object]]:
    """The error's message and its object (OpenAI's ``{"error": {...}}``, or vLLM's older
    top-level ``{"object": "error", "message": ...}``); the raw text when not JSON."""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text, {}
    if not isinstance(payload, dict):
        return text, {}
    error = payload.get("error")
    fields = error if isinstance(error, dict) else payload
    message = fields.get("message")
    if not isinstance(message, str):
        message = error if isinstance(error, str) else text
    return message, fields


def context_overflow(body: bytes) -> ContextOverflow | None:
    """What a refusal says about the context, or ``None`` if it is not a context overflow.

    Recognised by an error ``code``/``type`` (``context_length_exceeded``,
    ``exceed_context_size_error``) or by the message's wording; the numbers come from the
    message, or from llama.cpp's ``n_ctx`` and ``n_prompt_tokens`` fields.
    """
    message, fields = _error_fields(body)
    codes = {fields.get("code"), fields.get("type")}
    if not (codes & _CONTEXT_CODES or _CONTEXT_WORDING.search(message)):
        return None
    found: dict[str, int] = {}
    for name, patterns in _COMPILED_NUMBERS:
        for pattern in patterns:
            match = pattern.search(message)
            if match is not None:
                found[name] = int(match.group(1))
                break
    for name, key in (("context", "n_ctx"), ("prompt", "n_prompt_tokens")):
        number = fields.get(key)
        if name not in found and isinstance(number, int) and not isinstance(number, bool):
            found[name] = number
    return ContextOverflow(**found)


def next_max_tokens(
    sent: int, overflow: ContextOverflow, *, floor: int = MIN_MAX_TOKENS
) -> int | None:
    """The ``max_tokens`` to try after ``sent`` overflowed the context; ``None``: give up.

    What the numbers say fits when the refusal gives them, else ``sent`` times
    :data:`CONTEXT_SHRINK`; ``None`` when that is below ``floor`` (a prompt too long on
    its own leaves no room at all). A stated fit that is no smaller than ``sent`` (the
    server counts differently from its message) falls back to the blind step, so every
    retry asks for less and the retries end.
    """
    fit = overflow.fit(sent)
    smaller = fit if fit is not None and fit < sent else math.floor(sent * CONTEXT_SHRINK)
    return smaller if smaller >= floor else None


def failure_from_response(status: int, headers: Mapping[str, str], body: bytes) -> Failure | None:
    """Classify an HTTP answer by status; ``None`` for 2xx (the body is checked later)."""
    kind = classify_status(status)
    if kind is None:
        return None
    excerpt = body[:300].decode("utf-8", "replace")
    message = f"HTTP {status}: {excerpt}"
    if kind is FailureKind.CLIENT_ERROR or status == 500:
        # Servers wrap errors they do not recognise as 500 (llama-cpp-python does); a
        # context overflow among them is as final as a 400: the wording decides.
        overflow = context_overflow(body)
        if overflow is not None:
            return Failure(FailureKind.CONTEXT_LENGTH, message, status, overflow=overflow)
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

"""Retry classification by status and exception, server-given waits, and backoff."""

from __future__ import annotations

import email.utils
import json
import random

import pytest

from selfinstruct_async.client.retry import (
    Failure,
    FailureKind,
    RetryPolicy,
    classify_exception,
    classify_status,
    failure_from_response,
    parse_duration,
    rate_limit_info,
    retry_after,
)
from selfinstruct_async.errors import TransportConnectionError, TransportTimeout


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (201, None),
        (429, FailureKind.RATE_LIMITED),
        (500, FailureKind.SERVER_ERROR),
        (502, FailureKind.SERVER_ERROR),
        (503, FailureKind.SERVER_ERROR),
        (504, FailureKind.SERVER_ERROR),
        (400, FailureKind.CLIENT_ERROR),
        (401, FailureKind.CLIENT_ERROR),
        (403, FailureKind.CLIENT_ERROR),
        (404, FailureKind.CLIENT_ERROR),
        (422, FailureKind.CLIENT_ERROR),
    ],
)
def test_status_classification(status: int, kind: FailureKind | None) -> None:
    assert classify_status(status) is kind


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_other_than_429_are_not_retryable(status: int) -> None:
    failure = failure_from_response(status, {}, b'{"error": {"message": "bad"}}')
    assert failure is not None
    assert not failure.retryable
    assert not RetryPolicy(max_attempts=10).should_retry(1, failure)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retryable(status: int) -> None:
    failure = failure_from_response(status, {}, b"")
    assert failure is not None and failure.retryable


def test_transport_failures_are_classified_and_retryable() -> None:
    timeout = classify_exception(TransportTimeout("no answer within 1 s"))
    reset = classify_exception(TransportConnectionError("reset by peer"))
    assert timeout.kind is FailureKind.TIMEOUT and timeout.retryable
    assert reset.kind is FailureKind.CONNECTION and reset.retryable


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1", 1.0),
        ("0.25", 0.25),
        ("20ms", 0.02),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("", None),
        ("soon", None),
        ("5x", None),
        ("-3", None),
    ],
)
def test_duration_parsing(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (None if seconds is None else pytest.approx(seconds))


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after({"retry-after": "2", "retry-after-ms": "1500"}) == pytest.approx(1.5)
    assert retry_after({"retry-after": "2"}) == pytest.approx(2.0)
    assert retry_after({}) is None


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after({"retry-after": when}, now=1_000_000.0) == pytest.approx(30.0)


def test_spent_window_reset_is_used_as_the_wait_and_names_the_limit() -> None:
    headers = {
        "x-ratelimit-limit-requests": "3000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2.5s",
        "retry-after": "1",
    }
    failure = failure_from_response(429, headers, b"{}")
    assert failure is not None
    assert failure.retry_after == pytest.approx(2.5)
    assert failure.limit_type == "requests"


def test_error_body_type_names_the_limit() -> None:
    body = json.dumps(
        {"error": {"message": "TPM", "type": "tokens", "code": "rate_limit_exceeded"}}
    ).encode()
    failure = failure_from_response(429, {"retry-after-ms": "300"}, body)
    assert failure is not None
    assert failure.limit_type == "tokens"
    assert failure.retry_after == pytest.approx(0.3)


def test_rate_limit_headers_are_parsed() -> None:
    info = rate_limit_info(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "garbage",
        }
    )
    assert info.limit_requests == 500
    assert info.remaining_requests == 499
    assert info.reset_requests == pytest.approx(0.12)
    assert info.limit_tokens is None
    assert info.present


def test_backoff_grows_exponentially_within_jitter_bounds_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_server_given_wait_is_a_floor_with_a_little_jitter() -> None:
    policy = RetryPolicy(base_delay=10.0, max_delay=60.0)
    failure = Failure(FailureKind.RATE_LIMITED, "429", 429, retry_after=2.0)
    rng = random.Random(1)
    delays = [policy.delay(1, failure, rng) for _ in range(100)]
    assert min(delays) >= 2.0
    assert max(delays) <= 2.0 + 0.21


def test_attempts_stop_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    failure = Failure(FailureKind.SERVER_ERROR, "503", 503)
    assert [policy.should_retry(n, failure) for n in (1, 2, 3)] == [True, True, False]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5, max_delay=1)

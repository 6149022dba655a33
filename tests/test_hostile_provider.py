"""A hostile provider against the request layer (issue 18, items 4 and 9).

A ``Retry-After`` of a day, answers of a hundred megabytes, and credentials written into a
``base_url``: each is reproduced over real loopback HTTP against the simulator where the
fault is the server's, and on virtual time with a mock transport where what matters is
what the client logs and how long it waits.
"""

from __future__ import annotations

import logging
import random
import re

import anyio
import pytest

from selfinstruct_async.client.http import LONG_WAIT, build_http_client
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.retry import Failure, FailureKind, RetryPolicy
from selfinstruct_async.client.transport import (
    READ_CHUNK,
    AiohttpTransport,
    TransportRequest,
    TransportResponse,
    display_url,
    strip_userinfo,
)
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import (
    ConfigError,
    ResponseTooLarge,
    RetriesExhausted,
    TransportConnectionError,
)
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time
from tests.fixtures.simulator import MakeSimulator
from tests.test_http_client import answer, error, make_client, scripted, transport

REQUEST = CompletionRequest(stage="gen", prompt="List three colours.", max_tokens=5)
LOGGER = "selfinstruct_async"
PASSWORD = "hunter2-not-an-sk-key"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- a day-long Retry-After --------------------------------------------------------------


@pytest.mark.anyio
async def test_a_day_long_retry_after_is_capped_at_max_retry_wait_and_warned_once(
    make_simulator: MakeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    # With seed 7 the first two attempts draw a 429, the third an answer.
    sim = await make_simulator(fault_429=0.5, retry_after=86400, seed=7)
    config = EndpointConfig(
        base_url=sim.base_url, model="sim-model", max_retry_wait=1.0, max_attempts=10
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with build_http_client([config], UsageMeter()) as client:
        with anyio.fail_after(60):  # a day without the cap
            done = await client.complete(REQUEST)
    assert done.text
    assert sim.stats.faults["429"] == 2
    assert warnings(caplog) == [
        f"endpoint {sim.base_url} asked to wait 86400s (Retry-After); "
        "waiting 1s at most (endpoints[0].max_retry_wait)"
    ]


@pytest.mark.anyio
async def test_a_new_episode_of_long_waits_after_an_answer_is_warned_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    day = {"retry-after": "86400"}
    client = make_client(
        clock,
        scripted(error(429, day), error(429, day), answer("a"), error(429, day), answer("b")),
        max_attempts=5,
    )
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    first = await on_virtual_time(clock, lambda: client.complete(REQUEST))
    second = await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert (first.text, second.text) == ("a", "b")
    assert len(warnings(caplog)) == 2  # one per episode, not one per 429
    assert clock.now() <= 3 * 300.0  # three waits, each at most the default cap


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "source"),
    [
        ({"retry-after-ms": "7200000"}, "retry-after-ms"),
        (
            {
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "2h0m0s",
                "retry-after": "1",
            },
            "x-ratelimit-reset-tokens",
        ),
    ],
)
async def test_every_header_that_asks_for_a_wait_is_capped_and_named(
    caplog: pytest.LogCaptureFixture, headers: dict[str, str], source: str
) -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://ep.test/v1", model="m", max_retry_wait=60.0)
    client = make_client(clock, scripted(error(429, headers), answer("ok")), configs=[config])
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert clock.now() <= 60.0
    assert warnings(caplog) == [
        f"endpoint http://ep.test/v1 asked to wait 7200s ({source}); "
        "waiting 60s at most (endpoints[0].max_retry_wait)"
    ]


@pytest.mark.anyio
async def test_a_long_wait_under_the_cap_is_honoured_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    client = make_client(clock, scripted(error(503, {"retry-after": "120"}), answer("ok")))
    caplog.set_level(logging.INFO, logger=LOGGER)
    await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert clock.now() >= 120.0
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert re.fullmatch(
        r"endpoint http://ep0\.test/v1 asked to wait 120s \(Retry-After\); waiting 12\ds",
        infos[0],
    )
    assert warnings(caplog) == []


def test_a_capped_server_wait_is_jittered_below_the_cap() -> None:
    policy = RetryPolicy()
    failure = Failure(FailureKind.RATE_LIMITED, "429", 429, retry_after=86400.0)
    rng = random.Random(3)
    delays = [policy.delay(1, failure, rng, cap=300.0) for _ in range(200)]
    assert max(delays) <= 300.0
    assert min(delays) >= 299.0
    assert len(set(delays)) > 100  # throttled together, not back together
    short = Failure(FailureKind.RATE_LIMITED, "429", 429, retry_after=2.0)
    assert 2.0 <= policy.delay(1, short, rng, cap=300.0) <= 2.21
    assert LONG_WAIT < 300.0


# -- answers too large to hold --------------------------------------------------------------


@pytest.mark.anyio
async def test_an_answer_announced_larger_than_the_cap_is_refused_unread(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(fault_huge=1.0, huge_bytes=50_000_000)
    url = f"{sim.base_url}/completions"
    sender = AiohttpTransport(limit=1)
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            await sender.send(TransportRequest(url, b'{"prompt": "a"}', max_bytes=65536))
    finally:
        await sender.aclose()
    assert caught.value.announced == 50_000_000
    assert caught.value.bytes_read == 0
    assert str(caught.value) == (
        f"answer larger than 65536 bytes from {url} (Content-Length 50000000)"
    )


@pytest.mark.anyio
async def test_an_answer_without_content_length_is_read_no_further_than_the_cap(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(fault_huge=1.0, huge_bytes=50_000_000, huge_chunked=True)
    sender = AiohttpTransport(limit=1)
    request = TransportRequest(f"{sim.base_url}/completions", b'{"prompt": "a"}', max_bytes=100_000)
    try:
        with pytest.raises(ResponseTooLarge, match="answer larger than 100000 bytes") as caught:
            await sender.send(request)
    finally:
        await sender.aclose()
    assert caught.value.announced is None
    assert 100_000 < caught.value.bytes_read <= 100_000 + READ_CHUNK


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True])
async def test_huge_answers_are_failed_attempts_retried_then_retries_exhausted(
    make_simulator: MakeSimulator, chunked: bool
) -> None:
    sim = await make_simulator(fault_huge=1.0, huge_bytes=20_000_000, huge_chunked=chunked)
    usage = UsageMeter()
    config = EndpointConfig(
        base_url=sim.base_url, model="sim-model", max_response_bytes=65536, max_attempts=3
    )
    async with build_http_client([config], usage) as client:
        with pytest.raises(RetriesExhausted) as caught:
            with anyio.fail_after(60):
                await client.complete(REQUEST)
    assert caught.value.attempts == 3
    assert caught.value.last_failure == "too_large"
    assert f"answer larger than 65536 bytes from {sim.base_url}/completions" in str(caught.value)
    assert sim.stats.faults["huge"] == 3
    stage = usage.stage("gen")
    assert (stage.retries, stage.failures) == (2, 1)


@pytest.mark.anyio
async def test_a_huge_answer_among_good_ones_costs_one_attempt(
    make_simulator: MakeSimulator,
) -> None:
    # With seed 1 the first request draws a huge body (p=0.5), the next an answer.
    sim = await make_simulator(fault_huge=0.5, huge_bytes=5_000_000, seed=1)
    config = EndpointConfig(base_url=sim.base_url, model="sim-model", max_response_bytes=65536)
    async with build_http_client([config], UsageMeter()) as client:
        done = await client.complete(REQUEST)
        assert client.endpoints[0].stats["too_large"] == 1
    assert done.text
    assert sim.stats.faults["huge"] == 1


@pytest.mark.anyio
async def test_a_transport_that_does_not_stop_at_the_cap_is_still_refused() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://ep.test/v1", model="m", max_response_bytes=2048)
    big = TransportResponse(200, {}, b'{"choices": [{"text": "' + b"x" * 4096 + b'"}]}')
    client = make_client(clock, scripted(big, answer("small")), configs=[config])
    done = await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert done.text == "small"
    assert transport(client).requests[0].max_bytes == 2048  # the cap is passed down too
    assert client.endpoints[0].stats["too_large"] == 1


@pytest.mark.anyio
async def test_a_request_reading_a_slow_huge_answer_stays_cancellable(
    make_simulator: MakeSimulator,
) -> None:
    # A gigabyte trickling in: no cap is reached before the cancellation.
    sim = await make_simulator(
        fault_huge=1.0, huge_bytes=1 << 30, huge_chunked=True, huge_chunk_delay=0.01
    )
    config = EndpointConfig(base_url=sim.base_url, model="sim-model")
    outcome: list[bool] = []
    async with build_http_client([config], UsageMeter()) as client:
        scope = anyio.CancelScope()

        async def request() -> None:
            with scope:
                await client.complete(REQUEST)
            outcome.append(scope.cancelled_caught)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(request)
                await sim.streaming_huge()
                scope.cancel()
            await sim.disconnected()  # the client closed the connection, not drained it
    assert outcome == [True]
    assert sim.stats.disconnects == 1


# -- credentials written into a base_url ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8000/v1", "http://host:8000/v1"),
        ("https://sk-abc@api.example.com/v1/", "https://api.example.com/v1/"),
        ("http://u:p%40ss@[::1]:80/v1/completions", "http://[::1]:80/v1/completions"),
        ("http://a:b@c@host/v1", "http://host/v1"),
        ("http://host/v1?api-key=sk-1#frag", "http://host/v1?..."),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://[bad/v1", "http://[bad/v1"),
    ],
)
def test_display_url_shows_no_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_credentials_are_cut_out_of_urls_in_free_text() -> None:
    text = "Cannot connect to http://admin:pa55@host:9/v1 (HTTPS://tok@x/y), mail a@b"
    assert strip_userinfo(text) == "Cannot connect to http://host:9/v1 (HTTPS://x/y), mail a@b"


@pytest.mark.anyio
async def test_credentials_in_a_base_url_never_reach_errors_or_logs(
    make_simulator: MakeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await make_simulator(fault_429=1.0, retry_after=86400)
    with_password = sim.base_url.replace("http://", f"http://reader:{PASSWORD}@")
    config = EndpointConfig(
        base_url=with_password, model="sim-model", max_attempts=2, max_retry_wait=1.0
    )
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with build_http_client([config], UsageMeter()) as client:
        with pytest.raises(RetriesExhausted) as caught:
            with anyio.fail_after(60):
                await client.complete(REQUEST)
    assert sim.stats.requests == 2  # the requests were sent, to the right place
    assert f"last at {sim.base_url}/completions" in str(caught.value)
    assert warnings(caplog) == [  # the endpoint is named in the warning...
        f"endpoint {sim.base_url} asked to wait 86400s (Retry-After); "
        "waiting 1s at most (endpoints[0].max_retry_wait)"
    ]
    for shown in (str(caught.value), repr(caught.value), caplog.text):
        assert PASSWORD not in shown  # ...and nowhere with its credentials
        assert "reader:" not in shown


@pytest.mark.anyio
async def test_a_transport_error_quoting_the_url_or_its_password_is_scrubbed() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://reader:hunter2%40home@ep.test/v1", model="m")

    def quoting(request: TransportRequest) -> TransportResponse:
        raise TransportConnectionError(f"InvalidURL: {request.url} (auth hunter2@home)")

    client = make_client(clock, quoting, configs=[config], max_attempts=2)
    with pytest.raises(RetriesExhausted) as caught:
        await on_virtual_time(clock, lambda: client.complete(REQUEST))
    message = str(caught.value)
    assert "hunter2" not in message
    assert "InvalidURL: http://[redacted]@ep.test/v1/completions (auth [redacted])" in message


def test_a_refused_base_url_is_quoted_without_its_credentials() -> None:
    config = EndpointConfig(base_url=f"ftp://reader:{PASSWORD}@ep.test/v1", model="m")
    with pytest.raises(ConfigError, match="must start with http") as caught:
        build_http_client([config], UsageMeter())
    assert PASSWORD not in str(caught.value)
    assert "ftp://ep.test/v1" in str(caught.value)

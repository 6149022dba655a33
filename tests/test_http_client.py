"""The HTTP client over a mock transport, on virtual time."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from typing import Any, TypeVar

import anyio
import pytest

from selfinstruct_async.client.endpoint import Endpoint, pool_size
from selfinstruct_async.client.http import HTTPClient, build_http_client
from selfinstruct_async.client.openai_format import parse_completion
from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.protocol import Completion, CompletionRequest
from selfinstruct_async.client.retry import Failure, FailureKind, RetryPolicy
from selfinstruct_async.client.tokens import prompt_tokens
from selfinstruct_async.client.transport import (
    AiohttpTransport,
    Handler,
    MockTransport,
    TransportRequest,
    TransportResponse,
)
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import (
    BudgetExhausted,
    CheckpointError,
    PermanentHTTPError,
    RequestTooLarge,
    RetriesExhausted,
    TransportConnectionError,
    TransportTimeout,
)
from selfinstruct_async.observe.logs import Redactor
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time

T = TypeVar("T")
SECRET = "sk-test-Zq81SECRETkey"


def answer(
    *texts: str,
    chat: bool = False,
    usage: tuple[int, int] | None = (7, 3),
    headers: dict[str, str] | None = None,
) -> TransportResponse:
    choices: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        if chat:
            message = {"role": "assistant", "content": text}
            choices.append({"index": i, "message": message, "finish_reason": "stop"})
        else:
            choices.append({"index": i, "text": text, "finish_reason": "stop"})
    payload: dict[str, Any] = {"choices": choices, "model": "m"}
    if usage is not None:
        payload["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return TransportResponse.from_json(200, payload, headers)


def error(status: int, headers: dict[str, str] | None = None, **extra: Any) -> TransportResponse:
    body = {"error": {"message": f"status {status}", "type": "server_error", **extra}}
    return TransportResponse.from_json(status, body, headers)


def make_client(
    clock: ManualClock,
    *handlers: Handler,
    usage: UsageMeter | None = None,
    configs: Sequence[EndpointConfig] | None = None,
    api_key: str | None = None,
    max_attempts: int = 4,
) -> HTTPClient:
    configs = configs or [
        EndpointConfig(base_url=f"http://ep{i}.test/v1", model="m") for i in range(len(handlers))
    ]
    endpoints = [
        Endpoint(
            config,
            MockTransport(handler),
            Pacer(rpm=config.rpm, tpm=config.tpm, concurrency=config.concurrency, clock=clock),
            api_key,
        )
        for config, handler in zip(configs, handlers, strict=True)
    ]
    return HTTPClient(
        endpoints,
        usage if usage is not None else UsageMeter(),
        policy=RetryPolicy(max_attempts=max_attempts, base_delay=0.5, max_delay=8.0),
        clock=clock,
        rng=random.Random(0),
    )


def transport(client: HTTPClient, index: int = 0) -> MockTransport:
    mock = client.endpoints[index].transport
    assert isinstance(mock, MockTransport)
    return mock


REQUEST = CompletionRequest(stage="gen", prompt="List three colours.", max_tokens=20)


# -- request and response shapes --------------------------------------------------------


@pytest.mark.anyio
async def test_completions_request_is_posted_with_the_prompt_and_parsed() -> None:
    clock = ManualClock()
    client = make_client(clock, lambda r: answer("red, green, blue"))
    request = CompletionRequest(
        stage="gen", prompt="List three colours.", max_tokens=20, temperature=0.7, stop=("\n\n",)
    )
    completion = await client.complete(request)
    assert completion.text == "red, green, blue"
    assert completion.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 7 and completion.usage.completion_tokens == 3
    sent = transport(client).requests[0]
    assert sent.url == "http://ep0.test/v1/completions"
    body = sent.json()
    assert body["prompt"] == "List three colours."
    assert body["model"] == "m"
    assert body["max_tokens"] == 20 and body["temperature"] == 0.7
    assert body["stop"] == ["\n\n"]
    assert "messages" not in body


@pytest.mark.anyio
async def test_chat_request_sends_system_then_user_and_parses_message_content() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://chat.test/v1/", model="c", api="chat")
    client = make_client(clock, lambda r: answer("1. Paris", chat=True), configs=[config])
    completion = await client.complete(
        CompletionRequest(stage="gen", prompt="Continue:", system="Answer as a list.", max_tokens=5)
    )
    assert completion.text == "1. Paris"
    sent = transport(client).requests[0]
    assert sent.url == "http://chat.test/v1/chat/completions"
    assert sent.json()["messages"] == [
        {"role": "system", "content": "Answer as a list."},
        {"role": "user", "content": "Continue:"},
    ]


@pytest.mark.anyio
async def test_chat_without_system_sends_only_the_user_message() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://chat.test/v1", model="c", api="chat")
    client = make_client(clock, lambda r: answer("x", chat=True), configs=[config])
    await client.complete(REQUEST)
    assert transport(client).requests[0].json()["messages"] == [
        {"role": "user", "content": "List three colours."}
    ]


def test_choices_are_ordered_by_index_and_null_content_is_empty() -> None:
    body = json.dumps(
        {
            "choices": [
                {"index": 1, "message": {"content": None}, "finish_reason": "length"},
                {"index": 0, "message": {"content": "first"}, "finish_reason": "stop"},
            ]
        }
    ).encode()
    parsed = parse_completion(body, chat=True)
    assert isinstance(parsed, Completion)
    assert [(c.text, c.finish_reason) for c in parsed.choices] == [
        ("first", "stop"),
        ("", "length"),
    ]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"choices": [{"text": "cut', FailureKind.MALFORMED),
        (b"[]", FailureKind.MALFORMED),
        (b'{"object": "list"}', FailureKind.MALFORMED),
        (b'{"choices": [{"text": 3}]}', FailureKind.MALFORMED),
        (b'{"choices": []}', FailureKind.EMPTY),
    ],
)
def test_bad_bodies_are_classified(body: bytes, kind: FailureKind) -> None:
    parsed = parse_completion(body, chat=False)
    assert isinstance(parsed, Failure) and parsed.kind is kind and parsed.retryable


# -- retries ----------------------------------------------------------------------------


def scripted(*responses: TransportResponse | Exception) -> Handler:
    """A handler that plays ``responses`` in order (exceptions are raised)."""
    queue = list(responses)

    def handle(request: TransportRequest) -> TransportResponse:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handle


@pytest.mark.anyio
async def test_server_errors_timeouts_and_resets_are_retried_then_succeed() -> None:
    clock = ManualClock()
    usage = UsageMeter()
    client = make_client(
        clock,
        scripted(
            error(503),
            TransportTimeout("no answer within 1 s"),
            TransportConnectionError("reset"),
            answer("ok"),
        ),
        usage=usage,
    )
    completion = await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert completion.text == "ok"
    assert len(transport(client).requests) == 4
    stage = usage.stage("gen")
    assert (stage.requests, stage.retries, stage.failures) == (1, 3, 0)
    # Exponential backoff: 3 waits of at least 0.25, 0.5 and 1 s.
    assert clock.now() >= 0.25 + 0.5 + 1.0


@pytest.mark.anyio
async def test_retry_after_is_honoured_before_the_next_attempt() -> None:
    clock = ManualClock()
    sent_at: list[float] = []
    responses = [
        error(429, {"retry-after-ms": "1500", "retry-after": "2"}, code="rate_limit_exceeded"),
        answer("ok"),
    ]

    def handle(request: TransportRequest) -> TransportResponse:
        sent_at.append(clock.now())
        return responses.pop(0)

    usage = UsageMeter()
    client = make_client(clock, handle, usage=usage)
    await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert sent_at[1] - sent_at[0] >= 1.5
    assert sent_at[1] - sent_at[0] <= 1.5 + 0.2
    assert usage.stage("gen").rate_limited == 1


@pytest.mark.anyio
async def test_client_errors_are_reported_at_once_without_retrying() -> None:
    clock = ManualClock()
    usage = UsageMeter()
    client = make_client(clock, lambda r: error(400), usage=usage)
    with pytest.raises(PermanentHTTPError) as caught:
        await client.complete(REQUEST)
    assert caught.value.status == 400
    assert len(transport(client).requests) == 1
    assert usage.stage("gen").failures == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "bad",
    [
        TransportResponse(200, {}, b'{"choices": [{"text": "trunc'),
        TransportResponse.from_json(200, {"choices": []}),
        TransportResponse.from_json(502, {}),
    ],
)
async def test_persistent_transient_failures_end_in_retries_exhausted(
    bad: TransportResponse,
) -> None:
    clock = ManualClock()
    usage = UsageMeter()
    client = make_client(clock, lambda r: bad, usage=usage, max_attempts=3)
    with pytest.raises(RetriesExhausted, match="3 attempt"):
        await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert len(transport(client).requests) == 3
    stage = usage.stage("gen")
    assert (stage.requests, stage.retries, stage.failures) == (0, 2, 1)


@pytest.mark.anyio
async def test_truncated_answer_is_returned_not_retried() -> None:
    clock = ManualClock()
    body = {"choices": [{"text": "half an ans", "finish_reason": "length"}]}
    client = make_client(clock, lambda r: TransportResponse.from_json(200, body))
    completion = await client.complete(REQUEST)
    assert completion.finish_reason == "length"
    assert len(transport(client).requests) == 1


# -- secrets ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_api_key_is_sent_as_bearer_but_never_appears_in_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    seen: list[str] = []

    def leaky(request: TransportRequest) -> TransportResponse:
        seen.append(request.headers["Authorization"])
        # A careless server echoing the header back must not leak it through us.
        echoed = f"bad key {request.headers['Authorization']}"
        status = 503 if len(seen) < 3 else 401
        return TransportResponse.from_json(status, {"error": {"message": echoed}})

    client = make_client(clock, leaky, api_key=SECRET, max_attempts=5)
    caplog.set_level(logging.DEBUG, logger="selfinstruct_async")
    with pytest.raises(PermanentHTTPError) as caught:
        await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert seen[0] == f"Bearer {SECRET}"
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in caught.value.body
    assert SECRET not in repr(client.endpoints[0])
    assert SECRET not in repr(transport(client).requests[0])
    assert "[redacted]" in caplog.text  # the retries were logged, scrubbed
    assert SECRET not in caplog.text

    exhausted = make_client(clock, leaky, api_key=SECRET, max_attempts=1)
    seen.clear()
    with pytest.raises(RetriesExhausted) as caught_exhausted:
        await exhausted.complete(REQUEST)
    assert SECRET not in str(caught_exhausted.value)


@pytest.mark.anyio
async def test_errors_are_scrubbed_by_the_same_rules_as_log_lines() -> None:
    clock = ManualClock()
    other_key, token = "sk-proj-OtherProvider0123", "eyJhbGciOi.payload.sig"
    leaked = (
        f"key {other_key} refused for {SECRET}; Authorization: Bearer {token}; "
        "retry at http://admin:pw@internal.test/v1 (ops@corp.example)"
    )
    refusal = error(400, detail=leaked)
    client = make_client(clock, lambda r: refusal, api_key=SECRET)
    with pytest.raises(PermanentHTTPError) as caught:
        await client.complete(REQUEST)
    body = caught.value.body
    for secret in (other_key, SECRET, token, "admin", ":pw@"):
        assert secret not in body
    assert "http://[redacted]@internal.test/v1 (ops@corp.example)" in body
    # What the log would show of the same text, its key taken from the environment.
    log_rules = Redactor.from_env(["PROVIDER_KEY"], {"PROVIDER_KEY": SECRET})
    assert body == log_rules(refusal.body.decode())


# -- limits and budgets -----------------------------------------------------------------


@pytest.mark.anyio
async def test_request_bigger_than_the_token_limit_fails_fast_without_sending() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://ep.test/v1", model="m", tpm=1000)
    client = make_client(clock, lambda r: answer("x"), configs=[config])
    with pytest.raises(RequestTooLarge, match="tokens per minute"):
        await client.complete(CompletionRequest(stage="gen", prompt="hi", max_tokens=600, n=2))
    assert transport(client).requests == []


@pytest.mark.anyio
async def test_token_budget_stops_before_it_is_overspent() -> None:
    clock = ManualClock()
    request = CompletionRequest(stage="gen", prompt="List three colours.", max_tokens=20)
    held = prompt_tokens(request.prompt) + 20
    usage = UsageMeter(max_tokens=100)
    client = make_client(clock, lambda r: answer("x", usage=(10, 15)), usage=usage)
    done = 0
    with pytest.raises(BudgetExhausted, match="token budget of 100"):
        for _ in range(100):
            await client.complete(request)
            done += 1
    assert usage.totals().total_tokens <= 100
    assert usage.totals().total_tokens + held > 100  # it stopped because the next might not fit
    assert len(transport(client).requests) == done == 4
    with pytest.raises(BudgetExhausted):  # and it stays stopped
        await client.complete(CompletionRequest(stage="other", prompt="", max_tokens=0))


@pytest.mark.anyio
async def test_cost_budget_counts_prices_per_million_tokens() -> None:
    clock = ManualClock()
    config = EndpointConfig(
        base_url="http://ep.test/v1", model="m", prompt_price=1000.0, completion_price=2000.0
    )
    usage = UsageMeter(max_cost=0.1)
    client = make_client(clock, lambda r: answer("x", usage=(10, 5)), usage=usage, configs=[config])
    with pytest.raises(BudgetExhausted, match="cost budget"):
        for _ in range(100):
            await client.complete(REQUEST)
    spent = usage.totals().cost_usd
    assert spent <= 0.1
    assert spent == pytest.approx(len(transport(client).requests) * (10 * 1000 + 5 * 2000) / 1e6)


@pytest.mark.anyio
async def test_reported_usage_reconciles_the_token_reservation() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://ep.test/v1", model="m", tpm=60_000)
    usage = UsageMeter()
    client = make_client(clock, lambda r: answer("x", usage=(7, 3)), usage=usage, configs=[config])
    request = CompletionRequest(stage="gen", prompt="List three colours.", max_tokens=500)
    reserved = prompt_tokens(request.prompt) + 500
    await on_virtual_time(clock, lambda: client.complete(request))
    bucket = client.endpoints[0].pacer.tokens.bucket
    assert bucket is not None
    # The bucket started empty, the head waited for ``reserved`` tokens, and the 490 tokens
    # the answer did not use were given back.
    assert bucket.level == pytest.approx(reserved - 10)
    assert usage.stage("gen").prompt_tokens == 7
    assert usage.stage("gen").completion_tokens == 3


@pytest.mark.anyio
async def test_missing_usage_is_estimated_with_the_tokenizer() -> None:
    clock = ManualClock()
    usage = UsageMeter()
    client = make_client(clock, lambda r: answer("red green blue", usage=None), usage=usage)
    completion = await client.complete(REQUEST)
    assert completion.usage.prompt_tokens == prompt_tokens(REQUEST.prompt)
    assert completion.usage.completion_tokens == 3
    assert usage.stage("gen").total_tokens == completion.usage.total_tokens


def test_usage_snapshot_round_trips_and_rejects_garbage() -> None:
    usage = UsageMeter()
    usage.record("gen", prompt_tokens=5, completion_tokens=2, requests=1, cost_usd=0.5)
    usage.record("classify", retries=2, rate_limited=1)
    snapshot = json.loads(json.dumps(usage.snapshot()))
    resumed = UsageMeter(max_tokens=10)
    resumed.restore(snapshot)
    assert resumed.snapshot() == usage.snapshot()
    with pytest.raises(BudgetExhausted):  # the budget covers the restored spend
        resumed.reserve(4, 0.0)
    with pytest.raises(CheckpointError, match="prompt_tokens"):
        UsageMeter().restore({"version": 1, "stages": {"gen": {"prompt_tokens": -1}}})
    with pytest.raises(CheckpointError, match="version"):
        UsageMeter().restore({"version": 99, "stages": {}})


# -- adaptation and endpoints -----------------------------------------------------------


@pytest.mark.anyio
async def test_a_429_lowers_the_rate_and_the_announced_limit_caps_it() -> None:
    clock = ManualClock()
    config = EndpointConfig(base_url="http://ep.test/v1", model="m", rpm=6000)
    client = make_client(
        clock,
        scripted(
            error(429, {"retry-after-ms": "10"}, code="rate_limit_exceeded"),
            answer("ok", headers={"x-ratelimit-limit-requests": "1000"}),
        ),
        configs=[config],
    )
    pacer = client.endpoints[0].pacer
    clock.advance(1.0)
    await on_virtual_time(clock, lambda: client.complete(REQUEST))
    assert pacer.rpm == pytest.approx(1000)  # cut to 4200, then capped by the header
    assert pacer.requests.ceiling == pytest.approx(1000)


@pytest.mark.anyio
async def test_a_failing_endpoint_is_cooled_down_and_traffic_moves_to_the_other() -> None:
    clock = ManualClock()
    usage = UsageMeter()

    def down(request: TransportRequest) -> TransportResponse:
        raise TransportConnectionError("connection refused")

    client = make_client(clock, down, lambda r: answer("ok"), usage=usage)

    async def twenty() -> list[Completion]:
        return [await client.complete(REQUEST) for _ in range(20)]

    results = await on_virtual_time(clock, twenty)
    assert all(c.text == "ok" for c in results)
    bad, _good = client.endpoints
    assert bad.stats.get("cooldowns", 0) >= 1
    assert len(transport(client, 0).requests) == 3  # then it sat out its cool-down
    assert len(transport(client, 1).requests) == 20
    assert usage.stage("gen").failures == 0


@pytest.mark.anyio
async def test_requests_are_spread_across_endpoints_by_their_rates() -> None:
    clock = ManualClock()
    configs = [
        EndpointConfig(base_url="http://a.test/v1", model="m", rpm=600, concurrency=100),
        EndpointConfig(base_url="http://b.test/v1", model="m", rpm=1200, concurrency=100),
    ]
    client = make_client(clock, lambda r: answer("a"), lambda r: answer("b"), configs=configs)

    async def many() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(90):
                tg.start_soon(client.complete, REQUEST)

    await on_virtual_time(clock, many)
    a, b = len(transport(client, 0).requests), len(transport(client, 1).requests)
    assert a + b == 90
    assert 25 <= a <= 35 and 55 <= b <= 65  # about 1:2, like the rates
    assert clock.now() == pytest.approx(3.0, abs=0.3)  # both endpoints busy in parallel


# -- building from configuration --------------------------------------------------------


@pytest.mark.anyio
async def test_build_reads_the_key_from_the_environment_and_sizes_the_pool() -> None:
    configs = [
        EndpointConfig(
            base_url="http://127.0.0.1:9/v1",
            model="m",
            api_key_env="MY_KEY",
            rpm=3000,
            expected_latency=0.5,
            concurrency=500,
        ),
        EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="ABSENT"),
    ]
    async with build_http_client(
        configs, UsageMeter(), max_tokens_budget=10, environ={"MY_KEY": SECRET}
    ) as client:
        first, second = client.endpoints
        assert first.api_key == SECRET and second.api_key is None
        assert "Authorization" not in second.headers()
        # 50 requests/s x 0.5 s, doubled, plus slack; far below the configured 500.
        assert pool_size(configs[0]) == 58
        assert isinstance(first.transport, AiohttpTransport)
        assert first.transport.limit == first.pacer.concurrency == 58
        assert second.pacer.concurrency == 32
        assert SECRET not in repr(client.endpoints)
        with pytest.raises(BudgetExhausted):
            await client.complete(REQUEST)  # refused before anything is sent
    assert client.endpoints[0].transport is first.transport


def test_build_rejects_an_endpoint_without_a_url() -> None:
    from selfinstruct_async.errors import ConfigError

    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.base_url"):
        build_http_client([EndpointConfig()], UsageMeter())

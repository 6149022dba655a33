"""The simulated provider over real loopback HTTP, alone and with the real client."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest

from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import PermanentHTTPError
from selfinstruct_async.http_client import build_http_client
from selfinstruct_async.llm import CompletionRequest
from selfinstruct_async.simulator.server import SimulatorHandle
from selfinstruct_async.tokens import count_tokens, prompt_tokens
from selfinstruct_async.usage import UsageMeter
from tests.fixtures.simulator import MakeSimulator

BODY: dict[str, Any] = {"model": "sim-model", "prompt": "one two three four five", "max_tokens": 3}


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any]:
    async with session.post(url, json=body if body is not None else BODY) as resp:
        raw = await resp.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, payload


@pytest.mark.anyio
async def test_completions_chat_and_models_endpoints_answer(simulator: SimulatorHandle) -> None:
    async with aiohttp.ClientSession() as session:
        status, _, payload = await post(session, f"{simulator.base_url}/completions")
        assert status == 200
        assert payload["choices"][0]["text"] == "one two three"
        assert payload["choices"][0]["finish_reason"] == "length"
        assert payload["usage"]["prompt_tokens"] == prompt_tokens(BODY["prompt"])
        assert payload["usage"]["completion_tokens"] == count_tokens("one two three")

        chat_body = {
            "model": "sim-model",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello there"},
            ],
            "max_tokens": 10,
        }
        status, _, payload = await post(
            session, f"{simulator.base_url}/chat/completions", chat_body
        )
        assert status == 200
        assert payload["choices"][0]["message"]["content"] == "hello there"
        assert payload["usage"]["prompt_tokens"] == prompt_tokens(
            "hello there", "be brief", chat=True
        )

        async with session.get(f"{simulator.base_url}/models") as resp:
            models = await resp.json()
        assert models["data"][0]["id"] == "sim-model"
    assert simulator.stats.ok == 2


@pytest.mark.anyio
async def test_rpm_limit_answers_429_with_retry_after_and_rate_limit_headers(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(rpm=120, window=1.0)  # 2 requests per 1 s window
    async with aiohttp.ClientSession() as session:
        results = [await post(session, f"{sim.base_url}/completions") for _ in range(3)]
    assert [status for status, _, _ in results] == [200, 200, 429]
    _, ok_headers, _ = results[0]
    assert ok_headers["x-ratelimit-limit-requests"] == "120"
    assert ok_headers["x-ratelimit-remaining-requests"] == "1"
    _status, headers, payload = results[2]
    assert headers["x-ratelimit-limit-requests"] == "120"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    wait_ms = int(headers["retry-after-ms"])
    assert 0 < wait_ms <= 500  # the window refills at 2 requests/s
    assert int(headers["retry-after"]) >= 1
    assert payload["error"]["code"] == "rate_limit_exceeded"
    assert payload["error"]["type"] == "requests"
    assert sim.stats.rate_limited == 1
    assert sim.stats.by_status[429] == 1


@pytest.mark.anyio
async def test_tpm_limit_refuses_by_tokens(make_simulator: MakeSimulator) -> None:
    sim = await make_simulator(tpm=600, window=1.0)  # 10 tokens per 1 s window
    big = {**BODY, "max_tokens": 9}
    async with aiohttp.ClientSession() as session:
        first = await post(session, f"{sim.base_url}/completions", big)
        second = await post(session, f"{sim.base_url}/completions", big)
    assert first[0] == 200
    assert second[0] == 429
    assert second[2]["error"]["type"] == "tokens"
    assert "x-ratelimit-remaining-tokens" in second[1]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("fault_5xx", lambda status, payload: status in (500, 502, 503)),
        ("fault_malformed", lambda status, payload: status == 200 and isinstance(payload, bytes)),
        ("fault_empty", lambda status, payload: status == 200 and payload["choices"] == []),
        (
            "fault_truncate",
            lambda status, payload: payload["choices"][0]["finish_reason"] == "length",
        ),
    ],
)
async def test_injected_faults_look_like_provider_failures(
    make_simulator: MakeSimulator, fault: str, check: Any
) -> None:
    sim = await make_simulator(**{fault: 1.0})
    async with aiohttp.ClientSession() as session:
        status, _, payload = await post(session, f"{sim.base_url}/completions")
    assert check(status, payload)


@pytest.mark.anyio
async def test_reset_fault_drops_the_connection(make_simulator: MakeSimulator) -> None:
    sim = await make_simulator(fault_reset=1.0)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await post(session, f"{sim.base_url}/completions")
    assert sim.stats.faults["reset"] == 1


@pytest.mark.anyio
async def test_hang_fault_ends_when_the_client_gives_up(make_simulator: MakeSimulator) -> None:
    sim = await make_simulator(fault_hang=1.0)
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await post(session, f"{sim.base_url}/completions")
    assert sim.stats.faults["hang"] == 1


@pytest.mark.anyio
async def test_same_seed_gives_the_same_fault_sequence(make_simulator: MakeSimulator) -> None:
    sequences = []
    for _ in range(2):
        sim = await make_simulator(fault_5xx=0.3, fault_empty=0.3, seed=42)
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(30):
                status, _, payload = await post(session, f"{sim.base_url}/completions")
                statuses.append((status, len(payload["choices"]) if status == 200 else -1))
        sequences.append(statuses)
    assert sequences[0] == sequences[1]
    assert len(set(sequences[0])) >= 3  # some 5xx, some empty, some answers


@pytest.mark.anyio
async def test_required_api_key_is_checked(make_simulator: MakeSimulator) -> None:
    sim = await make_simulator(api_key="sk-sim-key")
    config = EndpointConfig(base_url=sim.base_url, model="sim-model", api_key_env="SIM_KEY")
    async with build_http_client([config], UsageMeter(), environ={}) as anonymous:
        with pytest.raises(PermanentHTTPError) as caught:
            await anonymous.complete(CompletionRequest(stage="s", prompt="a b", max_tokens=1))
        assert caught.value.status == 401
    async with build_http_client([config], UsageMeter(), environ={"SIM_KEY": "sk-sim-key"}) as c:
        done = await c.complete(CompletionRequest(stage="s", prompt="a b", max_tokens=1))
        assert done.text == "a"


@pytest.mark.anyio
async def test_client_and_server_count_the_same_tokens(make_simulator: MakeSimulator) -> None:
    sim = await make_simulator()
    usage = UsageMeter()
    config = EndpointConfig(base_url=sim.base_url, model="sim-model", api="chat")
    request = CompletionRequest(stage="s", prompt="alpha beta gamma", system="sys", max_tokens=2)
    async with build_http_client([config], usage) as client:
        completion = await client.complete(request)
    assert completion.text == "alpha beta"
    assert usage.stage("s").prompt_tokens == prompt_tokens("alpha beta gamma", "sys", chat=True)
    assert usage.stage("s").prompt_tokens == sim.stats.prompt_tokens


@pytest.mark.anyio
async def test_client_paced_at_the_server_limit_causes_no_429s(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(rpm=3000, latency_median=0.02, latency_sigma=0.5)
    config = EndpointConfig(base_url=sim.base_url, model="sim-model", rpm=3000, concurrency=64)
    usage = UsageMeter()
    async with build_http_client([config], usage) as client, anyio.create_task_group() as tg:
        for i in range(60):
            request = CompletionRequest(stage="s", prompt=f"q {i}", max_tokens=2)
            tg.start_soon(client.complete, request)
    assert sim.stats.ok == 60
    assert sim.stats.rate_limited == 0
    assert usage.stage("s").rate_limited == 0


@pytest.mark.anyio
async def test_client_configured_above_the_limit_learns_it_from_headers(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(rpm=1500, latency_median=0.01)
    config = EndpointConfig(base_url=sim.base_url, model="sim-model", rpm=6000, concurrency=64)
    async with build_http_client([config], UsageMeter()) as client:
        async with anyio.create_task_group() as tg:
            for i in range(60):
                request = CompletionRequest(stage="s", prompt=f"q {i}", max_tokens=2)
                tg.start_soon(client.complete, request)
        assert client.endpoints[0].pacer.rpm == pytest.approx(1500)
    assert sim.stats.ok == 60
    assert sim.stats.rate_limited <= 3

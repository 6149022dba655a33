"""The simulated provider over real loopback HTTP, alone and with the real client."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import anyio
import pytest

from selfinstruct_async.client.http import build_http_client
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.tokens import count_tokens, prompt_tokens
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import PermanentHTTPError
from selfinstruct_async.simulator.__main__ import _parser, settings_from_args
from selfinstruct_async.simulator.process import set_outage, simulator_process, stats
from selfinstruct_async.simulator.server import (
    SimulatorHandle,
    SimulatorSettings,
    running_simulator,
)
from selfinstruct_async.simulator.settings import FAULTS
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
@pytest.mark.parametrize("fault", FAULTS)
async def test_each_fault_named_on_the_command_line_is_injected_and_counted(fault: str) -> None:
    argv = [f"--fault-{fault}", "1", "--hang-seconds", "0", "--huge-bytes", "2000"]
    settings = settings_from_args(_parser().parse_args([*argv, "--responder", "echo"]))
    async with running_simulator(settings) as sim, aiohttp.ClientSession() as session:
        with contextlib.suppress(aiohttp.ClientError):  # the reset fault drops the connection
            await post(session, f"{sim.base_url}/completions")
        assert sim.stats.faults == {fault: 1}


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


# -- a hostile provider's habits (issue 18) ---------------------------------------------


CHAT_BODY: dict[str, Any] = {
    "model": "sim-model",
    "messages": [{"role": "user", "content": "name three rivers"}],
    "max_tokens": 10,
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "expected"), [("echo", BODY["prompt"]), ("null", None), ("empty", "")]
)
async def test_useless_answer_modes_echo_the_prompt_or_send_null_or_empty_text(
    make_simulator: MakeSimulator, mode: str, expected: str | None
) -> None:
    sim = await make_simulator(answers=mode)
    async with aiohttp.ClientSession() as session:
        status, _, payload = await post(session, f"{sim.base_url}/completions")
        chat_status, _, chat = await post(session, f"{sim.base_url}/chat/completions", CHAT_BODY)
    assert status == chat_status == 200
    assert payload["choices"][0]["text"] == expected
    chat_expected = "name three rivers" if mode == "echo" else expected
    assert chat["choices"][0]["message"]["content"] == chat_expected
    assert sim.stats.faults[f"answer_{mode}"] == 2
    assert sim.stats.ok == 2


@pytest.mark.anyio
async def test_fault_429_refuses_without_any_limit_and_forces_a_day_long_retry_after(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(fault_429=1.0, retry_after=86400)
    async with aiohttp.ClientSession() as session:
        status, headers, payload = await post(session, f"{sim.base_url}/completions")
    assert status == 429
    assert headers["retry-after"] == "86400"
    assert "retry-after-ms" not in headers  # it would win in clients and hide the day
    assert payload["error"]["code"] == "rate_limit_exceeded"
    assert sim.stats.faults["429"] == 1
    assert sim.stats.rate_limited == 1


@pytest.mark.anyio
async def test_forced_retry_after_also_replaces_the_wait_of_real_rate_limits(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(rpm=60, window=1.0, retry_after=3600)  # one request per window
    async with aiohttp.ClientSession() as session:
        first = await post(session, f"{sim.base_url}/completions")
        second = await post(session, f"{sim.base_url}/completions")
    assert first[0] == 200
    assert second[0] == 429
    assert second[1]["retry-after"] == "3600"
    assert "retry-after-ms" not in second[1]


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True])
async def test_huge_body_is_streamed_at_the_given_size_with_or_without_content_length(
    make_simulator: MakeSimulator, chunked: bool
) -> None:
    size = 300_000
    sim = await make_simulator(fault_huge=1.0, huge_bytes=size, huge_chunked=chunked)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.base_url}/completions", json=BODY) as resp:
            status, length = resp.status, resp.content_length
            raw = await resp.read()
        async with session.post(f"{sim.base_url}/chat/completions", json=CHAT_BODY) as resp:
            chat_raw = await resp.read()
    assert status == 200
    assert length == (None if chunked else size)
    assert len(raw) == len(chat_raw) == size
    # Valid JSON: a client without a cap on the size would take it as an answer.
    assert len(json.loads(raw)["choices"][0]["text"]) > size * 0.99
    assert json.loads(chat_raw)["choices"][0]["message"]["content"].startswith("xxx")
    assert sim.stats.faults["huge"] == 2
    assert sim.stats.disconnects == 0


@pytest.mark.anyio
async def test_outage_started_and_ended_by_the_admin_endpoint_answers_503_meanwhile(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator()
    root = sim.base_url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{root}/_simulator/outage", json={"active": True}) as resp:
            assert (await resp.json()) == {"active": True, "remaining": None}
        during = [await post(session, f"{sim.base_url}/completions") for _ in range(3)]
        async with session.post(f"{root}/_simulator/outage", json={"active": False}) as resp:
            assert (await resp.json())["active"] is False
        after = await post(session, f"{sim.base_url}/completions")
        async with session.post(f"{root}/_simulator/outage", json={"active": "yes"}) as resp:
            assert resp.status == 400
    assert [status for status, _, _ in during] == [503, 503, 503]
    assert during[0][2]["error"]["type"] == "server_error"
    assert after[0] == 200
    assert sim.stats.faults["outage"] == 3
    assert sim.stats.ok == 1


@pytest.mark.anyio
async def test_timed_outage_begins_after_n_successful_answers(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(outage_after=2, outage_seconds=3600)
    async with aiohttp.ClientSession() as session:
        statuses = [(await post(session, f"{sim.base_url}/completions"))[0] for _ in range(4)]
        assert sim.in_outage
        sim.end_outage()  # rather than waiting an hour; the outage is not started again
        statuses.append((await post(session, f"{sim.base_url}/completions"))[0])
    assert statuses == [200, 200, 503, 503, 200]
    assert sim.stats.faults["outage"] == 2


@pytest.mark.anyio
async def test_timed_outage_is_over_once_its_seconds_have_passed_on_the_loop_clock(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(outage_after=1, outage_seconds=0.0)
    async with aiohttp.ClientSession() as session:
        statuses = [(await post(session, f"{sim.base_url}/completions"))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]  # an outage of 0 s is over as soon as it begins
    assert not sim.in_outage
    assert sim.stats.faults["outage"] == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"fault_429": 0.6, "fault_huge": 0.6},
        {"fault_5xx": 0.5, "fault_429": 0.6},
        {"fault_huge": -0.1},
        {"answers": "sarcastic"},
        {"huge_bytes": 0},
        {"retry_after": float("inf")},
        {"outage_seconds": -1.0},
    ],
)
def test_settings_refuse_impossible_hostility(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorSettings(**fields)


def test_simulator_process_takes_the_hostile_options_and_ends_an_outage_on_request() -> None:
    options = ("--answers", "null", "--outage-after", "1", "--outage-seconds", "3600")
    with simulator_process(*options) as base_url:
        first = _post_sync(f"{base_url}/completions")
        second = _post_sync(f"{base_url}/completions")
        assert set_outage(base_url, active=False) is False
        third = _post_sync(f"{base_url}/completions")
        seen = stats(base_url)
    assert first[0] == 200 and first[1]["choices"][0]["text"] is None
    assert second[0] == 503
    assert third[0] == 200
    assert seen["faults"] == {"answer_null": 2, "outage": 1}


def test_simulator_help_lists_the_hostile_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct_async.simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in (
        "--answers",
        "--fault-huge",
        "--huge-bytes",
        "--huge-chunked",
        "--fault-429",
        "--retry-after",
        "--outage-after",
        "--outage-seconds",
    ):
        assert option in result.stdout


def _post_sync(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(BODY).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)

"""Prompt plus max_tokens over the model's context: shrink max_tokens, or refuse the prompt.

Issue 15, item 4. The wordings of OpenAI, vLLM, llama.cpp, llama-cpp-python and TGI are
read as unit cases; the client's shrinking runs on virtual time over a mock transport; the
simulator's ``context_limit`` refuses over real loopback HTTP, alone and in whole runs.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.endpoint import Endpoint
from selfinstruct_async.client.http import HTTPClient, build_http_client
from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.retry import (
    CONTEXT_SHRINK,
    ContextOverflow,
    FailureKind,
    RetryPolicy,
    context_overflow,
    failure_from_response,
    next_max_tokens,
)
from selfinstruct_async.client.transport import MockTransport, TransportResponse
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig, load_config
from selfinstruct_async.errors import ConfigError, ContextLengthExceeded, PromptRejected
from selfinstruct_async.prompts import DEFAULT_TEMPLATES as T
from selfinstruct_async.run.failures import REQUEST_REFUSED, FailurePolicy
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.responder import respond
from selfinstruct_async.simulator.settings import CONTEXT_WORDINGS, SimulatorSettings
from selfinstruct_async.stages.generate_instances import STAGE as INSTANCES
from selfinstruct_async.stages.generate_instructions import STAGE as GENERATE
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time
from tests.fixtures.loopback import serving_completions
from tests.fixtures.simulator import MakeSimulator

OPENAI_CHAT = (
    "This model's maximum context length is 4097 tokens. However, you requested 5000 tokens "
    "(4000 in the messages, 1000 in the completion). Please reduce the length of the "
    "messages or completion."
)
VLLM = (
    "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
    "(1100 in the messages, 1000 in the completion). Please reduce the length of the "
    "messages or completion."
)
LLAMA_CPP = "the request exceeds the available context size, try increasing it"


def openai_error(message: str, code: str | None = "context_length_exceeded") -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def vllm_error(message: str) -> bytes:
    body = {"object": "error", "message": message, "type": "BadRequestError", "code": 400}
    return json.dumps(body).encode()


def llama_cpp_error(**numbers: int) -> bytes:
    error = {"code": 400, "message": LLAMA_CPP, "type": "exceed_context_size_error", **numbers}
    return json.dumps({"error": error}).encode()


# -- each wording, read ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "sent", "expected"),
    [
        pytest.param(openai_error(OPENAI_CHAT), 1000, 97, id="openai-chat"),
        pytest.param(
            openai_error(
                "This model's maximum context length is 4097 tokens. However, you requested "
                "5000 tokens (...)"
            ),
            1000,
            97,  # the prompt is what was requested less the max_tokens sent
            id="openai-numbers-elided",
        ),
        pytest.param(
            openai_error(
                "This model's maximum context length is 4097 tokens, however you requested "
                "4400 tokens (3900 in your prompt; 500 for the completion). Please reduce "
                "your prompt; or completion length.",
                code=None,
            ),
            500,
            197,
            id="openai-completions-by-wording-alone",
        ),
        pytest.param(vllm_error(VLLM), 1000, 948, id="vllm-top-level-error"),
        pytest.param(
            openai_error(
                "'max_tokens' or 'max_completion_tokens' is too large: 1000. This model's "
                "maximum context length is 2048 tokens and your request has 1100 input "
                "tokens (1000 > 2048 - 1100).",
                code=None,
            ),
            1000,
            948,
            id="vllm-input-tokens",
        ),
        pytest.param(
            openai_error("The maximum context length of this model is 2048 tokens.", None),
            1000,
            800,  # no prompt count: the blind step
            id="vllm-context-only",
        ),
        pytest.param(llama_cpp_error(n_prompt_tokens=3900, n_ctx=4096), 350, 196, id="llama.cpp"),
        pytest.param(llama_cpp_error(), 350, 280, id="llama.cpp-without-numbers"),
        pytest.param(
            openai_error(
                "This model's maximum context length is 2048 tokens, however you requested "
                "2100 tokens (1800 in your prompt; 300 for the completion). Please reduce "
                "your prompt; or completion length."
            ),
            300,
            248,
            id="llama-cpp-python-server",
        ),
        pytest.param(
            json.dumps(
                {
                    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                    "<= 2048. Given: 1500 `inputs` tokens and 1000 `max_new_tokens`"
                }
            ).encode(),
            1000,
            548,
            id="tgi",
        ),
        pytest.param(
            openai_error(
                "max_tokens is too large: 5000. This model supports at most 4096 completion "
                "tokens, whereas you provided 5000.",
                code="invalid_value",
            ),
            5000,
            4096,
            id="openai-completion-cap",
        ),
    ],
)
def test_each_wording_is_recognised_and_shrinks_to_what_fits(
    body: bytes, sent: int, expected: int
) -> None:
    failure = failure_from_response(400, {}, body)
    assert failure is not None and failure.kind is FailureKind.CONTEXT_LENGTH
    assert not failure.retryable  # the same request again cannot succeed
    assert failure.overflow is not None
    assert next_max_tokens(sent, failure.overflow, floor=16) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            openai_error(
                "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens. Please reduce the length of the messages."
            ),
            id="openai-messages-alone",
        ),
        pytest.param(
            vllm_error(
                "The decoder prompt (length 5000) is longer than the maximum model length "
                "of 4096. Make sure that `max_model_len` is no smaller than the number of "
                "text tokens."
            ),
            id="vllm-decoder-prompt",
        ),
        pytest.param(
            vllm_error("Input prompt (5000 tokens) is too long and exceeds limit of 4096"),
            id="vllm-input-prompt",
        ),
        pytest.param(llama_cpp_error(n_prompt_tokens=5000, n_ctx=4096), id="llama.cpp"),
        pytest.param(
            b"Requested tokens (5000) exceed context window of 4096", id="llama-cpp-python-raw"
        ),
    ],
)
def test_a_prompt_too_long_on_its_own_leaves_no_max_tokens_to_try(body: bytes) -> None:
    overflow = context_overflow(body)
    assert overflow is not None
    assert next_max_tokens(1000, overflow, floor=1) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, openai_error("Invalid value for 'temperature': must be <= 2.", "invalid_value")),
        (400, b'{"error": {"message": "bad"}}'),
        (401, openai_error("Incorrect API key provided.", "invalid_api_key")),
        (404, b"not found"),
        (429, openai_error("Rate limit reached ... maximum context length is 9 tokens", None)),
        (503, openai_error("This model's maximum context length is 2048 tokens.", None)),
    ],
)
def test_other_refusals_are_not_context_overflows(status: int, body: bytes) -> None:
    failure = failure_from_response(status, {}, body)
    assert failure is not None and failure.kind is not FailureKind.CONTEXT_LENGTH


def test_blind_shrinks_multiply_by_0_8_and_stop_at_the_floor() -> None:
    tried = [1000]
    while (smaller := next_max_tokens(tried[-1], ContextOverflow(), floor=100)) is not None:
        tried.append(smaller)
    assert tried == [1000, 800, 640, 512, 409, 327, 261, 208, 166, 132, 105]
    assert CONTEXT_SHRINK == 0.8


def test_a_stated_fit_no_smaller_than_what_was_sent_falls_back_to_the_blind_step() -> None:
    # A server that counts a few tokens more than its message says must still converge.
    overflow = ContextOverflow(context=2048, prompt=1048)
    assert next_max_tokens(1000, overflow, floor=16) == 800


# -- the client shrinks, counts, and gives up ------------------------------------------------

Script = Callable[[dict[str, Any]], TransportResponse]


def client_for(
    clock: ManualClock, script: Script, *, max_attempts: int = 2, min_max_tokens: int = 16
) -> HTTPClient:
    config = EndpointConfig(base_url="http://ctx.test/v1", model="m")
    endpoint = Endpoint(
        config,
        MockTransport(lambda request: script(request.json())),
        Pacer(concurrency=config.concurrency, clock=clock),
    )
    return HTTPClient(
        [endpoint],
        UsageMeter(),
        policy=RetryPolicy(max_attempts=max_attempts, base_delay=0.5, max_delay=8.0),
        clock=clock,
        rng=random.Random(0),
        min_max_tokens=min_max_tokens,
    )


def sent_max_tokens(client: HTTPClient) -> list[int]:
    mock = client.endpoints[0].transport
    assert isinstance(mock, MockTransport)
    return [r.json()["max_tokens"] for r in mock.requests]


def ok(text: str = "done") -> TransportResponse:
    choice = {"index": 0, "text": text, "finish_reason": "stop"}
    return TransportResponse.from_json(200, {"choices": [choice], "model": "m"})


def refuse_above(limit: int, body: Callable[[int], bytes]) -> Script:
    def script(payload: dict[str, Any]) -> TransportResponse:
        if payload["max_tokens"] > limit:
            return TransportResponse(400, {}, body(payload["max_tokens"]))
        return ok()

    return script


REQUEST = CompletionRequest(stage="gen", prompt="List three colours.", max_tokens=1000)


@pytest.mark.anyio
async def test_a_refusal_with_numbers_is_retried_once_at_the_fitting_max_tokens() -> None:
    clock = ManualClock()
    client = client_for(clock, refuse_above(97, lambda _: openai_error(OPENAI_CHAT)))
    counted: list[str] = []
    client.count_to(counted.append)

    completion = await on_virtual_time(clock, lambda: client.complete(REQUEST))

    assert completion.text == "done"
    assert sent_max_tokens(client) == [1000, 97]
    assert counted == [names.RETRIES_CONTEXT_LENGTH]
    assert names.known(names.RETRIES_CONTEXT_LENGTH)
    usage = client.usage.stage("gen")
    assert (usage.requests, usage.retries, usage.failures) == (1, 1, 0)
    assert client.endpoints[0].stats["context_length"] == 1
    assert clock.now() == 0  # a refusal is not a reason to wait


@pytest.mark.anyio
async def test_blind_shrinks_do_not_use_up_the_attempts_kept_for_transient_failures() -> None:
    clock = ManualClock()
    client = client_for(clock, refuse_above(500, lambda _: llama_cpp_error()), max_attempts=1)
    counted: list[str] = []
    client.count_to(counted.append)

    completion = await on_virtual_time(clock, lambda: client.complete(REQUEST))

    assert completion.text == "done"
    assert sent_max_tokens(client) == [1000, 800, 640, 512, 409]
    assert len(counted) == 4


@pytest.mark.anyio
async def test_shrinking_below_the_floor_ends_the_request_as_a_refused_prompt() -> None:
    clock = ManualClock()
    client = client_for(clock, refuse_above(50, lambda _: llama_cpp_error()), min_max_tokens=100)

    with pytest.raises(ContextLengthExceeded) as raised:
        await on_virtual_time(clock, lambda: client.complete(REQUEST))

    assert sent_max_tokens(client) == [1000, 800, 640, 512, 409, 327, 261, 208, 166, 132, 105]
    error = raised.value
    assert (error.status, error.max_tokens, error.floor) == (400, 105, 100)
    assert str(error).startswith("HTTP 400: ")
    assert client.usage.stage("gen").failures == 1
    # The run survives it, and the stage rejects the task for good rather than retrying.
    assert isinstance(error, PromptRejected)
    assert FailurePolicy.survivable(error)
    assert FailurePolicy().failed("gen", error).permanent


@pytest.mark.anyio
async def test_a_prompt_too_long_on_its_own_is_sent_once() -> None:
    clock = ManualClock()
    body = llama_cpp_error(n_prompt_tokens=5000, n_ctx=4096)
    client = client_for(clock, refuse_above(0, lambda _: body))
    counted: list[str] = []
    client.count_to(counted.append)

    with pytest.raises(ContextLengthExceeded):
        await on_virtual_time(clock, lambda: client.complete(REQUEST))

    assert sent_max_tokens(client) == [1000]
    assert counted == []


def test_a_floor_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="min_max_tokens"):
        client_for(ManualClock(), lambda payload: ok(), min_max_tokens=0)


# -- the simulator's context limit, over loopback --------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("wording", CONTEXT_WORDINGS)
async def test_the_simulator_refuses_an_overflow_in_each_wording_and_the_retry_fits(
    make_simulator: MakeSimulator, wording: str
) -> None:
    sim = await make_simulator(context_limit=60, context_wording=wording)
    request = CompletionRequest(stage="gen", prompt="one two three four five", max_tokens=100)
    config = EndpointConfig(base_url=sim.base_url, model="sim-model")
    async with build_http_client([config], UsageMeter()) as client:
        counted: list[str] = []
        client.count_to(counted.append)
        completion = await client.complete(request)

    assert completion.text
    # The refusal's numbers were used: a blind step (100 -> 80) would overflow again.
    assert sim.stats.requests == 2
    assert sim.stats.faults["context_length"] == 1
    assert sim.stats.by_status[400] == 1 and sim.stats.ok == 1
    assert counted == [names.RETRIES_CONTEXT_LENGTH]


@pytest.mark.anyio
@pytest.mark.parametrize("chat", [False, True])
async def test_the_simulator_refuses_a_prompt_too_long_alone_and_it_is_not_retried(
    make_simulator: MakeSimulator, chat: bool
) -> None:
    sim = await make_simulator(context_limit=10)
    request = CompletionRequest(stage="gen", prompt="word " * 40, max_tokens=100)
    config = EndpointConfig(
        base_url=sim.base_url, model="sim-model", api="chat" if chat else "completions"
    )
    async with build_http_client([config], UsageMeter()) as client:
        with pytest.raises(ContextLengthExceeded, match="maximum context length is 10 tokens"):
            await client.complete(request)

    assert sim.stats.requests == 1


def test_the_simulator_refuses_a_context_limit_below_one_and_unknown_wordings() -> None:
    with pytest.raises(ValueError, match="context_limit"):
        SimulatorSettings(context_limit=0)
    with pytest.raises(ValueError, match="context_wording"):
        SimulatorSettings(context_wording="tgi")  # type: ignore[arg-type]


# -- whole runs ------------------------------------------------------------------------------

# Generation prompts are about 150-180 tokens (max_tokens 1024), instance prompts about
# 300-470 (max_tokens 350), classification prompts about 760-775 (max_tokens 3): at 800,
# every generation request and the longer instance requests overflow, and all fit shrunk.
CONTEXT_LIMIT = 800


@pytest.mark.anyio
async def test_a_run_against_a_small_context_shrinks_its_requests_and_reaches_the_target(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    sim = await make_simulator(responder=None, context_limit=CONTEXT_LIMIT, seed=15)
    out = tmp_path / "run"
    config = load_config(
        overrides={
            "run": {"out": str(out), "target": 15},
            "endpoint": {"base_url": sim.base_url, "model": "sim", "max_attempts": 1},
            # The default classification prompt (~1,190 tokens, long enough for a prompt
            # cache) cannot fit 800 tokens whatever its max_tokens; 12 demonstrations fit
            # with any instruction the length filter lets through (a run-on list of 138
            # words made 24 demonstrations' prompt 919 tokens).
            "classification": {"demonstrations": 12},
        }
    )
    usage = UsageMeter()
    async with build_http_client(config.endpoints, usage) as client:
        summary = await run(config, client=client)

    assert summary.reached_target
    refusals = sim.stats.faults["context_length"]
    assert usage.stage(GENERATE).retries > 0 and usage.stage(INSTANCES).retries > 0
    # Each refusal was followed by one retry that fit (bar refusals still on their way
    # back when the target was met and the run stopped); none ended a request.
    in_flight = config.endpoints[0].concurrency
    assert 0 <= refusals - usage.totals().retries <= in_flight
    assert usage.totals().failures == 0
    with Store(out, read_only=True) as store:
        counters = store.counters()
    assert not [name for name in counters if name.startswith("failed.")]


def task_rejections(out: Path, filter_name: str) -> list[str]:
    """The reasons of the task-level rejections by ``filter_name`` in the checkpoint."""
    with sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT reason FROM rejections WHERE level = 'task' AND filter = ?", (filter_name,)
        )
        return [reason for (reason,) in rows]


def is_instance_prompt(prompt: str) -> bool:
    return T.instance_input_first_header in prompt or T.instance_output_first_header in prompt


@asynccontextmanager
async def provider_refusing(refused: list[str], how_many: int) -> AsyncIterator[str]:
    """The simulator's answers, but the first ``how_many`` instance prompts are too long
    on their own (vLLM's wording); every prompt refused is appended to ``refused``."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body["prompt"]
        if is_instance_prompt(prompt) and (prompt in refused or len(set(refused)) < how_many):
            refused.append(prompt)
            message = (
                "The decoder prompt (length 5000) is longer than the maximum model length of 4096."
            )
            return web.json_response({"object": "error", "message": message}, status=400)
        text, finish = respond(prompt, "", chat=False, max_tokens=body["max_tokens"])
        choice = {"index": 0, "text": text, "finish_reason": finish}
        return web.json_response({"choices": [choice], "model": "scripted"})

    async with serving_completions(handle) as url:
        yield url


@pytest.mark.anyio
async def test_an_instance_prompt_too_long_alone_rejects_its_task_once_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    refused: list[str] = []
    out = tmp_path / "run"
    async with provider_refusing(refused, how_many=2) as base_url:
        config = load_config(
            overrides={
                "run": {"out": str(out), "target": 10},
                "endpoint": {"base_url": base_url, "model": "sim"},
            }
        )
        summary = await run(config)

    assert summary.reached_target
    # Sent once each: no shrinking, no retries, no second try later.
    assert len(refused) == len(set(refused)) == 2
    with Store(out, read_only=True) as store:
        counters = store.counters()
    assert counters[names.rejected("task", REQUEST_REFUSED)] == 2
    assert counters[names.failed(INSTANCES)] == 2
    reasons = task_rejections(out, REQUEST_REFUSED)
    assert len(reasons) == 2
    for reason in reasons:
        assert "prompt does not fit the context" in reason
        assert "maximum model length of 4096" in reason

"""A simulated OpenAI-compatible provider: an aiohttp app for tests and benchmarks.

It behaves the way remote providers do where that matters to a client: answers take a
(lognormal) while; requests and tokens per minute are enforced in sub-minute windows (a
continuously refilled bucket holding ``window`` seconds of the limit, full at start, or
fixed wall-clock slices of ``limit_slice`` seconds, as hosted providers quantize) and
refused with 429, ``Retry-After``/``retry-after-ms``, ``x-ratelimit-*`` headers and an
OpenAI-style error body; and faults can be injected with given probabilities: 5xx,
connection resets, hangs, malformed JSON, empty ``choices``, truncated answers
(``finish_reason: "length"``), 429s regardless of the limits (``fault_429``) and huge
bodies (``fault_huge``: ``huge_bytes`` of JSON-looking text, streamed with or without a
``Content-Length``, optionally slowly). One seed makes a run repeatable. With
``context_limit``, a request whose prompt tokens plus ``max_tokens`` exceed it gets a 400
saying so, in OpenAI's words or (``context_wording``) vLLM's or llama.cpp's.

The hostile provider's other habits are switches rather than probabilities:

- ``retry_after`` forces the ``Retry-After`` of every 429 (``86400``: come back tomorrow);
- ``answers`` makes every answer useless: the prompt echoed back (``"echo"``), a ``null``
  text or content (``"null"``) or ``""`` (``"empty"``);
- an outage answers every request with 503: after ``outage_after`` successful answers for
  ``outage_seconds`` (loop clock), or started and ended at will with
  ``POST /_simulator/outage`` (``{"active": true, "seconds": null}``) or
  :meth:`SimulatorHandle.start_outage` / :meth:`SimulatorHandle.end_outage`, which is
  how tests control one without depending on time.

``GET /_simulator/stats`` returns what the server saw; every injected fault is counted in
``faults`` by name, and clients that went away in the middle of a streamed body in
``disconnects``.

Answers report the cached part of their prompt as OpenAI does
(``usage.prompt_tokens_details.cached_tokens``, :mod:`.prompt_cache`) unless
``prompt_cache`` is off.

Answer texts come from a ``responder``; the default is
:func:`selfinstruct_async.simulator.responder.respond`, which knows our prompts.

This module parses requests, answers them and serves the application; the settings live
in :mod:`.settings`, the rate limits in :mod:`.limits`, the faults and 429s in
:mod:`.faults`, and what a running simulator keeps in :mod:`.state`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..client.tokens import count_tokens, prompt_tokens
from .faults import (
    fail_after_latency,
    fail_before_work,
    over_context,
    pick_fault,
    too_many,
    useless_text,
)
from .limits import ProviderLimits
from .prompt_cache import PromptCache, prompt_token_ids
from .settings import (
    ANSWER_MODES,
    FAULTS,
    Answers,
    Responder,
    SimulatorSettings,
    echo_respond,
)
from .state import STATE, Call, SimulatorStats, State, error_body, json_reply

# Tests, benchmarks and plugin authors start a simulator from here: the settings are
# re-exported so that one import serves.
__all__ = [
    "ANSWER_MODES",
    "FAULTS",
    "Answers",
    "Responder",
    "SimulatorHandle",
    "SimulatorSettings",
    "SimulatorStats",
    "echo_respond",
    "make_app",
    "running_simulator",
]


def _default_responder() -> Responder:
    from .responder import respond  # lazily: it pulls in the prompt templates

    return respond


def _parse_request(payload: Any, *, chat: bool) -> tuple[str, str, int, int] | str:
    """(prompt, system, max_tokens, n) or an error message."""
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    system = ""
    if chat:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        users: list[str] = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                return "each message needs a string 'content'"
            if m.get("role") == "system":
                system += m["content"]
            else:
                users.append(m["content"])
        prompt = "\n".join(users)
    else:
        raw_prompt = payload.get("prompt")
        if not isinstance(raw_prompt, str):
            return "'prompt' must be a string"
        prompt = raw_prompt
    max_tokens = payload.get("max_tokens", 16)
    n = payload.get("n", 1)
    if not isinstance(max_tokens, int) or max_tokens < 0:
        return "'max_tokens' must be a non-negative integer"
    if not isinstance(n, int) or not 1 <= n <= 128:
        return "'n' must be an integer between 1 and 128"
    return prompt, system, max_tokens, n


async def _read_call(request: web.Request, state: State, *, chat: bool) -> Call | web.Response:
    """The request, or the 401/400 that refuses it."""
    settings = state.settings
    expected = f"Bearer {settings.api_key}"
    if settings.api_key is not None and request.headers.get("Authorization") != expected:
        body = error_body(401, "Incorrect API key provided.", "invalid_request_error")
        return json_reply(state, 401, body)
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return json_reply(state, 400, error_body(400, "body is not JSON", "invalid_request_error"))
    parsed = _parse_request(payload, chat=chat)
    if isinstance(parsed, str):
        return json_reply(state, 400, error_body(400, parsed, "invalid_request_error"))
    prompt, system, max_tokens, n = parsed
    tokens = prompt_tokens(prompt, system, chat=chat)
    return Call(chat, prompt, system, max_tokens, n, tokens)


async def _complete(request: web.Request, *, chat: bool) -> web.StreamResponse:
    state = request.app[STATE]
    stats = state.stats
    stats.requests += 1
    stats.inflight += 1
    stats.max_inflight = max(stats.max_inflight, stats.inflight)
    try:
        call = await _read_call(request, state, chat=chat)
        if isinstance(call, web.Response):
            return call
        if state.in_outage():
            # A provider that is down does not count requests against your limits.
            stats.faults["outage"] += 1
            message = "The service is temporarily unavailable (simulated outage)."
            return json_reply(state, 503, error_body(503, message, "server_error"))
        # Refused as invalid before the limits see it: an overflow is not charged.
        refused_context = over_context(state, call)
        if refused_context is not None:
            return refused_context
        now = state.now()
        cost = call.prompt_tokens + call.max_tokens * call.n
        refused = state.limits.admit(cost, now)
        headers = state.limits.headers(now) if state.settings.rate_limit_headers else {}
        if refused is not None:
            kind, wait = refused
            return too_many(state, kind, wait, headers)
        return await _admitted(request, state, call, headers)
    finally:
        stats.inflight -= 1


async def _admitted(
    request: web.Request, state: State, call: Call, headers: dict[str, str]
) -> web.StreamResponse:
    """Answer an admitted request: a fault, or choices from the responder."""
    settings = state.settings
    state.counter += 1
    fault = pick_fault(settings, state.rng.random())
    latency = settings.latency_median
    if settings.latency_sigma > 0 and latency > 0:
        latency *= math.exp(state.rng.gauss(0.0, settings.latency_sigma))
    if fault is not None:
        state.stats.faults[fault] += 1
    failed: web.StreamResponse | None = await fail_before_work(fault, state, call, headers)
    if failed is not None:
        return failed
    if latency > 0:
        await asyncio.sleep(latency)
    failed = await fail_after_latency(fault, request, state, call, headers)
    if failed is not None:
        return failed
    return _answer(state, call, fault, headers)


def _answer(state: State, call: Call, fault: str | None, headers: dict[str, str]) -> web.Response:
    """A 200 with ``n`` choices (none for the ``empty`` fault)."""
    settings, stats = state.settings, state.stats
    seed = settings.seed * 1_000_003 + state.counter
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    if fault != "empty" and settings.answers != "normal":
        stats.faults[f"answer_{settings.answers}"] += 1
    for i in range(call.n if fault != "empty" else 0):
        text: str | None
        text, finish = state.responder(
            call.prompt, call.system, chat=call.chat, max_tokens=call.max_tokens, seed=seed + i
        )
        if settings.answers != "normal":
            text, finish = useless_text(settings.answers, call.prompt), "stop"
        if fault == "truncate" and text:
            text, finish = text[: max(1, len(text) // 2)], "length"
        completion_tokens += count_tokens(text or "")
        if call.chat:
            reply = {"role": "assistant", "content": text}
            choices.append({"index": i, "message": reply, "finish_reason": finish})
        else:
            choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": finish})
    # Charge what was generated, not what was allowed, like the client reconciles.
    unused = max(0, call.max_tokens * call.n - completion_tokens)
    state.limits.refund(unused, state.now())
    stats.ok += 1
    stats.prompt_tokens += call.prompt_tokens
    stats.completion_tokens += completion_tokens
    if (
        settings.outage_after is not None
        and not state.outage_triggered
        and stats.ok >= settings.outage_after
    ):
        state.outage_triggered = True
        state.start_outage(settings.outage_seconds)
    total = call.prompt_tokens + completion_tokens
    cached = 0
    # Shorter prompts are never cached: spare them a second tokenization.
    if state.prompt_cache is not None and call.prompt_tokens >= state.prompt_cache.min_prefix:
        tokens = prompt_token_ids(call.prompt, call.system, chat=call.chat)
        cached = min(call.prompt_tokens, state.prompt_cache.lookup_and_store(tokens, state.now()))
        stats.cached_prompt_tokens += cached
    payload = {
        "id": f"cmpl-sim-{state.counter}",
        "object": "chat.completion" if call.chat else "text_completion",
        "created": 0,
        "model": settings.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }
    return json_reply(state, 200, payload, headers)


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=False)


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=True)


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {"object": "list", "data": [{"id": state.settings.model, "object": "model"}]}
    )


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats.as_dict())


async def _outage(request: web.Request) -> web.Response:
    """``GET``: whether an outage is on. ``POST {"active": bool, "seconds": S | null}``."""
    state = request.app[STATE]
    if request.method == "POST":
        try:
            payload = json.loads(await request.read() or b"{}")
        except ValueError:
            payload = None
        active = payload.get("active", True) if isinstance(payload, dict) else None
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        valid_seconds = seconds is None or (
            isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0
        )
        if not isinstance(active, bool) or not valid_seconds:
            message = 'expected {"active": true|false, "seconds": number|null}'
            return web.json_response({"error": message}, status=400)
        if active:
            state.start_outage(None if seconds is None else float(seconds))
        else:
            state.outage_until = None
    return web.json_response(state.outage_view())


def make_app(settings: SimulatorSettings) -> web.Application:
    """The simulated provider as an aiohttp application."""
    app = web.Application()

    async def on_startup(app: web.Application) -> None:
        # Load the tokenizer now (about 150 ms): the first request is admitted after its
        # prompt is counted, and a late admission may land it in the wrong limit slice.
        count_tokens("")
        state = State(
            settings=settings,
            responder=settings.responder or _default_responder(),
            rng=random.Random(settings.seed),
            limits=ProviderLimits(settings, asyncio.get_running_loop().time()),
            stats=SimulatorStats(),
            closing=asyncio.Event(),
            streaming=asyncio.Event(),
            disconnected=asyncio.Event(),
            prompt_cache=PromptCache(
                ttl=settings.prompt_cache_ttl, max_entries=settings.prompt_cache_entries
            )
            if settings.prompt_cache
            else None,
        )
        if settings.outage_after == 0:
            state.outage_triggered = True
            state.start_outage(settings.outage_seconds)
        app[STATE] = state

    async def on_shutdown(app: web.Application) -> None:
        app[STATE].closing.set()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/_simulator/stats", _stats)
    app.router.add_get("/_simulator/outage", _outage)
    app.router.add_post("/_simulator/outage", _outage)
    from .batch_api import add_batch_routes  # here: batch_api answers with this module

    add_batch_routes(app)
    return app


@dataclass(frozen=True)
class SimulatorHandle:
    """A running simulator: where to reach it and what it has seen."""

    base_url: str
    app: web.Application
    settings: SimulatorSettings

    @property
    def stats(self) -> SimulatorStats:
        return self.app[STATE].stats

    def start_outage(self, seconds: float | None = None) -> None:
        """Answer every request with 503 from now on, for ``seconds`` or until ended."""
        self.app[STATE].start_outage(seconds)

    def end_outage(self) -> None:
        """Serve again."""
        self.app[STATE].outage_until = None

    @property
    def in_outage(self) -> bool:
        return self.app[STATE].in_outage()

    async def streaming_huge(self) -> None:
        """Wait until the simulator has begun sending a huge body."""
        await self.app[STATE].streaming.wait()

    async def disconnected(self) -> None:
        """Wait until a client has gone away in the middle of a huge body."""
        await self.app[STATE].disconnected.wait()


@asynccontextmanager
async def running_simulator(
    settings: SimulatorSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SimulatorHandle]:
    """Serve the simulated provider on ``host`` (a free port by default) while in use."""
    settings = settings if settings is not None else SimulatorSettings()
    app = make_app(settings)
    # Handler cancellation lets a hung request end when the client gives up on it.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield SimulatorHandle(f"http://{bound_host}:{bound_port}/v1", app, settings)
    finally:
        await runner.cleanup()

"""A simulated OpenAI-compatible provider: an aiohttp app for tests and benchmarks.

It behaves the way remote providers do where that matters to a client: answers take a
(lognormal) while; requests and tokens per minute are enforced in sub-minute windows (a
continuously refilled bucket holding ``window`` seconds of the limit, full at start) and
refused with 429, ``Retry-After``/``retry-after-ms``, ``x-ratelimit-*`` headers and an
OpenAI-style error body; and faults can be injected with given probabilities: 5xx,
connection resets, hangs, malformed JSON, empty ``choices`` and truncated answers
(``finish_reason: "length"``). One seed makes a run repeatable.

Answer texts come from a ``responder``; the default is
:func:`selfinstruct_async.simulator.responder.respond`, which knows our prompts.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from ..pacing import TokenBucket
from ..tokens import count_tokens, prompt_tokens


class Responder(Protocol):
    """Produces the text of one choice and its finish reason."""

    def __call__(
        self, prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
    ) -> tuple[str, str]: ...


def echo_respond(
    prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
) -> tuple[str, str]:
    """A trivial responder: the prompt's first ``max_tokens`` words."""
    words = prompt.split()
    if len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return " ".join(words), "stop"


def _default_responder() -> Responder:
    from .responder import respond  # lazily: it pulls in the prompt templates

    return respond


@dataclass(frozen=True)
class SimulatorSettings:
    """How the simulated provider behaves. Probabilities are per request."""

    latency_median: float = 0.0  # seconds
    latency_sigma: float = 0.0  # lognormal shape; 0 means every answer takes the median
    rpm: float | None = None
    tpm: float | None = None
    window: float = 1.0  # seconds of the per-minute limit a burst may use
    rate_limit_headers: bool = True
    fault_5xx: float = 0.0
    fault_reset: float = 0.0
    fault_hang: float = 0.0
    fault_malformed: float = 0.0
    fault_empty: float = 0.0
    fault_truncate: float = 0.0
    hang_seconds: float = 3600.0
    seed: int = 0
    model: str = "sim-model"
    api_key: str | None = None  # when set, requests must carry it as a Bearer token
    responder: Responder | None = None  # None: simulator.responder.respond

    def __post_init__(self) -> None:
        faults = (
            self.fault_5xx,
            self.fault_reset,
            self.fault_hang,
            self.fault_malformed,
            self.fault_empty,
            self.fault_truncate,
        )
        if any(p < 0 for p in faults) or sum(faults) > 1:
            raise ValueError("fault probabilities must be >= 0 and sum to at most 1")
        if self.window <= 0 or self.window > 60:
            raise ValueError(f"window must be in (0, 60] seconds, got {self.window}")


@dataclass
class SimulatorStats:
    """What the server saw; ``rate_limited`` counts the 429s it sent."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    inflight: int = 0
    max_inflight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "max_inflight": self.max_inflight,
        }


class _Limits:
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


@dataclass
class _State:
    settings: SimulatorSettings
    responder: Responder
    rng: random.Random
    limits: _Limits
    stats: SimulatorStats
    closing: asyncio.Event
    counter: int = 0


_STATE = web.AppKey("simulator_state", _State)


def _error(status: int, message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _json(
    state: _State, status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    state.stats.by_status[status] += 1
    return web.json_response(payload, status=status, headers=headers)


def _pick_fault(settings: SimulatorSettings, draw: float) -> str | None:
    edge = 0.0
    for name, p in (
        ("5xx", settings.fault_5xx),
        ("reset", settings.fault_reset),
        ("hang", settings.fault_hang),
        ("malformed", settings.fault_malformed),
        ("empty", settings.fault_empty),
        ("truncate", settings.fault_truncate),
    ):
        edge += p
        if draw < edge:
            return name
    return None


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


async def _complete(request: web.Request, *, chat: bool) -> web.StreamResponse:
    state = request.app[_STATE]
    settings, stats = state.settings, state.stats
    loop = asyncio.get_running_loop()
    stats.requests += 1
    stats.inflight += 1
    stats.max_inflight = max(stats.max_inflight, stats.inflight)
    try:
        expected = f"Bearer {settings.api_key}"
        if settings.api_key is not None and request.headers.get("Authorization") != expected:
            body = _error(401, "Incorrect API key provided.", "invalid_request_error")
            return _json(state, 401, body)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _json(state, 400, _error(400, "body is not JSON", "invalid_request_error"))
        parsed = _parse_request(payload, chat=chat)
        if isinstance(parsed, str):
            return _json(state, 400, _error(400, parsed, "invalid_request_error"))
        prompt, system, max_tokens, n = parsed
        n_prompt = prompt_tokens(prompt, system, chat=chat)
        cost = n_prompt + max_tokens * n

        now = loop.time()
        refused = state.limits.admit(cost, now)
        headers = state.limits.headers(now) if settings.rate_limit_headers else {}
        if refused is not None:
            kind, wait = refused
            stats.rate_limited += 1
            limit = settings.rpm if kind == "requests" else settings.tpm
            unit = "RPM" if kind == "requests" else "TPM"
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            message = (
                f"Rate limit reached for {settings.model} on {kind} per min ({unit}): "
                f"Limit {int(limit or 0)}. Please try again in {wait * 1000:.0f}ms."
            )
            return _json(state, 429, _error(429, message, kind, "rate_limit_exceeded"), headers)

        state.counter += 1
        seed = settings.seed * 1_000_003 + state.counter
        fault = _pick_fault(settings, state.rng.random())
        latency = settings.latency_median
        if settings.latency_sigma > 0 and latency > 0:
            latency *= math.exp(state.rng.gauss(0.0, settings.latency_sigma))
        if fault is not None:
            stats.faults[fault] += 1
        if fault == "hang":
            # Ends when the client gives up (handler cancellation) or the server stops.
            with suppress(TimeoutError):
                await asyncio.wait_for(state.closing.wait(), settings.hang_seconds)
            state.limits.refund(max_tokens * n, loop.time())
            return _json(state, 504, _error(504, "upstream timed out", "server_error"))
        if latency > 0:
            await asyncio.sleep(latency)
        if fault == "5xx":
            state.limits.refund(max_tokens * n, loop.time())
            status = state.rng.choice((500, 502, 503))
            body = _error(
                status, "The server had an error processing your request.", "server_error"
            )
            return _json(state, status, body, headers)
        if fault == "reset":
            state.limits.refund(max_tokens * n, loop.time())
            stats.by_status[0] += 1
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: the connection is already gone.
            return web.Response(status=500)
        if fault == "malformed":
            stats.by_status[200] += 1
            return web.Response(
                status=200,
                body=b'{"id": "cmpl-sim", "choices": [{"text": "trunc',
                content_type="application/json",
                headers=headers,
            )

        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        if fault != "empty":
            for i in range(n):
                text, finish = state.responder(
                    prompt, system, chat=chat, max_tokens=max_tokens, seed=seed + i
                )
                if fault == "truncate":
                    text, finish = text[: max(1, len(text) // 2)], "length"
                completion_tokens += count_tokens(text)
                if chat:
                    reply = {"role": "assistant", "content": text}
                    choices.append({"index": i, "message": reply, "finish_reason": finish})
                else:
                    choices.append(
                        {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
                    )
        # Charge what was generated, not what was allowed, like the client reconciles.
        state.limits.refund(max(0, max_tokens * n - completion_tokens), loop.time())
        stats.ok += 1
        stats.prompt_tokens += n_prompt
        stats.completion_tokens += completion_tokens
        return _json(
            state,
            200,
            {
                "id": f"cmpl-sim-{state.counter}",
                "object": "chat.completion" if chat else "text_completion",
                "created": 0,
                "model": settings.model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": completion_tokens,
                    "total_tokens": n_prompt + completion_tokens,
                },
            },
            headers,
        )
    finally:
        stats.inflight -= 1


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=False)


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, chat=True)


async def _models(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    return web.json_response(
        {"object": "list", "data": [{"id": state.settings.model, "object": "model"}]}
    )


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_STATE].stats.as_dict())


def make_app(settings: SimulatorSettings) -> web.Application:
    """The simulated provider as an aiohttp application."""
    app = web.Application()

    async def on_startup(app: web.Application) -> None:
        state = _State(
            settings=settings,
            responder=settings.responder or _default_responder(),
            rng=random.Random(settings.seed),
            limits=_Limits(settings, asyncio.get_running_loop().time()),
            stats=SimulatorStats(),
            closing=asyncio.Event(),
        )
        app[_STATE] = state

    async def on_shutdown(app: web.Application) -> None:
        app[_STATE].closing.set()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/_simulator/stats", _stats)
    return app


@dataclass(frozen=True)
class SimulatorHandle:
    """A running simulator: where to reach it and what it has seen."""

    base_url: str
    app: web.Application
    settings: SimulatorSettings

    @property
    def stats(self) -> SimulatorStats:
        return self.app[_STATE].stats


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

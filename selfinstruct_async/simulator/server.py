"""A simulated OpenAI-compatible provider: an aiohttp app for tests and benchmarks.

It behaves the way remote providers do where that matters to a client: answers take a
(lognormal) while; requests and tokens per minute are enforced in sub-minute windows (a
continuously refilled bucket holding ``window`` seconds of the limit, full at start) and
refused with 429, ``Retry-After``/``retry-after-ms``, ``x-ratelimit-*`` headers and an
OpenAI-style error body; and faults can be injected with given probabilities: 5xx,
connection resets, hangs, malformed JSON, empty ``choices``, truncated answers
(``finish_reason: "length"``), 429s regardless of the limits (``fault_429``) and huge
bodies (``fault_huge``: ``huge_bytes`` of JSON-looking text, streamed with or without a
``Content-Length``, optionally slowly). One seed makes a run repeatable.

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

Answer texts come from a ``responder``; the default is
:func:`selfinstruct_async.simulator.responder.respond`, which knows our prompts.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web

from ..client.pacing import TokenBucket
from ..client.tokens import count_tokens, prompt_tokens

Answers = Literal["normal", "echo", "null", "empty"]
ANSWER_MODES: tuple[str, ...] = ("normal", "echo", "null", "empty")
# Bytes per write of a huge body: the simulator never holds more than this of it.
HUGE_CHUNK = 64 * 1024


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
    fault_429: float = 0.0  # a 429 whatever the limits say
    fault_huge: float = 0.0  # a 200 whose body is ``huge_bytes`` long
    hang_seconds: float = 3600.0
    retry_after: float | None = None  # forces the Retry-After of every 429 (seconds)
    huge_bytes: int = 100 << 20
    huge_chunked: bool = False  # no Content-Length: the size shows only while reading
    huge_chunk_delay: float = 0.0  # seconds between 64 KiB writes of a huge body
    answers: Answers = "normal"  # "echo", "null" or "empty": every answer is useless
    outage_after: int | None = None  # successful answers before a timed outage
    outage_seconds: float = 5.0
    seed: int = 0
    model: str = "sim-model"
    api_key: str | None = None  # when set, requests must carry it as a Bearer token
    responder: Responder | None = None  # None: simulator.responder.respond

    def __post_init__(self) -> None:
        faults = [p for _, p in _faults(self)]
        if any(not 0 <= p <= 1 for p in faults) or sum(faults) > 1:
            raise ValueError("fault probabilities must be >= 0 and sum to at most 1")
        if self.window <= 0 or self.window > 60:
            raise ValueError(f"window must be in (0, 60] seconds, got {self.window}")
        if self.answers not in ANSWER_MODES:
            raise ValueError(f"answers must be one of {', '.join(ANSWER_MODES)}")
        if self.huge_bytes < 1:
            raise ValueError(f"huge_bytes must be at least 1, got {self.huge_bytes}")
        for name in ("retry_after", "huge_chunk_delay", "outage_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.outage_after is not None and self.outage_after < 0:
            raise ValueError(f"outage_after must be >= 0, got {self.outage_after}")


def _faults(settings: SimulatorSettings) -> list[tuple[str, float]]:
    # New faults go last: the draws of existing seeds must pick what they picked before.
    return [
        ("5xx", settings.fault_5xx),
        ("reset", settings.fault_reset),
        ("hang", settings.fault_hang),
        ("malformed", settings.fault_malformed),
        ("empty", settings.fault_empty),
        ("truncate", settings.fault_truncate),
        ("429", settings.fault_429),
        ("huge", settings.fault_huge),
    ]


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
    disconnects: int = 0  # clients gone while a huge body was being sent

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
            "disconnects": self.disconnects,
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
    streaming: asyncio.Event  # a huge body has begun
    disconnected: asyncio.Event  # a client went away in the middle of one
    counter: int = 0
    outage_until: float | None = None  # loop time; inf until ended by hand
    outage_triggered: bool = False  # the timed outage (``outage_after``) has begun

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def start_outage(self, seconds: float | None) -> None:
        self.outage_until = math.inf if seconds is None else self.now() + seconds

    def in_outage(self) -> bool:
        if self.outage_until is None:
            return False
        if self.now() >= self.outage_until:
            self.outage_until = None
            return False
        return True

    def outage_view(self) -> dict[str, Any]:
        active = self.in_outage()
        remaining = None
        if active and self.outage_until is not None and math.isfinite(self.outage_until):
            remaining = self.outage_until - self.now()
        return {"active": active, "remaining": remaining}


_STATE = web.AppKey("simulator_state", _State)


@dataclass(frozen=True)
class _Call:
    """One parsed completion request."""

    chat: bool
    prompt: str
    system: str
    max_tokens: int
    n: int
    prompt_tokens: int


def _error(status: int, message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _json(
    state: _State, status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    state.stats.by_status[status] += 1
    return web.json_response(payload, status=status, headers=headers)


def _pick_fault(settings: SimulatorSettings, draw: float) -> str | None:
    edge = 0.0
    for name, p in _faults(settings):
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


async def _read_call(request: web.Request, state: _State, *, chat: bool) -> _Call | web.Response:
    """The request, or the 401/400 that refuses it."""
    settings = state.settings
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
    tokens = prompt_tokens(prompt, system, chat=chat)
    return _Call(chat, prompt, system, max_tokens, n, tokens)


def _too_many(
    state: _State, kind: str, wait: float | None, headers: dict[str, str]
) -> web.Response:
    """A 429 naming the limit; ``retry_after`` in the settings overrides the wait."""
    settings = state.settings
    state.stats.rate_limited += 1
    if settings.retry_after is not None:
        # Only Retry-After: a retry-after-ms beside it would win in clients and hide it.
        headers["retry-after"] = f"{settings.retry_after:g}"
    elif wait is not None:
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    limit = settings.rpm if kind == "requests" else settings.tpm
    unit = "RPM" if kind == "requests" else "TPM"
    stated = f" Limit {int(limit)}." if limit is not None else ""
    later = f"in {wait * 1000:.0f}ms" if wait is not None else "later"
    message = (
        f"Rate limit reached for {settings.model} on {kind} per min ({unit}):"
        f"{stated} Please try again {later}."
    )
    return _json(state, 429, _error(429, message, kind, "rate_limit_exceeded"), headers)


async def _complete(request: web.Request, *, chat: bool) -> web.StreamResponse:
    state = request.app[_STATE]
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
            return _json(state, 503, _error(503, message, "server_error"))
        now = state.now()
        cost = call.prompt_tokens + call.max_tokens * call.n
        refused = state.limits.admit(cost, now)
        headers = state.limits.headers(now) if state.settings.rate_limit_headers else {}
        if refused is not None:
            kind, wait = refused
            return _too_many(state, kind, wait, headers)
        return await _admitted(request, state, call, headers)
    finally:
        stats.inflight -= 1


async def _admitted(
    request: web.Request, state: _State, call: _Call, headers: dict[str, str]
) -> web.StreamResponse:
    """Answer an admitted request: a fault, or choices from the responder."""
    settings, stats = state.settings, state.stats
    state.counter += 1
    fault = _pick_fault(settings, state.rng.random())
    latency = settings.latency_median
    if settings.latency_sigma > 0 and latency > 0:
        latency *= math.exp(state.rng.gauss(0.0, settings.latency_sigma))
    unused = call.max_tokens * call.n
    if fault is not None:
        stats.faults[fault] += 1
    if fault == "hang":
        # Ends when the client gives up (handler cancellation) or the server stops.
        with suppress(TimeoutError):
            await asyncio.wait_for(state.closing.wait(), settings.hang_seconds)
        state.limits.refund(unused, state.now())
        return _json(state, 504, _error(504, "upstream timed out", "server_error"))
    if fault == "429":
        # Refused before any work: nothing of the request is charged.
        state.limits.refund(call.prompt_tokens + unused, state.now())
        return _too_many(state, "requests", None, headers)
    if latency > 0:
        await asyncio.sleep(latency)
    if fault == "5xx":
        state.limits.refund(unused, state.now())
        status = state.rng.choice((500, 502, 503))
        body = _error(status, "The server had an error processing your request.", "server_error")
        return _json(state, status, body, headers)
    if fault == "reset":
        state.limits.refund(unused, state.now())
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
    if fault == "huge":
        return await _huge(request, state, call.chat, headers)
    return _answer(state, call, fault, headers)


def _useless(mode: str, prompt: str) -> str | None:
    """The text a broken provider sends in ``answers`` mode ``mode``."""
    if mode == "echo":
        return prompt
    return None if mode == "null" else ""


def _answer(state: _State, call: _Call, fault: str | None, headers: dict[str, str]) -> web.Response:
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
            text, finish = _useless(settings.answers, call.prompt), "stop"
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
        },
    }
    return _json(state, 200, payload, headers)


def _huge_pieces(total: int, *, chat: bool) -> Iterator[bytes]:
    """``total`` bytes of one completion whose text is ``x`` repeated, in small pieces.

    A body long enough is valid JSON: a client without a size cap would accept it.
    """
    if chat:
        head = b'{"id": "cmpl-sim-huge", "choices": [{"index": 0, "message": {"content": "'
        tail = b'"}, "finish_reason": "stop"}]}'
    else:
        head = b'{"id": "cmpl-sim-huge", "choices": [{"index": 0, "text": "'
        tail = b'", "finish_reason": "stop"}]}'
    if total <= len(head) + len(tail):
        yield (head + tail)[:total]
        return
    yield head
    filler = b"x" * HUGE_CHUNK
    left = total - len(head) - len(tail)
    while left > 0:
        piece = filler if left >= HUGE_CHUNK else filler[:left]
        left -= len(piece)
        yield piece
    yield tail


async def _huge(
    request: web.Request, state: _State, chat: bool, headers: dict[str, str]
) -> web.StreamResponse:
    """Stream ``huge_bytes`` of answer, noting whether the client stayed to the end."""
    settings = state.settings
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    if settings.huge_chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = settings.huge_bytes
    state.stats.by_status[200] += 1
    try:
        await response.prepare(request)
        state.streaming.set()
        for piece in _huge_pieces(settings.huge_bytes, chat=chat):
            await response.write(piece)
            if settings.huge_chunk_delay > 0:
                await asyncio.sleep(settings.huge_chunk_delay)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        # The client closed the connection (or the server is stopping) mid-body.
        state.stats.disconnects += 1
        state.disconnected.set()
        raise
    return response


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


async def _outage(request: web.Request) -> web.Response:
    """``GET``: whether an outage is on. ``POST {"active": bool, "seconds": S | null}``."""
    state = request.app[_STATE]
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
        state = _State(
            settings=settings,
            responder=settings.responder or _default_responder(),
            rng=random.Random(settings.seed),
            limits=_Limits(settings, asyncio.get_running_loop().time()),
            stats=SimulatorStats(),
            closing=asyncio.Event(),
            streaming=asyncio.Event(),
            disconnected=asyncio.Event(),
        )
        if settings.outage_after == 0:
            state.outage_triggered = True
            state.start_outage(settings.outage_seconds)
        app[_STATE] = state

    async def on_shutdown(app: web.Application) -> None:
        app[_STATE].closing.set()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/_simulator/stats", _stats)
    app.router.add_get("/_simulator/outage", _outage)
    app.router.add_post("/_simulator/outage", _outage)
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

    def start_outage(self, seconds: float | None = None) -> None:
        """Answer every request with 503 from now on, for ``seconds`` or until ended."""
        self.app[_STATE].start_outage(seconds)

    def end_outage(self) -> None:
        """Serve again."""
        self.app[_STATE].outage_until = None

    @property
    def in_outage(self) -> bool:
        return self.app[_STATE].in_outage()

    async def streaming_huge(self) -> None:
        """Wait until the simulator has begun sending a huge body."""
        await self.app[_STATE].streaming.wait()

    async def disconnected(self) -> None:
        """Wait until a client has gone away in the middle of a huge body."""
        await self.app[_STATE].disconnected.wait()


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

"""How the simulated provider fails: 429s, injected faults, useless texts and huge bodies.

A fault is drawn per admitted request (:func:`pick_fault`); a hang or a forced 429 strikes
before any work (:func:`fail_before_work`), a 5xx, a reset, malformed JSON or a huge body
after the answer's latency (:func:`fail_after_latency`). Each gives back to the token
limit what the request was charged but did not use, as a provider's accounting would.
A request whose prompt and ``max_tokens`` overflow ``context_limit`` is refused before
any of that, with a 400 in OpenAI's, vLLM's or llama.cpp's words (:func:`over_context`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import suppress

from aiohttp import web

from .settings import SimulatorSettings, fault_probabilities
from .state import Call, State, error_body, json_reply

# Bytes per write of a huge body: the simulator never holds more than this of it.
HUGE_CHUNK = 64 * 1024


def pick_fault(settings: SimulatorSettings, draw: float) -> str | None:
    """The fault a uniform ``draw`` in [0, 1) picks, or ``None`` for a normal answer."""
    edge = 0.0
    for name, p in fault_probabilities(settings):
        edge += p
        if draw < edge:
            return name
    return None


def over_context(state: State, call: Call) -> web.Response | None:
    """The 400 refusing a request that overflows ``context_limit``, or ``None``.

    Prompt tokens (the simulator's estimate) plus ``max_tokens`` are what is compared, as
    OpenAI and vLLM do; counted in ``faults`` as ``context_length``.
    """
    settings = state.settings
    limit = settings.context_limit
    if limit is None or call.prompt_tokens + call.max_tokens <= limit:
        return None
    state.stats.faults["context_length"] += 1
    prompt, completion = call.prompt_tokens, call.max_tokens
    total = prompt + completion
    if settings.context_wording == "llama.cpp":
        error = {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": prompt,
            "n_ctx": limit,
        }
        return json_reply(state, 400, {"error": error})
    if call.chat or settings.context_wording == "vllm":
        message = (
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{total} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {limit} tokens, however you requested "
            f"{total} tokens ({prompt} in your prompt; {completion} for the completion). "
            "Please reduce your prompt; or completion length."
        )
    if settings.context_wording == "vllm":
        # vLLM's older servers put the error at the top level, not under "error".
        body = {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
        return json_reply(state, 400, body)
    refusal = error_body(400, message, "invalid_request_error", "context_length_exceeded")
    return json_reply(state, 400, refusal)


def too_many(state: State, kind: str, wait: float | None, headers: dict[str, str]) -> web.Response:
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
    return json_reply(state, 429, error_body(429, message, kind, "rate_limit_exceeded"), headers)


async def fail_before_work(
    fault: str | None, state: State, call: Call, headers: dict[str, str]
) -> web.Response | None:
    """The answer of a fault that strikes at once (a hang, a 429), or ``None``."""
    unused = call.max_tokens * call.n
    if fault == "hang":
        # Ends when the client gives up (handler cancellation) or the server stops.
        with suppress(TimeoutError):
            await asyncio.wait_for(state.closing.wait(), state.settings.hang_seconds)
        state.limits.refund(unused, state.now())
        return json_reply(state, 504, error_body(504, "upstream timed out", "server_error"))
    if fault == "429":
        # Refused before any work: nothing of the request is charged.
        state.limits.refund(call.prompt_tokens + unused, state.now())
        return too_many(state, "requests", None, headers)
    return None


async def fail_after_latency(
    fault: str | None, request: web.Request, state: State, call: Call, headers: dict[str, str]
) -> web.StreamResponse | None:
    """The answer of a fault that strikes once the work is done, or ``None``.

    A 5xx, a reset connection, malformed JSON or a huge body; ``empty`` and ``truncate``
    shape a normal answer instead and are not handled here.
    """
    unused = call.max_tokens * call.n
    if fault == "5xx":
        state.limits.refund(unused, state.now())
        status = state.rng.choice((500, 502, 503))
        body = error_body(
            status, "The server had an error processing your request.", "server_error"
        )
        return json_reply(state, status, body, headers)
    if fault == "reset":
        state.limits.refund(unused, state.now())
        state.stats.by_status[0] += 1
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client: the connection is already gone.
        return web.Response(status=500)
    if fault == "malformed":
        state.stats.by_status[200] += 1
        return web.Response(
            status=200,
            body=b'{"id": "cmpl-sim", "choices": [{"text": "trunc',
            content_type="application/json",
            headers=headers,
        )
    if fault == "huge":
        return await stream_huge(request, state, call.chat, headers)
    return None


def useless_text(mode: str, prompt: str) -> str | None:
    """The text a broken provider sends in ``answers`` mode ``mode``."""
    if mode == "echo":
        return prompt
    return None if mode == "null" else ""


def huge_pieces(total: int, *, chat: bool) -> Iterator[bytes]:
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


async def stream_huge(
    request: web.Request, state: State, chat: bool, headers: dict[str, str]
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
        for piece in huge_pieces(settings.huge_bytes, chat=chat):
            await response.write(piece)
            if settings.huge_chunk_delay > 0:
                await asyncio.sleep(settings.huge_chunk_delay)
        await response.write_eof()
    except asyncio.CancelledError:
        # The server is stopping, or aiohttp noticed the client left before we did.
        _note_disconnect(state)
        raise
    except ConnectionError:
        # The client walked away mid-body, as a capped client should: that is the point of
        # this fault, not an error worth a traceback in the simulator's log.
        _note_disconnect(state)
    return response


def _note_disconnect(state: State) -> None:
    state.stats.disconnects += 1
    state.disconnected.set()

"""The OpenAI completions / chat wire format: request bodies out, :class:`Completion` in.

Both backends speak it: :mod:`~selfinstruct_async.client.http` sends these bodies to
``/v1/completions`` and ``/v1/chat/completions``, and
:mod:`~selfinstruct_async.client.local` hands the same fields to llama-cpp-python, whose
``create_completion`` / ``create_chat_completion`` take and return the same shapes. A
field the request gains (a sampling parameter, say) is mapped here once for both.

Parsing is strict about what it uses and ignores the rest: a body that is not JSON, has
no ``choices`` list or a choice with a non-string text is ``MALFORMED``, and an empty
``choices`` list is ``EMPTY``; both come back as a :class:`~.retry.Failure` (retryable),
never as an exception, so the caller decides what a bad answer costs.
"""

from __future__ import annotations

from typing import Any

from . import fast_json
from .protocol import Api, Choice, Completion, CompletionRequest, Usage
from .retry import Failure, FailureKind


def api_of(chat: bool) -> Api:
    """The endpoint kind: ``"chat"`` or ``"completions"``."""
    return "chat" if chat else "completions"


def prompt_fields(request: CompletionRequest, *, chat: bool) -> dict[str, Any]:
    """``messages`` (the system message first, when there is one) or ``prompt``."""
    if not chat:
        return {"prompt": request.prompt}
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": request.prompt})
    return {"messages": messages}


def generation_fields(request: CompletionRequest) -> dict[str, Any]:
    """``max_tokens`` and the sampling parameters, as both APIs name them."""
    return {"max_tokens": request.max_tokens, **request.sampling()}


def request_body(request: CompletionRequest, model: str, *, chat: bool) -> dict[str, Any]:
    """The JSON body of an OpenAI-style completions or chat request."""
    body: dict[str, Any] = {"model": model}
    body.update(prompt_fields(request, chat=chat))
    body.update(generation_fields(request), n=request.n)
    stop = request.stop_for(api_of(chat))
    if stop:
        body["stop"] = list(stop)
    body.update(logprob_fields(request, chat=chat))
    if request.echo and not chat:
        body["echo"] = True
    return body


def logprob_fields(request: CompletionRequest, *, chat: bool) -> dict[str, Any]:
    """Ask for the top ``request.logprobs`` tokens per position, as each API spells it."""
    if request.logprobs <= 0:
        return {}
    if chat:
        return {"logprobs": True, "top_logprobs": request.logprobs}
    return {"logprobs": request.logprobs}


def parse_completion(body: bytes, *, chat: bool) -> Completion | Failure:
    """Parse a 2xx body; malformed JSON and empty ``choices`` come back as a Failure."""
    try:
        payload = fast_json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Failure(FailureKind.MALFORMED, f"malformed JSON body: {exc}", 200)
    return parse_payload(payload, chat=chat)


def parse_payload(payload: Any, *, chat: bool) -> Completion | Failure:
    """A decoded answer as a :class:`Completion`: choices in ``index`` order, usage, model.

    A ``null`` text or content is the empty string. Usage the answer does not state
    correctly (missing, negative, not integers) is left at zero for the caller to estimate.
    """
    if not isinstance(payload, dict):
        return Failure(FailureKind.MALFORMED, "JSON body is not an object", 200)
    raw_choices = payload.get("choices")
    if not isinstance(raw_choices, list):
        return Failure(FailureKind.MALFORMED, "JSON body has no 'choices' list", 200)
    if not raw_choices:
        return Failure(FailureKind.EMPTY, "answer has no choices", 200)
    ordered: list[tuple[int, Choice]] = []
    for position, raw in enumerate(raw_choices):
        if not isinstance(raw, dict):
            return Failure(FailureKind.MALFORMED, "a choice is not an object", 200)
        if chat:
            message = raw.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = raw.get("text")
        if text is None:
            text = ""
        finish = raw.get("finish_reason")
        if not isinstance(text, str) or not (finish is None or isinstance(finish, str)):
            return Failure(FailureKind.MALFORMED, "a choice has a non-string field", 200)
        index = raw.get("index")
        logprobs = raw.get("logprobs")
        if logprobs is None:  # the usual answer: nothing to read
            choice = Choice(text, finish)
        else:
            choice = Choice(
                text,
                finish,
                _top_logprobs(logprobs, chat=chat),
                () if chat else _token_logprobs(logprobs),
            )
        ordered.append((index if isinstance(index, int) else position, choice))
    if len(ordered) > 1:
        ordered.sort(key=lambda pair: pair[0])
    model = payload.get("model")
    return Completion(
        tuple(c for _, c in ordered),
        _usage(payload.get("usage")),
        model if isinstance(model, str) else "",
    )


def _top_logprobs(raw: Any, *, chat: bool) -> tuple[dict[str, float], ...]:
    """Per position, token -> log probability; empty when absent or not understood.

    Completions answer ``{"top_logprobs": [{token: logprob}, ...]}``; chat answers
    ``{"content": [{"top_logprobs": [{"token": t, "logprob": lp}, ...]}, ...]}``.
    """
    if not isinstance(raw, dict):
        return ()
    positions: list[dict[str, float]] = []
    if chat:
        content = raw.get("content")
        for entry in content if isinstance(content, list) else ():
            tops = entry.get("top_logprobs") if isinstance(entry, dict) else None
            pairs = (
                (t.get("token"), t.get("logprob"))
                for t in (tops if isinstance(tops, list) else ())
                if isinstance(t, dict)
            )
            positions.append(_logprob_map(pairs))
    else:
        tops = raw.get("top_logprobs")
        for entry in tops if isinstance(tops, list) else ():
            positions.append(_logprob_map(entry.items() if isinstance(entry, dict) else ()))
    return tuple(positions)


def _token_logprobs(raw: Any) -> tuple[tuple[int, float | None], ...]:
    """Completions' ``text_offset`` and ``token_logprobs`` side by side; empty when either is
    missing, their lengths differ or an entry is not a number (``null`` logprobs stay)."""
    if not isinstance(raw, dict):
        return ()
    offsets, values = raw.get("text_offset"), raw.get("token_logprobs")
    if not isinstance(offsets, list) or not isinstance(values, list):
        return ()
    if len(offsets) != len(values):
        return ()
    pairs: list[tuple[int, float | None]] = []
    for offset, value in zip(offsets, values, strict=True):
        if not isinstance(offset, int) or isinstance(offset, bool):
            return ()
        if value is None:
            pairs.append((offset, None))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            pairs.append((offset, float(value)))
        else:
            return ()
    return tuple(pairs)


def _logprob_map(pairs: Any) -> dict[str, float]:
    return {
        token: float(logprob)
        for token, logprob in pairs
        if isinstance(token, str)
        and isinstance(logprob, int | float)
        and not isinstance(logprob, bool)
    }


def _usage(raw: Any) -> Usage:
    if isinstance(raw, dict):
        p, c = raw.get("prompt_tokens"), raw.get("completion_tokens")
        if isinstance(p, int) and isinstance(c, int) and p >= 0 and c >= 0:
            details = raw.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            ok = isinstance(cached, int) and not isinstance(cached, bool) and 0 <= cached <= p
            return Usage(p, c, cached if ok and isinstance(cached, int) else 0)
    return Usage()

"""The Batch API's JSONL files: request lines out, output and error lines in.

An input line is ``{"custom_id", "method": "POST", "url", "body"}`` where ``body`` is the
very body the streaming client would send (:func:`~.openai_format.request_body`), so a
batch answer and a streamed one are the same request. An output line carries
``response.body`` (a completion) with ``status_code`` 200; an error-file line carries
``error`` (``batch_expired``, ``batch_cancelled``: never run) or a non-200 response
(run, and failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .openai_format import parse_payload, request_body
from .protocol import Completion, CompletionRequest
from .retry import Failure

# Error codes of requests the provider never ran: sent again, not counted as failures.
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})


def endpoint_path(*, chat: bool) -> str:
    """The ``url`` of every line, and the batch's ``endpoint``."""
    return "/v1/chat/completions" if chat else "/v1/completions"


def file_name(local_id: str) -> str:
    """The input file's name: it carries the local id, which is how a resumed run finds it."""
    return f"selfinstruct-{local_id}.jsonl"


def request_fields(request: CompletionRequest) -> str:
    """Every field of ``request`` as JSON, to rebuild it on resume (:func:`request_from`)."""
    return json.dumps({name: getattr(request, name) for name in request.__slots__})


def request_from(fields: str) -> CompletionRequest:
    data = json.loads(fields)
    for name in ("stop", "chat_stop"):
        if isinstance(data.get(name), list):
            data[name] = tuple(data[name])
    return CompletionRequest(**data)


def request_line(custom_id: str, request: CompletionRequest, model: str, *, chat: bool) -> str:
    """One input line (no newline)."""
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": endpoint_path(chat=chat),
        "body": request_body(request, model, chat=chat),
    }
    return json.dumps(line, ensure_ascii=False)


@dataclass(frozen=True)
class LineResult:
    """What one output or error line says about its request."""

    custom_id: str
    completion: Completion | None = None
    # Why there is no completion: the provider's error, or a body we could not read.
    problem: str = ""
    not_run: bool = False


def read_result_lines(content: bytes, *, chat: bool, source: str) -> list[LineResult]:
    """Every readable line of an output or error file; unreadable lines are skipped
    (their requests count as not run, so they are sent again)."""
    results: list[LineResult] = []
    for number, raw in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            continue
        results.append(_result(line, chat=chat, where=f"{source} line {number}"))
    return results


def _result(line: dict[str, Any], *, chat: bool, where: str) -> LineResult:
    custom_id = str(line["custom_id"])
    error = line.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = str(error.get("message") or code or "error")
        return LineResult(custom_id, problem=f"{where}: {message}", not_run=code in NOT_RUN)
    response = line.get("response")
    if not isinstance(response, dict):
        return LineResult(custom_id, problem=f"{where}: no response", not_run=True)
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        detail = body.get("error") if isinstance(body, dict) else None
        said = detail.get("message") if isinstance(detail, dict) else None
        return LineResult(custom_id, problem=f"{where}: status {status}: {said or body}")
    parsed = parse_payload(body, chat=chat)
    if isinstance(parsed, Failure):
        return LineResult(custom_id, problem=f"{where}: {parsed.message}")
    return LineResult(custom_id, completion=parsed)

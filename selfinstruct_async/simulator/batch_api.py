"""The simulated provider's OpenAI Batch API: files, batches, their lifecycle and limits.

Routes (registered by :func:`add_batch_routes`, called from ``server.make_app``):

- ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files`` (paginated with
  ``after``/``limit``, filtered by ``purpose``), ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``,
  ``GET /v1/batches`` (paginated);
- ``GET /_simulator/batches``: what the simulator saw, for audits (every ``custom_id``
  submitted and answered, how often).

A batch moves ``validating -> in_progress -> finalizing -> completed`` over
``batch_seconds`` of loop time (10 %, 80 %, 10 %). Its lines are answered while it is in
progress, at an even rate, by the same code that answers ``/v1/completions`` and
``/v1/chat/completions`` (the responder, the usage and the cached prompt tokens come out
identical). The state advances when somebody looks at it (a poll or a listing), so no
background task runs. A share ``batch_error_rate`` of the lines goes to the error file
with a 500. A batch not finished within ``batch_window`` seconds becomes ``expired``: the
lines answered so far are in the output file and the rest in the error file with the
code ``batch_expired``, as OpenAI does; ``cancel`` does the same with ``batch_cancelled``
after a short ``cancelling``. Input files over ``batch_max_file_bytes`` and batches over
``batch_max_requests`` lines are refused with a 400 in OpenAI's words.

For tests that kill a client at a precise moment, :attr:`BatchState.hold` names points
(``upload``: before a file is stored; ``uploaded``: after, before the answer; ``created``:
after a batch is created, before the answer; ``poll``: a status request) where the next
request waits forever once :attr:`BatchState.held` is set; :attr:`BatchState.windows`
gives the next batches their own expiry window (the first expires, the next completes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from ..client.tokens import prompt_tokens
from .server import _answer, _parse_request
from .state import STATE, Call, State, error_body, json_reply

ENDPOINTS = {"/v1/completions": False, "/v1/chat/completions": True}
HOLD_POINTS = ("upload", "uploaded", "created", "poll")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# Share of ``batch_seconds`` spent validating, and finalizing (the rest is in progress).
_EDGE = 0.1


@dataclass
class StoredFile:
    """An uploaded or generated file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
        }


@dataclass
class Job:
    """One batch and where its lines are."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any]
    lines: list[dict[str, Any]]
    started: float  # loop time
    created_at: int
    window: float  # seconds before it expires
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0  # lines processed so far (output or error)
    output: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)
    failed_lines: int = 0
    cancel_at: float | None = None  # loop time the cancel was asked
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            **{f"{name}_at": self.times.get(name) for name in _TIMESTAMPS},
            "request_counts": {
                "total": len(self.lines),
                "completed": len(self.output),
                "failed": self.failed_lines,
            },
            "metadata": self.metadata,
        }


_TIMESTAMPS: tuple[str, ...] = (
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)


@dataclass
class BatchState:
    """Files, batches and the audit records of one simulator."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: custom_id -> lines submitted with it (in created batches), and 200 answers to it.
    submitted: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    #: custom_id -> lines that came back without an answer (error file: failed or not run).
    unanswered: Counter[str] = field(default_factory=Counter)
    uploads: int = 0
    polls: int = 0
    hold: set[str] = field(default_factory=set)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    #: Times a hold point lets a request pass before it holds one.
    hold_skip: dict[str, int] = field(default_factory=dict)
    #: Windows (seconds) for the next batches created, in order; then ``batch_window``.
    windows: list[float] = field(default_factory=list)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids):06d}"

    def audit(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "uploads": self.uploads,
            "batches": len(self.jobs),
            "polls": self.polls,
            "statuses": dict(Counter(job.status for job in self.jobs.values())),
            "submitted": dict(self.submitted),
            "answered": dict(self.answered),
            "submitted_twice": sorted(k for k, n in self.submitted.items() if n > 1),
            "answered_twice": sorted(k for k, n in self.answered.items() if n > 1),
            # Sent again although no earlier line of it came back unanswered.
            "files_uploaded_twice": sorted(
                name
                for name, n in Counter(
                    f.filename for f in self.files.values() if f.purpose == "batch"
                ).items()
                if n > 1
            ),
            "needless_resubmissions": sorted(
                k for k, n in self.submitted.items() if n - self.unanswered[k] > 1
            ),
            "jobs": {
                job.id: {
                    "status": job.status,
                    "metadata": job.metadata,
                    "answered": [json.loads(line)["custom_id"] for line in job.output],
                }
                for job in self.jobs.values()
            },
        }


BATCH = web.AppKey("simulator_batches", BatchState)


def add_batch_routes(app: web.Application) -> None:
    """Register the Batch API on the simulator's application."""
    app[BATCH] = BatchState()
    app.router.add_post("/v1/files", _upload)
    app.router.add_get("/v1/files", _list_files)
    app.router.add_get("/v1/files/{id}/content", _file_content)
    app.router.add_post("/v1/batches", _create)
    app.router.add_get("/v1/batches", _list_batches)
    app.router.add_get("/v1/batches/{id}", _retrieve)
    app.router.add_post("/v1/batches/{id}/cancel", _cancel)
    app.router.add_get("/_simulator/batches", _audit)


# ---------------------------------------------------------------- helpers


def _refused(state: State, status: int, message: str, code: str | None = None) -> web.Response:
    return json_reply(state, status, error_body(status, message, "invalid_request_error", code))


def _unauthorized(request: web.Request, state: State) -> web.Response | None:
    key = state.settings.api_key
    if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
        return _refused(state, 401, "Incorrect API key provided.")
    return None


async def _hold(request: web.Request, point: str) -> None:
    """Wait forever at ``point`` when a test asked for it (once per request of it)."""
    batches = request.app[BATCH]
    if batches.hold_skip.get(point, 0) > 0:
        batches.hold_skip[point] -= 1
        return
    if point in batches.hold:
        batches.hold.discard(point)
        batches.held.set()
        await request.app[STATE].closing.wait()
        raise web.HTTPServiceUnavailable()


def _page(items: list[dict[str, Any]], request: web.Request, default: int) -> dict[str, Any]:
    """OpenAI's cursor pagination: newest first, ``after`` an id, ``limit`` items."""
    try:
        limit = max(1, min(int(request.query.get("limit", default)), 10_000))
    except ValueError:
        limit = default
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# ---------------------------------------------------------------- files


async def _upload(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    await _hold(request, "upload")
    limit = state.settings.batch_max_file_bytes
    purpose, filename, content = "", "", b""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        return _refused(state, 400, "expected a multipart/form-data body")
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name
        if name == "purpose":
            purpose = (await part.read()).decode("utf-8", "replace")
        elif name == "file":
            filename = part.filename or "upload.jsonl"
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk():
                size += len(chunk)
                if size > limit:
                    message = f"File is too large: the limit is {limit} bytes for batch input."
                    return _refused(state, 400, message, "file_too_large")
                chunks.append(chunk)
            content = b"".join(chunks)
    if purpose != "batch":
        return _refused(state, 400, f"purpose must be 'batch', got {purpose!r}")
    stored = StoredFile(batches.new_id("file-"), filename, purpose, content, int(time.time()))
    batches.files[stored.id] = stored
    batches.uploads += 1
    await _hold(request, "uploaded")
    return json_reply(state, 200, stored.view())


async def _list_files(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    purpose = request.query.get("purpose")
    files = [f.view() for f in reversed(batches.files.values())]
    files = [f for f in files if purpose is None or f["purpose"] == purpose]
    return json_reply(state, 200, _page(files, request, 10_000))


async def _file_content(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    stored = batches.files.get(request.match_info["id"])
    if stored is None:
        return _refused(state, 404, f"No such File object: {request.match_info['id']}")
    state.stats.by_status[200] += 1
    return web.Response(body=stored.content, content_type="application/octet-stream")


# ---------------------------------------------------------------- batches


def _read_lines(content: bytes, endpoint: str) -> list[dict[str, Any]] | str:
    """The input file's requests, or why the batch fails validation."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            return f"line {number}: not JSON"
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            return f"line {number}: no string custom_id"
        if line["custom_id"] in seen:
            return f"line {number}: duplicate custom_id {line['custom_id']!r}"
        if line.get("method") != "POST" or line.get("url") != endpoint:
            return f"line {number}: method must be POST and url {endpoint}"
        if not isinstance(line.get("body"), dict):
            return f"line {number}: body must be an object"
        seen.add(line["custom_id"])
        lines.append(line)
    return lines


async def _create(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return _refused(state, 400, "body is not JSON")
    if not isinstance(payload, dict):
        return _refused(state, 400, "body must be a JSON object")
    endpoint = payload.get("endpoint")
    if endpoint not in ENDPOINTS:
        return _refused(state, 400, f"endpoint must be one of {', '.join(ENDPOINTS)}")
    if payload.get("completion_window") != "24h":
        return _refused(state, 400, "completion_window must be '24h'")
    stored = batches.files.get(str(payload.get("input_file_id")))
    if stored is None or stored.purpose != "batch":
        return _refused(state, 400, f"No such File object: {payload.get('input_file_id')}")
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _refused(state, 400, "metadata must be an object")
    lines = _read_lines(stored.content, str(endpoint))
    limit = state.settings.batch_max_requests
    if isinstance(lines, list) and len(lines) > limit:
        message = f"The batch input file holds {len(lines)} requests; the limit is {limit}."
        return _refused(state, 400, message, "too_many_requests_in_batch")
    job = Job(
        id=batches.new_id("batch_"),
        endpoint=str(endpoint),
        input_file_id=stored.id,
        completion_window="24h",
        metadata={str(k): str(v) for k, v in metadata.items()},
        lines=lines if isinstance(lines, list) else [],
        started=state.now(),
        created_at=int(time.time()),
        window=batches.windows.pop(0) if batches.windows else state.settings.batch_window,
    )
    if isinstance(lines, str):
        job.status = "failed"
        job.errors.append({"code": "invalid_request", "message": lines, "line": None})
        job.times["failed"] = int(time.time())
    else:
        batches.submitted.update(line["custom_id"] for line in lines)
    batches.jobs[job.id] = job
    await _hold(request, "created")
    return json_reply(state, 200, job.view())


async def _retrieve(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    batches.polls += 1
    await _hold(request, "poll")
    job = batches.jobs.get(request.match_info["id"])
    if job is None:
        return _refused(state, 404, f"No such Batch object: {request.match_info['id']}")
    _advance(state, batches, job)
    return json_reply(state, 200, job.view())


async def _list_batches(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    views = []
    for job in reversed(batches.jobs.values()):
        _advance(state, batches, job)
        views.append(job.view())
    return json_reply(state, 200, _page(views, request, 20))


async def _cancel(request: web.Request) -> web.StreamResponse:
    state, batches = request.app[STATE], request.app[BATCH]
    refused = _unauthorized(request, state)
    if refused is not None:
        return refused
    job = batches.jobs.get(request.match_info["id"])
    if job is None:
        return _refused(state, 404, f"No such Batch object: {request.match_info['id']}")
    _advance(state, batches, job)
    if job.status in TERMINAL:
        return _refused(state, 400, f"Cannot cancel a batch with status {job.status}.")
    if job.cancel_at is None:
        job.cancel_at = state.now()
        job.status = "cancelling"
        job.times["cancelling"] = int(time.time())
    return json_reply(state, 200, job.view())


async def _audit(request: web.Request) -> web.Response:
    return web.json_response(request.app[BATCH].audit())


# ---------------------------------------------------------------- the lifecycle


def _advance(state: State, batches: BatchState, job: Job) -> None:
    """Bring ``job`` to where the clock says it is, answering the lines due by now."""
    if job.status in TERMINAL:
        return
    settings = state.settings
    now = state.now()
    elapsed = now - job.started
    duration = settings.batch_seconds
    work = duration * (1 - 2 * _EDGE)
    window = job.window
    # Work stops at the window's end, or shortly after a cancel was asked.
    stopped_at = elapsed
    if job.cancel_at is not None:
        stopped_at = min(stopped_at, job.cancel_at - job.started)
    stopped_at = min(stopped_at, window)
    working = max(0.0, stopped_at - duration * _EDGE)
    due = len(job.lines) if work <= 0 else int(len(job.lines) * min(1.0, working / work))
    if working > 0 and "in_progress" not in job.times:
        job.times["in_progress"] = int(time.time())
    while job.answered < due:
        _answer_line(state, batches, job, job.lines[job.answered])
        job.answered += 1
    if job.cancel_at is not None:
        if now - job.cancel_at >= duration * _EDGE:
            _finish(batches, job, "cancelled", "batch_cancelled")
        return
    if elapsed >= window and job.answered < len(job.lines):
        _finish(batches, job, "expired", "batch_expired")
    elif job.answered < len(job.lines):
        job.status = "in_progress" if working > 0 else "validating"
    elif elapsed >= duration or work <= 0:
        _finish(batches, job, "completed", None)
    else:
        job.status = "finalizing"
        job.times.setdefault("finalizing", int(time.time()))


def _answer_line(state: State, batches: BatchState, job: Job, line: dict[str, Any]) -> None:
    """One line answered the way the streaming endpoints answer, or failed on purpose."""
    custom_id = line["custom_id"]
    chat = ENDPOINTS[job.endpoint]
    request_id = f"req_{job.id}_{job.answered}"
    draw = random.Random(f"{state.settings.seed}:{job.id}:{custom_id}").random()
    status, body = 200, None
    if draw < state.settings.batch_error_rate:
        status = 500
        body = error_body(500, "The server had an error processing this request.", "server_error")
    else:
        parsed = _parse_request(line["body"], chat=chat)
        if isinstance(parsed, str):
            status, body = 400, error_body(400, parsed, "invalid_request_error")
        else:
            prompt, system, max_tokens, n = parsed
            tokens = prompt_tokens(prompt, system, chat=chat)
            call = Call(chat, prompt, system, max_tokens, n, tokens)
            state.stats.requests += 1
            state.counter += 1
            answer = _answer(state, call, None, {})
            assert isinstance(answer.body, bytes)
            body = json.loads(answer.body)
    record = {
        "id": f"batch_req_{job.id}_{job.answered}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }
    if status == 200:
        batches.answered[custom_id] += 1
        job.output.append(json.dumps(record))
    else:
        batches.unanswered[custom_id] += 1
        job.failed_lines += 1
        job.error_lines.append(json.dumps(record))


def _finish(batches: BatchState, job: Job, status: str, unfinished_code: str | None) -> None:
    """Write the output and error files; unanswered lines go to the error file."""
    if unfinished_code is not None:
        for line in job.lines[job.answered :]:
            error = {"code": unfinished_code, "message": f"This request was not run ({status})."}
            record = {"id": None, "custom_id": line["custom_id"], "response": None, "error": error}
            batches.unanswered[line["custom_id"]] += 1
            job.error_lines.append(json.dumps(record))
    now = int(time.time())
    for name, lines in (("output", job.output), ("error", job.error_lines)):
        if not lines:
            continue
        content = ("\n".join(lines) + "\n").encode()
        stored = StoredFile(
            batches.new_id("file-"), f"{job.id}_{name}.jsonl", f"batch_{name}", content, now
        )
        batches.files[stored.id] = stored
        if name == "output":
            job.output_file_id = stored.id
        else:
            job.error_file_id = stored.id
    job.status = status
    job.times[status] = now

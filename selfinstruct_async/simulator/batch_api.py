"""The simulated provider's OpenAI Batch API: its routes, their validation and limits.

Routes (registered by :func:`add_batch_routes`, called from ``server.make_app``):

- ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files`` (paginated with
  ``after``/``limit``, filtered by ``purpose``), ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``,
  ``GET /v1/batches`` (paginated);
- ``GET /_simulator/batches``: what the simulator saw, for audits (every ``custom_id``
  submitted and answered, how often).

The batches themselves and their lifecycle (``validating -> in_progress -> finalizing ->
completed``, expiry, cancelling, the error share) live in :mod:`.batch_jobs`; a batch advances
when somebody looks at it (a poll or a listing), so no background task runs. Input files
over ``batch_max_file_bytes`` and batches over ``batch_max_requests`` lines are refused
with a 400 in OpenAI's words.

For tests that kill a client at a precise moment, :attr:`BatchState.hold` names points
(``upload``: before a file is stored; ``uploaded``: after, before the answer; ``created``:
after a batch is created, before the answer; ``poll``: a status request) where the next
request waits forever once :attr:`BatchState.held` is set; :attr:`BatchState.windows`
gives the next batches their own expiry window (the first expires, the next completes).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from .batch_jobs import ENDPOINTS, TERMINAL, BatchState, Job, StoredFile, advance
from .state import STATE, State, error_body, json_reply

HOLD_POINTS = ("upload", "uploaded", "created", "poll")
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


Handler = Callable[[web.Request, State, BatchState], Awaitable[web.StreamResponse]]


def _authorized(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route for ``handler``: a 401 without the simulator's key, else the handler with
    the simulator's and the batches' state."""

    @functools.wraps(handler)
    async def route(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        key = state.settings.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            return _refused(state, 401, "Incorrect API key provided.")
        return await handler(request, state, request.app[BATCH])

    return route


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


@_authorized
async def _upload(request: web.Request, state: State, batches: BatchState) -> web.StreamResponse:
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


@_authorized
async def _list_files(
    request: web.Request, state: State, batches: BatchState
) -> web.StreamResponse:
    purpose = request.query.get("purpose")
    files = [f.view() for f in reversed(batches.files.values())]
    files = [f for f in files if purpose is None or f["purpose"] == purpose]
    return json_reply(state, 200, _page(files, request, 10_000))


@_authorized
async def _file_content(
    request: web.Request, state: State, batches: BatchState
) -> web.StreamResponse:
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


@_authorized
async def _create(request: web.Request, state: State, batches: BatchState) -> web.StreamResponse:
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


def _advanced_job(request: web.Request, state: State, batches: BatchState) -> Job | web.Response:
    """The batch the path names, brought up to the clock; a 404 when there is none."""
    job = batches.jobs.get(request.match_info["id"])
    if job is None:
        return _refused(state, 404, f"No such Batch object: {request.match_info['id']}")
    advance(state, batches, job)
    return job


@_authorized
async def _retrieve(request: web.Request, state: State, batches: BatchState) -> web.StreamResponse:
    batches.polls += 1
    await _hold(request, "poll")
    job = _advanced_job(request, state, batches)
    if not isinstance(job, Job):
        return job
    return json_reply(state, 200, job.view())


@_authorized
async def _list_batches(
    request: web.Request, state: State, batches: BatchState
) -> web.StreamResponse:
    views = []
    for job in reversed(batches.jobs.values()):
        advance(state, batches, job)
        views.append(job.view())
    return json_reply(state, 200, _page(views, request, 20))


@_authorized
async def _cancel(request: web.Request, state: State, batches: BatchState) -> web.StreamResponse:
    job = _advanced_job(request, state, batches)
    if not isinstance(job, Job):
        return job
    if job.status in TERMINAL:
        return _refused(state, 400, f"Cannot cancel a batch with status {job.status}.")
    if job.cancel_at is None:
        job.cancel_at = state.now()
        job.status = "cancelling"
        job.times["cancelling"] = int(time.time())
    return json_reply(state, 200, job.view())


async def _audit(request: web.Request) -> web.Response:
    return web.json_response(request.app[BATCH].audit())

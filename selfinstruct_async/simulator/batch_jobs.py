"""The simulated Batch API's files and batches, and a batch's lifecycle on the loop clock.

A batch moves ``validating -> in_progress -> finalizing -> completed`` over
``batch_seconds`` of loop time (10 %, 80 %, 10 %). Its lines are answered while it is in
progress, at an even rate, by the same code that answers ``/v1/completions`` and
``/v1/chat/completions`` (the responder, the usage and the cached prompt tokens come out
identical). :func:`advance` brings a batch to where the clock says it is; the routes in
:mod:`.batch_api` call it when somebody looks (a poll or a listing), so no background
task runs. A share ``batch_error_rate`` of the lines goes to the error file with a 500.
A batch not finished within its window becomes ``expired``, a cancelled one
``cancelled``: the lines answered so far are in the output file and the rest in the
error file (``batch_expired``, ``batch_cancelled``), as OpenAI does.
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

from ..client.tokens import prompt_tokens
from .server import _answer, _parse_request
from .state import Call, State, error_body

ENDPOINTS = {"/v1/completions": False, "/v1/chat/completions": True}
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


def advance(state: State, batches: BatchState, job: Job) -> None:
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

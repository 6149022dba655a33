"""Batch mode's :class:`~.protocol.LLMClient`: requests go out through the OpenAI Batch API.

The stages run unchanged. :meth:`BatchClient.complete` queues the request and waits for
its answer; the queue goes out as one batch once no request arrived for a quiet time (the
``batch.quiet_seconds`` floor, or three times the longest gap between arrivals seen
while it filled, at most ten times the floor) or when it reaches the provider's limits
(``batch.max_requests``, ``batch.max_file_bytes``). The stages' workers (``batch.round_size``
generation prompts, ``batch.stage_requests`` classification and instance requests) may
all wait at once, so a round of generation prompts goes out together and the survivors'
classification and instance requests fill the next batches while new generation prompts
join them: the rounds overlap.

Crash safety, step by step (:mod:`~selfinstruct_async.checkpoint.batches_table`): a
batch's requests and local id are committed before anything is sent; the input file's
name and the batch's metadata carry the local id; the file id and the batch id are
committed as soon as they are known; the answers go into the request ledger in the
transaction that marks the batch collected, before any stage sees them. A resumed run
(:meth:`BatchClient.recover`) lists the provider's files and batches, takes those that
carry its local ids instead of sending them again, polls the batches it already paid for,
and lets the stages' requests wait on them. Generation prompts are sampled afresh, so the
answers to generation requests no live session took are handed out by
:meth:`BatchClient.unclaimed` for the pipeline to replay.

A request in an expired or cancelled batch that the provider never ran, or one the error
file says failed, is sent once more (``batch.resubmit``) in a later batch; after that it
fails like a streaming request whose retries ran out. Answers are priced at the batch
rate (:func:`~.pricing.request_cost` with ``batch=True``) and recorded in the
:class:`~.usage.UsageMeter` as the HTTP client does. Everything is counted
(``batch.*``, :mod:`selfinstruct_async.counters`); the counters and the usage snapshot
are committed with the batch's own commits, so a killed session's spend is not lost.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .. import counters as names
from ..checkpoint import batches_table as table
from ..checkpoint.store import Store
from ..config import BatchConfig, EndpointConfig
from ..errors import ConfigError, LLMError, RetriesExhausted
from ..run.counter_buffer import CounterBuffer
from .batch_files import (
    LineResult,
    endpoint_path,
    file_name,
    read_result_lines,
    request_fields,
    request_from,
    request_line,
)
from .batch_http import BatchAPI
from .batch_results import sort_results
from .pricing import request_cost
from .protocol import Completion, CompletionRequest, Usage
from .recording import request_key
from .tokens import reservation
from .usage import UsageMeter

log = logging.getLogger(__name__)

DB = Callable[..., Awaitable[Any]]
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# Metadata key naming the local id on the provider's side.
LOCAL_ID = "selfinstruct_local_id"


@dataclass
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    completion: Completion | None = None
    error: LLMError | None = None


@dataclass(frozen=True)
class _Queued:
    key: str
    request: CompletionRequest
    attempt: int
    line: str


class BatchClient:
    """Implements ``LLMClient`` over the Batch API; run :meth:`serve` beside the pipeline."""

    def __init__(
        self,
        endpoint: EndpointConfig,
        settings: BatchConfig,
        usage: UsageMeter,
        *,
        namespace: str,
        api_key: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.usage = usage
        self.namespace = namespace
        self.chat = endpoint.api == "chat"
        self.api = BatchAPI(endpoint, api_key)
        self._waiters: dict[str, list[_Waiter]] = {}
        self._open: dict[str, str] = {}  # request key -> local id of its open batch
        self._queue: dict[str, _Queued] = {}  # insertion-ordered
        self._queued_bytes = 0
        self._arrived = anyio.Event()
        self._last_arrival = -math.inf
        self._longest_gap = 0.0
        self._store: Store | None = None
        self._db: DB | None = None
        # The run's counters (a private buffer until recover() attaches the run's).
        self._counters = CounterBuffer()
        self._token = ""
        self._resumed: list[table.BatchRow] = []
        self._unclaimed: dict[str, list[CompletionRequest]] = {}
        self._found_files: dict[str, str] = {}  # file name -> file id
        self._found_batches: dict[str, dict[str, Any]] = {}  # local id -> batch object
        self._closed = False

    # -- wiring ---------------------------------------------------------------------------

    async def recover(self, store: Store, db: DB, counters: CounterBuffer | None = None) -> None:
        """Attach the run's checkpoint and read back what earlier sessions left open.

        Call once, before the pipeline starts. Open batches are looked up at the provider
        (by the local id in file names and batch metadata) when :meth:`serve` starts.
        """
        self._store, self._db = store, db
        if counters is not None:
            self._counters = counters
        conn = store.db
        self._token = await db(table.run_token, conn)
        self._resumed = await db(table.open_batches, conn)
        for row in self._resumed:
            for request in await db(table.requests_of, conn, row.local_id):
                self._open[request.key] = row.local_id
        for row in await db(table.latest_requests, conn):
            pending = row.outcome is None and row.key in self._open
            again = row.outcome in (table.FAILED, table.UNFINISHED) and (
                row.attempt <= self.settings.resubmit
            )
            if again and row.key not in self._open:
                self._enqueue(row.key, request_from(row.request), row.attempt + 1)
            if not row.claimed and (pending or again or row.outcome == table.ANSWERED):
                self._unclaimed.setdefault(row.stage, []).append(request_from(row.request))
        if self._resumed:
            log.info(
                "batch mode: %d batches of earlier sessions still open; polling them",
                len(self._resumed),
            )

    def unclaimed(self, stage: str) -> list[CompletionRequest]:
        """Requests of ``stage`` bought (or being bought) by earlier sessions that no live
        session took; each is handed out once. Their answers come from the ledger or wait
        for their batch like any request."""
        return self._unclaimed.pop(stage, [])

    async def claim(self, request: CompletionRequest) -> None:
        """Record that a stage took the answer to ``request`` (it will not be replayed)."""
        assert self._db is not None and self._store is not None
        await self._db(table.mark_claimed, self._store.db, [self.key(request)])

    def key(self, request: CompletionRequest) -> str:
        """The request's ledger key, which is also its ``custom_id``."""
        # Batch bodies carry no grammar: the runner's ledger keys leave the format out too.
        return request_key(request, self.namespace, answer_formats=False)

    # -- LLMClient ------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        """Queue ``request`` (unless an open batch holds it already) and wait for its answer."""
        if self._closed:
            raise LLMError("the batch client is closed")
        held, cost = 0, 0.0
        if self.usage.has_budget:
            # As the HTTP client does: hold the most this request may cost (at the batch
            # rate) while it waits, so a budget stops a run before a batch overspends it.
            reserved = reservation(request, chat=self.chat)
            held = reserved.total
            cost = request_cost(
                self.endpoint, Usage(reserved.prompt, reserved.completion), batch=True
            )
            self.usage.reserve(held, cost)  # raises BudgetExhausted
        key = self.key(request)
        waiter = _Waiter()
        waiters = self._waiters.setdefault(key, [])
        waiters.append(waiter)
        try:
            if key not in self._open and key not in self._queue:
                self._enqueue(key, request, 1)
            await waiter.done.wait()
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._waiters.get(key) is waiters:
                del self._waiters[key]
            if held or cost:
                self.usage.release(held, cost)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.completion is not None
        return waiter.completion

    async def aclose(self) -> None:
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self.api.aclose()

    # -- the queue ------------------------------------------------------------------------

    def _enqueue(self, key: str, request: CompletionRequest, attempt: int) -> None:
        line = request_line(key, request, self.endpoint.model, chat=self.chat)
        size = len(line.encode("utf-8")) + 1
        if size > self.settings.max_file_bytes:
            raise ConfigError(
                f"batch.max_file_bytes: one {request.stage} request takes {size} bytes, "
                f"more than the limit of {self.settings.max_file_bytes}"
            )
        self._queue[key] = _Queued(key, request, attempt, line)
        self._queued_bytes += size
        now = anyio.current_time()
        if self._queue and math.isfinite(self._last_arrival):
            self._longest_gap = max(self._longest_gap, now - self._last_arrival)
        self._last_arrival = now
        self._arrived.set()
        self._arrived = anyio.Event()

    def _full(self) -> bool:
        s = self.settings
        return len(self._queue) >= s.max_requests or self._queued_bytes >= s.max_file_bytes

    def _quiet(self) -> float:
        floor = self.settings.quiet_seconds
        return min(10 * floor, max(floor, 3 * self._longest_gap))

    def _take(self) -> list[_Queued]:
        """The next batch's requests: in arrival order, within both limits."""
        taken: list[_Queued] = []
        size = 0
        for item in list(self._queue.values()):
            line_size = len(item.line.encode("utf-8")) + 1
            if taken and (
                len(taken) >= self.settings.max_requests
                or size + line_size > self.settings.max_file_bytes
            ):
                break
            taken.append(item)
            size += line_size
            del self._queue[item.key]
        self._queued_bytes -= size
        if not self._queue:
            self._longest_gap = 0.0
            self._last_arrival = -math.inf
        return taken

    # -- the background -------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send queued requests as batches and drive every open batch; runs until cancelled."""
        if self._db is None:
            raise LLMError("batch client: recover() must attach the checkpoint before serve()")
        async with anyio.create_task_group() as tg:
            if self._resumed:
                await self._look_up_resumed()
            for row in self._resumed:
                tg.start_soon(self._drive, row, True)
            self._resumed = []
            task_status.started()
            await self._send_forever(tg)

    async def _look_up_resumed(self) -> None:
        """What the provider already holds of this run: files by name, batches by local id."""
        if any(row.state == "prepared" for row in self._resumed):
            async for item in self.api.files():
                name = item.get("filename")
                if isinstance(name, str) and name.startswith(f"selfinstruct-{self._token}-"):
                    self._found_files.setdefault(name, str(item.get("id")))
        if any(row.state in ("prepared", "uploaded") for row in self._resumed):
            async for item in self.api.batches():
                metadata = item.get("metadata")
                local = metadata.get(LOCAL_ID) if isinstance(metadata, dict) else None
                if isinstance(local, str) and local.startswith(self._token):
                    self._found_batches.setdefault(local, item)

    async def _send_forever(self, tg: TaskGroup) -> None:
        while True:
            while not self._queue:
                await self._arrived.wait()
            while not self._full():
                arrived = self._arrived
                with anyio.move_on_after(self._quiet()) as scope:
                    await arrived.wait()
                if scope.cancelled_caught:
                    break
            taken = self._take()
            row = await self._record(taken)
            tg.start_soon(self._drive, row, False)

    async def _record(self, taken: list[_Queued]) -> table.BatchRow:
        """Commit the batch and its requests: after this, nothing of it can be lost."""
        assert self._db is not None and self._store is not None
        conn = self._store.db
        seq = await self._db(table.next_seq, conn)
        local_id = f"{self._token}-{seq:06d}"
        rows = [
            (item.key, item.request.stage, request_fields(item.request), item.line, item.attempt)
            for item in taken
        ]
        size = sum(len(item.line.encode("utf-8")) + 1 for item in taken)
        path = endpoint_path(chat=self.chat)
        self._count(names.BATCH_REQUESTS_SUBMITTED, len(taken))
        # Counted when recorded, not when decided: a session killed in between decides
        # again on resume, and the request still goes out once.
        self._count(names.BATCH_RESUBMITTED, sum(1 for item in taken if item.attempt > 1))
        counted = self._counters.take()
        await self._db(table.record_batch, conn, local_id, seq, path, rows, size, counted)
        for item in taken:
            self._open[item.key] = local_id
        return table.BatchRow(local_id, seq, path, "prepared", None, None, None, len(taken))

    async def _drive(self, row: table.BatchRow, resumed: bool) -> None:
        """Upload, create, poll and collect one batch, from whatever step it reached."""
        assert self._db is not None and self._store is not None
        conn = self._store.db
        local_id, file_id, batch_id = row.local_id, row.file_id, row.batch_id
        requests = await self._db(table.requests_of, conn, local_id)
        if row.state == "prepared":
            name = file_name(local_id)
            found = self._found_files.get(name) if resumed else None
            if found is not None:
                file_id = found
                self._count(names.BATCH_FILES_FOUND, 1)
            else:
                content = "".join(r.body + "\n" for r in requests).encode("utf-8")
                file_id = str((await self.api.upload(name, content))["id"])
                self._count(names.BATCH_FILES_UPLOADED, 1)
            await self._db(table.set_uploaded, conn, local_id, file_id, self._counters.take())
        if row.state in ("prepared", "uploaded"):
            assert file_id is not None
            batch = self._found_batches.get(local_id) if resumed else None
            if batch is not None:
                self._count(names.BATCHES_FOUND, 1)
            else:
                batch = await self.api.create(file_id, row.endpoint, {LOCAL_ID: local_id})
                self._count(names.BATCHES_SUBMITTED, 1)
            batch_id = str(batch["id"])
            status = str(batch.get("status"))
            counted = self._counters.take()
            await self._db(table.set_submitted, conn, local_id, batch_id, status, counted)
        assert batch_id is not None
        batch = await self._poll(batch_id)
        await self._collect(local_id, batch, requests)

    async def _poll(self, batch_id: str) -> dict[str, Any]:
        """Ask for the batch's status every ``poll_seconds`` (the API has no other way)."""
        while True:
            batch = await self.api.retrieve(batch_id)
            self._count(names.BATCH_POLLS, 1)
            if batch.get("status") in TERMINAL:
                return batch
            await anyio.sleep(self.settings.poll_seconds)

    async def _collect(
        self, local_id: str, batch: Mapping[str, Any], requests: list[table.RequestRow]
    ) -> None:
        """Answers into the ledger (one commit), then to the waiting stages; the rest again."""
        assert self._db is not None and self._store is not None
        status = str(batch.get("status"))
        self._count(names.batch_status(status), 1)
        results = await self._read_results(batch)
        outcomes, ledger, answered, again = sorted_ = sort_results(
            requests, results, lambda key: bool(self._waiters.get(key))
        )
        for outcome, name in (
            (table.FAILED, names.BATCH_REQUESTS_FAILED),
            (table.UNFINISHED, names.BATCH_REQUESTS_UNFINISHED),
        ):
            if sorted_.count(outcome):  # no zero counter where the run had none
                self._count(name, sorted_.count(outcome))
        self._count(names.BATCH_REQUESTS_ANSWERED, len(answered))
        self._record_usage(answered)
        # Counters and the usage (what was paid) are committed with the answers, so a
        # session killed right after still accounts for them.
        twice = await self._db(
            _collect_into,
            self._store,
            local_id,
            status,
            outcomes,
            ledger,
            self._counters.take(),
            self.usage.snapshot(),
        )
        if twice:
            self._count(names.BATCH_BOUGHT_TWICE, twice)
        for row in requests:
            self._open.pop(row.key, None)
        for row, completion in answered:
            self._resolve(row.key, completion=completion)
        self._again(again)

    async def _read_results(self, batch: Mapping[str, Any]) -> dict[str, LineResult]:
        """The lines of the batch's error and output files by custom_id."""
        results: dict[str, LineResult] = {}
        for kind in ("error_file_id", "output_file_id"):  # an answer wins over an error
            file_id = batch.get(kind)
            if isinstance(file_id, str) and file_id:
                content = await self.api.content(file_id)
                source = f"batch {batch.get('id')} {kind.removesuffix('_file_id')} file"
                for line in read_result_lines(content, chat=self.chat, source=source):
                    results[line.custom_id] = line
        return results

    def _record_usage(self, answered: list[tuple[table.RequestRow, Completion]]) -> None:
        for row, completion in answered:
            cost = request_cost(self.endpoint, completion.usage, batch=True)
            self.usage.record_answer(row.stage, completion.usage, cost_usd=cost, batch=True)

    def _again(self, again: list[tuple[table.RequestRow, str]]) -> None:
        """Requests without an answer go into a next batch, or fail after ``resubmit``."""
        for row, problem in again:
            if row.attempt <= self.settings.resubmit and row.key not in self._queue:
                self._enqueue(row.key, request_from(row.request), row.attempt + 1)
            else:
                self.usage.record(row.stage, failures=1)
                message = f"{row.stage}: no answer after {row.attempt} batches ({problem})"
                self._resolve(row.key, error=RetriesExhausted(message, attempts=row.attempt))

    def _count(self, name: str, n: float = 1) -> None:
        self._counters.count(name, n)

    def _resolve(
        self, key: str, *, completion: Completion | None = None, error: LLMError | None = None
    ) -> None:
        for waiter in self._waiters.pop(key, []):
            waiter.completion, waiter.error = completion, error
            waiter.done.set()


def _collect_into(
    store: Store,
    local_id: str,
    status: str,
    outcomes: list[tuple[str, str, bool]],
    ledger: list[tuple[str, str, str]],
    counters: Mapping[str, float],
    usage: Mapping[str, Any],
) -> int:
    """Commit a batch's answers and outcomes (:func:`table.collect`); return those bought
    twice. The store may keep its ledger keys in memory (``Store.ledger_known``): it is
    told of the new answers too, or a resumed stage would not find them and buy them again.
    """
    twice = table.collect(store.db, local_id, status, outcomes, ledger, counters, usage)
    tell = getattr(store, "ledger_put_later", None)
    if tell is not None:
        for key, stage, completion in ledger:
            tell(key, stage, completion)  # already committed; the next commit ignores it
    return twice


def build_batch_client(
    endpoints: tuple[EndpointConfig, ...],
    settings: BatchConfig,
    usage: UsageMeter,
    *,
    namespace: str,
    environ: Mapping[str, str] = os.environ,
) -> BatchClient:
    """The batch client for the one configured endpoint; keys are read as for streaming."""
    usable = [e for e in endpoints if e.base_url]
    if len(usable) != 1:
        raise ConfigError(
            f"run.mode = batch: needs exactly one endpoint with a base_url, got {len(usable)}"
        )
    config = usable[0]
    if not config.base_url.startswith(("http://", "https://")):
        raise ConfigError("endpoints[0].base_url: must start with http:// or https://")
    key = environ.get(config.api_key_env) if config.api_key_env else None
    return BatchClient(config, settings, usage, namespace=namespace, api_key=key or None)

"""What every stage shares during one run: configuration, client, checkpoint, filters, pool."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from ..checkpoint.store import Store
from ..client.protocol import Completion, CompletionRequest, LLMClient
from ..client.usage import UsageMeter
from ..config import Config
from ..errors import LLMError, PermanentHTTPError, PromptRejected, RetriesExhausted
from ..filters import FilterChain
from ..plugins import Plugins
from ..prompts import PromptTemplates
from ..records import PendingTask, RejectionRecord, SeedTask
from .answer_guard import AnswerGuard
from .pool import Pool

log = logging.getLogger("selfinstruct_async")

R = TypeVar("R")
T = TypeVar("T")

# Statuses that say "this prompt" is wrong (too long for the context, say) rather than
# "this endpoint or key" is: skip the item and go on.
_PER_REQUEST_STATUSES = frozenset({400, 413, 422})

# The task-level rejection for a prompt the endpoint can never serve.
REQUEST_REFUSED = "request_refused"


class _TakenCounters(dict[str, float]):
    """Counter increments on their way into a store commit (see :meth:`RunContext.db`)."""


@dataclass(frozen=True)
class RequestFailed:
    """A request that got no answer. It decides nothing about its task.

    ``permanent`` when the endpoint refused this very prompt (too long, invalid): sending
    it again cannot help. Otherwise the failure was transient (retries exhausted during
    an outage) and the task waits for another try.
    """

    stage: str
    error: LLMError
    permanent: bool

    def reason(self) -> str:
        return f"permanent: the endpoint refused the {self.stage} request ({self.error})"


class RetryQueue(Generic[T]):
    """Tasks waiting ``delay`` seconds before they go back into their stage's stream.

    The delay is the same for all, so the queue is in due order and one feeder sleeps
    until the head is due: a computed wait, never a poll. Its length is bounded by the
    pool, which pauses generation while too many tasks wait (``Pool.max_deferred``).
    """

    def __init__(self, delay: float, on_resent: Callable[[], None]) -> None:
        self.delay = delay
        self._on_resent = on_resent
        self._due: deque[tuple[float, T]] = deque()
        self._added = anyio.Event()

    def __len__(self) -> int:
        return len(self._due)

    def add(self, item: T) -> None:
        self._due.append((anyio.current_time() + self.delay, item))
        self._added.set()

    async def feed(self, send: MemoryObjectSendStream[T]) -> None:
        """Send each item back once it is due; runs until cancelled."""
        async with send:
            while True:
                while not self._due:
                    self._added = anyio.Event()
                    await self._added.wait()
                due, item = self._due[0]
                await anyio.sleep_until(due)
                self._due.popleft()
                await send.send(item)
                self._on_resent()


@dataclass
class RunContext:
    """Shared state of one run; stages get it as their first argument."""

    config: Config
    seeds: list[SeedTask]
    client: LLMClient
    store: Store
    chain: FilterChain
    plugins: Plugins
    pool: Pool
    templates: PromptTemplates
    classification_demonstrations: list[tuple[str, bool]]
    usage: UsageMeter | None = None
    max_consecutive_failures: int = 20
    counters: dict[str, float] = field(default_factory=dict)
    _unflushed: dict[str, float] = field(default_factory=dict)
    _store_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    _consecutive_failures: int = 0
    queues: dict[str, MemoryObjectSendStream[Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    stopping: anyio.Event = field(default_factory=anyio.Event)
    in_flight: int = 0
    _idle: anyio.Event = field(default_factory=anyio.Event)
    # Tasks whose request failed, by the stage that retries them (set up by the pipeline).
    retries: dict[str, RetryQueue[PendingTask]] = field(default_factory=dict)
    # Useless answers so far per pending task, which picks the variant of its next prompt.
    useless_tries: dict[str, int] = field(default_factory=dict)
    guard: AnswerGuard = field(init=False)

    def __post_init__(self) -> None:
        run = self.config.run
        self.guard = AnswerGuard(run.max_useless_streak, run.max_useless_share, run.useless_window)

    def stop_requesting(self) -> None:
        """Graceful stop: no new request starts; those in flight finish and are recorded."""
        self.stopping.set()
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is in flight after :meth:`stop_requesting`."""
        await self._idle.wait()

    async def db(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a store call on a worker thread, one at a time: disk waits never stall the loop.

        Counters taken for the call go back to the unflushed ones when it does not commit
        (cancelled while waiting for its turn, or rolled back), so the final flush keeps them.
        """
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._store_limiter)
        except BaseException:
            for arg in args:
                if isinstance(arg, _TakenCounters):
                    for name, n in arg.items():
                        self._unflushed[name] = self._unflushed.get(name, 0) + n
            raise

    def count(self, name: str, n: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self._unflushed[name] = self._unflushed.get(name, 0) + n

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot of progress for ``/status``, metrics and the progress display."""
        pool = self.pool
        return {
            "run_dir": str(self.store.run_dir),
            "started": self.started,
            "target": pool.target,
            "accepted": pool.accepted,
            "pending": pool.pending,
            "undecided": pool.undecided,
            "generating": pool.generating,
            "deferred": pool.deferred,
            "in_flight": self.in_flight,
            "stopping": self.stopping.is_set(),
            "queues": {
                name: stream.statistics().current_buffer_used
                for name, stream in self.queues.items()
            },
            "counters": dict(self.counters),
            "usage": self.usage.snapshot() if self.usage is not None else {},
        }

    def checkpoint_meta(self) -> dict[str, Any]:
        """State committed with every task: token usage, so budgets hold across resumes."""
        return {"usage": self.usage.snapshot()} if self.usage is not None else {}

    def take_counters(self) -> dict[str, float]:
        """Counter increments not yet written; they ride along with the next store commit."""
        taken = _TakenCounters(self._unflushed)
        self._unflushed.clear()
        return taken

    async def complete(self, request: CompletionRequest) -> Completion | RequestFailed:
        """Complete ``request``, or say why this one request failed while the run goes on.

        A failure never stands for an answer: the caller leaves its task pending
        (:meth:`defer`) or, when the endpoint refused the prompt for good, rejects the
        task saying so. Too many failures in a row still end the run (an outage).
        """
        if self.stopping.is_set():
            await anyio.sleep_forever()  # cancelled once in-flight requests have drained
        self.count(f"requests.{request.stage}")
        self.in_flight += 1
        try:
            completion = await self.client.complete(request)
        except (RetriesExhausted, PromptRejected, PermanentHTTPError) as error:
            if isinstance(error, PermanentHTTPError) and error.status not in _PER_REQUEST_STATUSES:
                raise
            self.count(f"failed.{request.stage}")
            self._consecutive_failures += 1
            permanent = not isinstance(error, RetriesExhausted)
            if permanent:
                log.warning("%s request refused for good: %s", request.stage, error)
            else:
                log.warning("%s request failed, nothing decided: %s", request.stage, error)
            if self._consecutive_failures >= self.max_consecutive_failures:
                raise LLMError(
                    f"{self._consecutive_failures} requests failed in a row; last: {error}"
                ) from error
            return RequestFailed(request.stage, error, permanent)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self.stopping.is_set():
                self._idle.set()
        self._consecutive_failures = 0
        return completion

    def answered(self, stage: str, usable: bool, text: str) -> None:
        """Count an answer as usable or not; raises ``UselessAnswers`` past the run's limits."""
        if not usable:
            self.count(f"useless.{stage}")
        self.guard.record(stage, usable, text)

    def defer(self, stage: str, task: PendingTask, *, failed: bool = True) -> None:
        """Leave ``task`` pending and send it back to ``stage`` after ``run.retry_failed_after``.

        The checkpoint already says pending (nothing was committed for this request), so
        a run that stops meanwhile retries it on resume. ``deferred.<stage>`` counts the
        tasks deferred because their request failed (``useless.<stage>`` the others).
        """
        if failed:
            self.count(f"deferred.{stage}")
        self.pool.defer()
        self.retries[stage].add(task)

    async def reject_task(self, task: PendingTask, filter_name: str, reason: str) -> None:
        """Commit ``task`` as rejected by ``filter_name``, outside the instance filters."""
        record = RejectionRecord("task", filter_name, reason, task.instruction, task.id)
        self.useless_tries.pop(task.id, None)
        self.count(f"rejected.task.{filter_name}")
        await self.db(
            self.store.finish_task,
            task.id,
            None,
            [record],
            self.take_counters(),
            self.checkpoint_meta(),
        )
        self.pool.finish(None)
        self.plugins.candidate_rejected(record)

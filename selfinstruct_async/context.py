"""What every stage shares during one run: configuration, client, checkpoint, filters, pool."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .config import Config
from .errors import LLMError, PermanentHTTPError, PromptRejected, RetriesExhausted
from .filters import FilterChain
from .llm import Completion, CompletionRequest, LLMClient
from .plugins import Plugins
from .pool import Pool
from .prompts import PromptTemplates
from .records import SeedTask
from .store import Store
from .usage import UsageMeter

log = logging.getLogger("selfinstruct_async")

R = TypeVar("R")

# Statuses that say "this prompt" is wrong (too long for the context, say) rather than
# "this endpoint or key" is: skip the item and go on.
_PER_REQUEST_STATUSES = frozenset({400, 413, 422})


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

    def stop_requesting(self) -> None:
        """Graceful stop: no new request starts; those in flight finish and are recorded."""
        self.stopping.set()
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is in flight after :meth:`stop_requesting`."""
        await self._idle.wait()

    async def db(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a store call on a worker thread, one at a time: disk waits never stall the loop."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._store_limiter)

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
        taken = dict(self._unflushed)
        self._unflushed.clear()
        return taken

    async def complete(self, request: CompletionRequest) -> Completion | None:
        """Complete ``request``; ``None`` when this one request failed but the run can go on."""
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
            log.warning("%s request failed: %s", request.stage, error)
            if self._consecutive_failures >= self.max_consecutive_failures:
                raise LLMError(
                    f"{self._consecutive_failures} requests failed in a row; last: {error}"
                ) from error
            return None
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self.stopping.is_set():
                self._idle.set()
        self._consecutive_failures = 0
        return completion

"""What every stage shares during one run, built once and complete before the first stage.

Each piece has one job and its own module: :class:`~.stop.StopGate` (graceful stop),
:class:`~.failures.FailurePolicy` (which failed requests the run survives),
:class:`~.counter_buffer.CounterBuffer` (counters waiting for a commit),
:class:`~.store_calls.StoreCalls` (store calls off the event loop),
:class:`~.answer_guard.AnswerGuard` (useless answers). The context only holds them and
offers the few operations that combine them (:meth:`RunContext.complete`,
:meth:`RunContext.defer`, :meth:`RunContext.reject_task`). The runner wires it
(``runner.open_context``); the pipeline owns the streams between stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import counters as names
from ..checkpoint.store import Store
from ..client.protocol import Completion, CompletionRequest, LLMClient
from ..client.usage import UsageMeter
from ..config import Config
from ..demonstrations import InstanceDemonstrations
from ..filters import FilterChain
from ..plugins import Plugins
from ..prompts import PromptTemplates
from ..records import PendingTask, RejectionRecord, SeedTask
from .answer_guard import AnswerGuard
from .counter_buffer import CounterBuffer, TakenCounters
from .failures import SURVIVABLE, FailurePolicy, RequestFailed
from .once import Once
from .pool import Pool
from .retry_queue import RetryQueue
from .stop import StopGate
from .store_calls import StoreCalls

if TYPE_CHECKING:
    from ..stages.classifier import Classifier


@dataclass(frozen=True)
class RunContext:
    """Shared state of one run; stages get it as their first argument.

    ``client`` is the complete client the stages call (the request ledger wrapping the
    endpoints), built before the context. ``instance_demonstrations`` are read once per
    run (``instances.demonstrations_from``). ``started`` is wall-clock seconds.
    """

    config: Config
    seeds: list[SeedTask]
    templates: PromptTemplates
    classification_demonstrations: list[tuple[str, bool]]
    instance_demonstrations: InstanceDemonstrations
    client: LLMClient
    store: Store
    db: StoreCalls
    counters: CounterBuffer
    chain: FilterChain
    plugins: Plugins
    pool: Pool
    gate: StopGate
    failures: FailurePolicy
    guard: AnswerGuard
    usage: UsageMeter | None
    started: float
    # Useless answers so far per pending task, which picks the variant of its next prompt.
    useless_tries: dict[str, int] = field(default_factory=dict)
    # Stage 2's yes/no decider, calibrated by the first task that needs it.
    classifier: Once[Classifier] = field(default_factory=Once)

    def count(self, name: str, n: float = 1) -> None:
        """Add ``n`` to the counter ``name`` (built with :mod:`selfinstruct_async.counters`)."""
        self.counters.count(name, n)

    def take_counters(self, decision: Mapping[str, float] | None = None) -> TakenCounters:
        """Counter increments not yet written, and ``decision``: the counts of what the
        store commit they ride along with decides (dropped if that commit never happens)."""
        return self.counters.take(decision)

    def checkpoint_meta(self) -> dict[str, Any]:
        """State committed with every task: token usage, so budgets hold across resumes."""
        return {"usage": self.usage.snapshot()} if self.usage is not None else {}

    def status(self, queues: Mapping[str, int]) -> dict[str, Any]:
        """A JSON-able snapshot for ``/status``, metrics and the progress display.

        ``queues``: items waiting in each stream between stages (``Pipeline.queue_depths``).
        """
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
            "in_flight": self.gate.in_flight,
            "stopping": self.gate.stopping,
            "queues": dict(queues),
            "counters": dict(self.counters.totals),
            "usage": self.usage.snapshot() if self.usage is not None else {},
        }

    async def complete(self, request: CompletionRequest) -> Completion | RequestFailed:
        """Complete ``request``, or say why this one request failed while the run goes on.

        A failure never stands for an answer: the caller leaves its task pending
        (:meth:`defer`) or, when the endpoint refused the prompt for good, rejects the
        task saying so. Too many failures in a row still end the run (an outage).
        """
        async with self.gate.request():
            self.count(names.requests(request.stage))
            try:
                completion = await self.client.complete(request)
            except SURVIVABLE as error:
                if not self.failures.survivable(error):
                    raise
                self.count(names.failed(request.stage))
                return self.failures.failed(request.stage, error)
        self.failures.succeeded()
        return completion

    def answered(self, stage: str, usable: bool, text: str, *, replayed: bool = False) -> None:
        """Count an answer as usable or not; raises ``UselessAnswers`` past the run's limits.

        ``replayed``: the answer came from the request ledger (:attr:`Completion.replayed`).
        """
        if not usable:
            self.count(names.useless(stage))
        self.guard.record(stage, usable, text, replayed=replayed)

    def defer(
        self, retry: RetryQueue[PendingTask], task: PendingTask, *, failed: bool = True
    ) -> None:
        """Leave ``task`` pending and send it back to its stage after ``retry.delay``.

        The checkpoint already says pending (nothing was committed for this request), so
        a run that stops meanwhile retries it on resume. ``deferred.<stage>`` counts the
        tasks deferred because their request failed (``useless.<stage>`` the others).
        """
        if failed:
            self.count(names.deferred(retry.stage))
        self.pool.defer()
        retry.add(task)

    async def reject_task(self, task: PendingTask, filter_name: str, reason: str) -> None:
        """Commit ``task`` as rejected by ``filter_name``, outside the instance filters."""
        record = RejectionRecord("task", filter_name, reason, task.instruction, task.id)
        self.useless_tries.pop(task.id, None)
        await self.db(
            self.store.finish_task,
            task.id,
            None,
            [record],
            self.take_counters({names.rejected("task", filter_name): 1}),
            self.checkpoint_meta(),
        )
        self.pool.finish(None)
        self.plugins.candidate_rejected(record)

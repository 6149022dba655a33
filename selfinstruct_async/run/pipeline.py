"""Wires the stages together with bounded streams and runs them until the target is reached.

    generate_instructions xW ─► filter_instructions ─► identify_classification xW
        ─► generate_instances xW ─► filter_instances (commit)

There is no barrier between rounds: each stage works on whatever has arrived, and
later generation prompts sample from tasks accepted moments ago. Tasks that were
pending when a previous run stopped re-enter at classification.

In batch mode (``run.mode = "batch"``) every request waits for its batch, so the stages
get as many workers as a round may hold (``runner.batch_workers``), and generation
answers that earlier sessions bought but never processed are replayed first
(:mod:`.batch_replay`).

A task whose classification or instance request failed is not decided: it waits in
that stage's retry queue for ``run.retry_failed_after`` seconds and re-enters the
stage's input stream (and, if the run stops first, it is still pending on resume).

:class:`Pipeline` creates the streams and retry queues once, hands each stage its ends,
closes them all on exit, and reports how full they are (:meth:`Pipeline.queue_depths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .. import counters as names
from ..client.protocol import CompletionRequest
from ..records import Candidate, Instance, PendingTask
from ..stages import (
    filter_instances,
    filter_instructions,
    generate_instances,
    generate_instructions,
    identify_classification,
)
from ..stages.generate_instructions import candidates_of
from .batch_replay import Claim, count_replays, replay_generations
from .context import RunContext
from .hand_off import hand_over
from .retry_queue import RetryQueue

T = TypeVar("T")
Generated = tuple[PendingTask, tuple[Instance, ...]]


@dataclass(frozen=True)
class Resumed:
    """Work a previous session left unfinished, read back from the checkpoint."""

    pending: Sequence[PendingTask] = ()
    generations: Sequence[tuple[int, list[str]]] = ()
    # Batch mode: generation requests earlier sessions bought and no stage took, and how
    # to record that one was taken.
    replay: Sequence[CompletionRequest] = ()
    claim: Claim | None = None

    def candidates(self) -> list[Candidate]:
        return [
            c
            for number, items in self.generations
            for c in candidates_of(number, items, resumed=True)
        ]


async def _feed(items: Sequence[T], send: MemoryObjectSendStream[T]) -> None:
    async with send:
        for item in items:
            await hand_over(send, item)


class Pipeline:
    """The stages of one run and the bounded streams between them.

    Use as ``async with Pipeline(ctx, resumed) as pipeline: await pipeline.run()``: the
    streams exist from entry to exit, so :meth:`queue_depths` can be read throughout.
    """

    def __init__(self, ctx: RunContext, resumed: Resumed = Resumed()) -> None:
        self.ctx = ctx
        self.resumed = resumed
        size = ctx.config.run.queue_size
        self.candidates = anyio.create_memory_object_stream[Candidate](size)
        self.pending = anyio.create_memory_object_stream[PendingTask](size)
        self.labelled = anyio.create_memory_object_stream[PendingTask](size)
        self.generated = anyio.create_memory_object_stream[Generated](size)
        delay = ctx.config.run.retry_failed_after
        self.retry_classification = RetryQueue[PendingTask](
            names.IDENTIFY_CLASSIFICATION, delay, ctx.pool.undefer
        )
        self.retry_instances = RetryQueue[PendingTask](
            names.GENERATE_INSTANCES, delay, ctx.pool.undefer
        )

    def queue_depths(self) -> dict[str, int]:
        """Items waiting in each stream, by the name ``/status`` shows."""
        return {
            "candidates": self.candidates[0].statistics().current_buffer_used,
            "pending": self.pending[0].statistics().current_buffer_used,
            "labelled": self.labelled[0].statistics().current_buffer_used,
            "generated": self.generated[0].statistics().current_buffer_used,
        }

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Closing is idempotent: the stages closed most ends already.
        for send, receive in (self.candidates, self.pending, self.labelled, self.generated):
            send.close()
            receive.close()

    async def run(self) -> None:
        """Run every stage concurrently; return once ``ctx.pool`` holds the target."""
        ctx = self.ctx
        if ctx.pool.done:
            return
        candidates_tx, candidates_rx = self.candidates
        pending_tx, pending_rx = self.pending
        labelled_tx, labelled_rx = self.labelled
        generated_tx, generated_rx = self.generated
        retry_classification, retry_instances = self.retry_classification, self.retry_instances
        replay = self.resumed.replay if self.resumed.claim is not None else ()
        count_replays(ctx, replay)
        async with anyio.create_task_group() as tg:
            # The original ends close once every worker holds a clone, so each stream ends
            # when the last worker sending into it does.
            async with (
                candidates_tx,
                pending_tx,
                pending_rx,
                labelled_tx,
                labelled_rx,
                generated_tx,
            ):
                for _ in range(ctx.config.generation.workers):
                    tg.start_soon(generate_instructions, ctx, candidates_tx.clone())
                tg.start_soon(_feed, self.resumed.candidates(), candidates_tx.clone())
                if replay and self.resumed.claim is not None:
                    tg.start_soon(
                        replay_generations, ctx, replay, self.resumed.claim, candidates_tx.clone()
                    )
                tg.start_soon(filter_instructions, ctx, candidates_rx, pending_tx.clone())
                tg.start_soon(_feed, self.resumed.pending, pending_tx.clone())
                tg.start_soon(retry_classification.feed, pending_tx.clone())
                tg.start_soon(retry_instances.feed, labelled_tx.clone())
                for _ in range(ctx.config.classification.workers):
                    tg.start_soon(
                        identify_classification,
                        ctx,
                        pending_rx.clone(),
                        labelled_tx.clone(),
                        retry_classification,
                    )
                for _ in range(ctx.config.instances.workers):
                    tg.start_soon(
                        generate_instances,
                        ctx,
                        labelled_rx.clone(),
                        generated_tx.clone(),
                        retry_instances,
                    )
                # filter_instances returns once the target is met, while instance workers
                # may still be sending: the original receive end stays open until the run
                # is cancelled (__aexit__), so they are cancelled, never broken.
                tg.start_soon(filter_instances, ctx, generated_rx.clone())
            await ctx.pool.wait_until_done()
            tg.cancel_scope.cancel()

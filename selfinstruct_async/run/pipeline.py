"""Wires the stages together with bounded streams and runs them until the target is reached.

    generate_instructions xW ─► filter_instructions ─► identify_classification xW
        ─► generate_instances xW ─► filter_instances (commit)

There is no barrier between rounds: each stage works on whatever has arrived, and
later generation prompts sample from tasks accepted moments ago. Tasks that were
pending when a previous run stopped re-enter at classification.

A task whose classification or instance request failed is not decided: it waits in
that stage's retry queue for ``run.retry_failed_after`` seconds and re-enters the
stage's input stream (and, if the run stops first, it is still pending on resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ..records import Candidate, Instance, PendingTask
from ..stages import (
    filter_instances,
    filter_instructions,
    generate_instances,
    generate_instructions,
    identify_classification,
)
from ..stages.generate_instances import STAGE as INSTANCES
from ..stages.generate_instructions import candidates_of
from ..stages.identify_classification import STAGE as CLASSIFICATION
from .context import RetryQueue, RunContext

T = TypeVar("T")


@dataclass(frozen=True)
class Resumed:
    """Work a previous session left unfinished, read back from the checkpoint."""

    pending: Sequence[PendingTask] = ()
    generations: Sequence[tuple[int, list[str]]] = ()

    def candidates(self) -> list[Candidate]:
        return [
            c
            for number, items in self.generations
            for c in candidates_of(number, items, resumed=True)
        ]


async def _feed(items: Sequence[T], send: MemoryObjectSendStream[T]) -> None:
    async with send:
        for item in items:
            await send.send(item)


async def run_pipeline(ctx: RunContext, resumed: Resumed = Resumed()) -> None:
    """Run every stage concurrently; return once ``ctx.pool`` holds the target."""
    if ctx.pool.done:
        return
    size = ctx.config.run.queue_size
    candidates_tx, candidates_rx = anyio.create_memory_object_stream[Candidate](size)
    pending_tx, pending_rx = anyio.create_memory_object_stream[PendingTask](size)
    labelled_tx, labelled_rx = anyio.create_memory_object_stream[PendingTask](size)
    generated_tx, generated_rx = anyio.create_memory_object_stream[
        tuple[PendingTask, tuple[Instance, ...]]
    ](size)

    ctx.queues.update(
        candidates=candidates_tx, pending=pending_tx, labelled=labelled_tx, generated=generated_tx
    )
    ctx.pool.max_deferred = size
    delay = ctx.config.run.retry_failed_after
    retry_classification = RetryQueue[PendingTask](delay, ctx.pool.undefer)
    retry_instances = RetryQueue[PendingTask](delay, ctx.pool.undefer)
    ctx.retries.update({CLASSIFICATION: retry_classification, INSTANCES: retry_instances})
    async with anyio.create_task_group() as tg:
        async with candidates_tx, pending_tx, pending_rx, labelled_tx, labelled_rx, generated_tx:
            for _ in range(ctx.config.generation.workers):
                tg.start_soon(generate_instructions, ctx, candidates_tx.clone())
            tg.start_soon(_feed, resumed.candidates(), candidates_tx.clone())
            tg.start_soon(filter_instructions, ctx, candidates_rx, pending_tx.clone())
            tg.start_soon(_feed, resumed.pending, pending_tx.clone())
            tg.start_soon(retry_classification.feed, pending_tx.clone())
            tg.start_soon(retry_instances.feed, labelled_tx.clone())
            for _ in range(ctx.config.classification.workers):
                tg.start_soon(identify_classification, ctx, pending_rx.clone(), labelled_tx.clone())
            for _ in range(ctx.config.instances.workers):
                tg.start_soon(generate_instances, ctx, labelled_rx.clone(), generated_tx.clone())
            tg.start_soon(filter_instances, ctx, generated_rx)
        await ctx.pool.wait_until_done()
        tg.cancel_scope.cancel()

"""Stage 1b: the one place that owns the pool, so check-then-add never races."""

from __future__ import annotations

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import counters as names
from ..records import Candidate, PendingTask, RejectionRecord
from ..run.context import RunContext


async def filter_instructions(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[Candidate],
    send: MemoryObjectSendStream[PendingTask],
) -> None:
    """Run instruction filters in order; survivors join the pool and go on to classification."""
    async with receive, send:
        async for candidate in receive:
            if candidate.resumed and await ctx.db(ctx.store.is_decided, candidate.id):
                ctx.pool.decided(False)
            else:
                await _decide(ctx, candidate, send)
            if candidate.last:
                await ctx.db(ctx.store.mark_generation_processed, candidate.request_no)


async def _decide(
    ctx: RunContext, candidate: Candidate, send: MemoryObjectSendStream[PendingTask]
) -> None:
    rejection = await ctx.chain.check_instruction(candidate.instruction)
    if rejection is not None:
        record = RejectionRecord(
            level="instruction",
            filter=rejection.filter,
            reason=rejection.reason,
            text=candidate.instruction,
            task_id=candidate.id,
        )
        decided = {names.rejected("instruction", rejection.filter): 1}
        await ctx.db(ctx.store.add_rejections, [record], ctx.take_counters(decided))
        ctx.pool.decided(False)
        ctx.plugins.candidate_rejected(record)
        return
    pending = PendingTask(id=candidate.id, instruction=candidate.instruction)
    decided = {names.INSTRUCTIONS_ACCEPTED: 1}
    await ctx.db(ctx.store.add_pending, pending, candidate.request_no, ctx.take_counters(decided))
    # Remembered once stored: the live pool never holds an instruction a resume would not
    # read back. This task is the only one checking, so nothing is checked in between.
    ctx.chain.remember(candidate.instruction)
    ctx.pool.decided(True, candidate.instruction)
    await send.send(pending)

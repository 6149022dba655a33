"""Stage 1b: the one place that owns the pool, so check-then-add never races."""

from __future__ import annotations

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..context import RunContext
from ..records import Candidate, PendingTask, RejectionRecord


def task_id(candidate: Candidate) -> str:
    return f"si-{candidate.request_no}-{candidate.position}"


async def filter_instructions(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[Candidate],
    send: MemoryObjectSendStream[PendingTask],
) -> None:
    """Run instruction filters in order; survivors join the pool and go on to classification."""
    async with receive, send:
        async for candidate in receive:
            rejection = await ctx.chain.check_instruction(candidate.instruction)
            if rejection is not None:
                record = RejectionRecord(
                    level="instruction",
                    filter=rejection.filter,
                    reason=rejection.reason,
                    text=candidate.instruction,
                )
                ctx.count(f"rejected.instruction.{rejection.filter}")
                await ctx.db(ctx.store.add_rejections, [record], ctx.take_counters())
                ctx.plugins.candidate_rejected(record)
                continue
            pending = PendingTask(id=task_id(candidate), instruction=candidate.instruction)
            ctx.chain.remember(candidate.instruction)
            ctx.count("instructions.accepted")
            await ctx.db(ctx.store.add_pending, pending, candidate.request_no)
            ctx.pool.add_pending()
            await send.send(pending)

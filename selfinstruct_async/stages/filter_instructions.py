"""Stage 1b: the one place that owns the pool, so check-then-add never races.

Rejections are the common outcome (most candidates of a long run are too similar to the
pool), so they are not committed one by one: a response's rejections wait in memory and go
into the checkpoint with the next candidate of that response that passes, or with the
response's end (which rides with the last candidate's commit when that one passes). A
decision is committed together with its counters or not at all, and the pool, the
counters and the plugins hear of it only once it is committed; rejections never
change what later candidates are checked against, so deciding before committing them
decides the same. A crash loses only uncommitted decisions, of a response the checkpoint
still holds as unprocessed, which a resume filters again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import counters as names
from ..records import Candidate, PendingTask, RejectionRecord
from ..run.context import RunContext
from ..run.hand_off import Received, hand_over


@dataclass
class _Undecided:
    """Rejections of one generation response that are not committed yet."""

    records: list[RejectionRecord] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)
    already: int = 0  # candidates a previous session decided (resume)


async def filter_instructions(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[Candidate],
    send: MemoryObjectSendStream[PendingTask],
) -> None:
    """Run instruction filters in order; survivors join the pool and go on to classification."""
    # Several generation workers feed this stream, so responses interleave: by request number.
    waiting: dict[int, _Undecided] = {}
    async with receive, send:
        async for candidate in Received(receive):
            batch = waiting.setdefault(candidate.request_no, _Undecided())
            ended = False  # whether the response's end is committed already
            if candidate.resumed and await ctx.db(ctx.store.is_decided, candidate.id):
                batch.already += 1
            else:
                ended = await _decide(ctx, candidate, batch, send)
            if candidate.last:
                del waiting[candidate.request_no]
                if not ended:
                    await _commit(ctx, candidate.request_no, batch, None, processed=True)


async def _decide(
    ctx: RunContext,
    candidate: Candidate,
    batch: _Undecided,
    send: MemoryObjectSendStream[PendingTask],
) -> bool:
    """Decide ``candidate``; True when that committed the end of its response too."""
    rejection = await ctx.chain.check_instruction(candidate.instruction)
    if rejection is not None:
        batch.records.append(
            RejectionRecord(
                level="instruction",
                filter=rejection.filter,
                reason=rejection.reason,
                text=candidate.instruction,
                task_id=candidate.id,
            )
        )
        name = names.rejected("instruction", rejection.filter)
        batch.counts[name] = batch.counts.get(name, 0) + 1
        return False
    pending = PendingTask(id=candidate.id, instruction=candidate.instruction)
    # The last candidate of a response commits the response's end with it: one commit.
    await _commit(ctx, candidate.request_no, batch, pending, processed=candidate.last)
    # Remembered once stored: the live pool never holds an instruction a resume would not
    # read back. This task is the only one checking, so nothing is checked in between.
    ctx.chain.remember(candidate.instruction)
    ctx.pool.decided(True, candidate.instruction)
    await hand_over(send, pending)
    return candidate.last


async def _commit(
    ctx: RunContext,
    request_no: int,
    batch: _Undecided,
    pending: PendingTask | None,
    *,
    processed: bool,
) -> None:
    """Commit ``batch``'s rejections (and ``pending``), then report the rejections."""
    decided = dict(batch.counts)
    if pending is not None:
        decided[names.INSTRUCTIONS_ACCEPTED] = 1
    records, already = batch.records, batch.already
    if records or pending is not None or processed:
        await ctx.db(
            ctx.store.add_decisions,
            records,
            pending,
            request_no,
            ctx.take_counters(decided),
            processed,
        )
    batch.records, batch.counts, batch.already = [], {}, 0
    for _ in range(already):
        ctx.pool.decided(False)
    for record in records:
        ctx.pool.decided(False)
        ctx.plugins.candidate_rejected(record)

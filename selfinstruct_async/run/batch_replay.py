"""Batch mode on resume: generation answers earlier sessions paid for, fed to the filters.

Classification and instance prompts are deterministic per task, so a resumed stage asks
the same question again and the request ledger (or the batch still holding it) answers.
Generation prompts are sampled per request number, which never repeats: a new session
would never ask an earlier prompt again, and the answer bought for it would be lost. So
the pipeline replays them here, each exactly as the generation stage would have handled
it (the same parser, the same counters), and marks it claimed once its instructions are
checkpointed as a generation.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from anyio.streams.memory import MemoryObjectSendStream

from .. import counters as names
from ..client.protocol import Completion, CompletionRequest
from ..records import Candidate
from ..stages.generate_instructions import candidates_of, read_instructions
from .context import RunContext
from .failures import RequestFailed
from .hand_off import hand_over

STAGE = names.GENERATE_INSTRUCTIONS
# The numbered demonstrations of an instruction prompt (prompts.build_instruction_prompt).
_NUMBERED = re.compile(r"^\d+\. (.+)$", re.MULTILINE)

Claim = Callable[[CompletionRequest], Awaitable[None]]


def demonstrations_in(prompt: str) -> list[str]:
    """The instructions an instruction prompt lists, in order."""
    return _NUMBERED.findall(prompt)


def parse_replayed(ctx: RunContext, request: CompletionRequest, result: Completion) -> list[str]:
    """The instructions in ``result``, read as the generation stage reads an answer."""
    return read_instructions(ctx.config.generation, result, demonstrations_in(request.prompt))


def count_replays(ctx: RunContext, requests: Sequence[CompletionRequest]) -> None:
    """Count the replayed generations as under way; call before the generators start."""
    for _ in requests:
        ctx.pool.start_generation()


async def replay_generations(
    ctx: RunContext,
    requests: Sequence[CompletionRequest],
    claim: Claim,
    send: MemoryObjectSendStream[Candidate],
) -> None:
    """Wait for each earlier generation answer and pass its instructions on as candidates.

    The pool counts every one of them as a generation under way from the start
    (:func:`count_replays`, before any generator asks whether more are wanted), so a
    resumed session does not send a new round while the old one is still to come.
    """
    async with send:
        for request in requests:
            items: list[str] = []
            try:
                result = await ctx.complete(request)
                if not isinstance(result, RequestFailed):
                    items = parse_replayed(ctx, request, result)
            finally:
                ctx.pool.end_generation(len(items))
            if isinstance(result, RequestFailed):
                continue
            ctx.count(names.BATCH_REPLAYED)
            ctx.count(names.INSTRUCTIONS_GENERATED, len(items))
            if not items:
                ctx.count(names.INSTRUCTIONS_UNPARSEABLE)
            ctx.answered(STAGE, bool(items), result.text)
            request_no = await ctx.db.light(ctx.store.next_request_no)
            await ctx.db.light(ctx.store.add_generation, request_no, items)
            await claim(request)
            for candidate in candidates_of(request_no, items):
                await hand_over(send, candidate)

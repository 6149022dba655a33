"""Stage 1: ask the model to continue a numbered list of demonstration instructions.

A failed request yields no candidates and decides nothing; an answer with no
instruction in it counts as useless for the run's guard.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from anyio.streams.memory import MemoryObjectSendStream

from .. import counters as names
from ..answer_formats import NUMBERED_LIST, usable_format
from ..client.protocol import Completion
from ..config import GenerationConfig
from ..paper_parsers import parse_instructions_paper
from ..parsing import parse_instructions
from ..prompts import build_instruction_prompt
from ..records import Candidate
from ..run.context import RunContext
from ..run.failures import RequestFailed
from ..run.hand_off import hand_over

STAGE = names.GENERATE_INSTRUCTIONS


def request_rng(run_seed: int, request_no: int) -> random.Random:
    """Sampling depends on the request number, which never repeats, so resumes never replay."""
    return random.Random(f"{run_seed}:{request_no}")


async def generate_instructions(ctx: RunContext, send: MemoryObjectSendStream[Candidate]) -> None:
    """Keep generating candidate instructions while the pool wants more tasks."""
    cfg = ctx.config.generation
    async with send:
        while True:
            await ctx.pool.wait_until_wanted()
            request_no = await ctx.db.light(ctx.store.next_request_no)
            rng = request_rng(ctx.config.run.seed, request_no)
            demonstrations = ctx.pool.sample_demonstrations(
                rng, cfg.demonstrations, cfg.machine_demonstrations
            )
            prompt = build_instruction_prompt(
                demonstrations,
                ctx.templates,
                cfg.max_number,
                classification_only=cfg.classification_only,
                stops=cfg.stops,
            )
            ctx.pool.start_generation()
            items: list[str] = []
            try:
                answer_format = usable_format(NUMBERED_LIST, ctx.templates)
                result = await ctx.complete(prompt.request(STAGE, cfg, answer_format=answer_format))
                if not isinstance(result, RequestFailed):
                    items = read_instructions(cfg, result, demonstrations)
            finally:
                ctx.pool.end_generation(len(items))
            if isinstance(result, RequestFailed):
                continue
            ctx.count(names.INSTRUCTIONS_GENERATED, len(items))
            if not items:
                ctx.count(names.INSTRUCTIONS_UNPARSEABLE)
            ctx.answered(STAGE, bool(items), result.text, replayed=result.replayed)
            await ctx.db.light(ctx.store.add_generation, request_no, items)
            for candidate in candidates_of(request_no, items):
                await hand_over(send, candidate)


def read_instructions(
    cfg: GenerationConfig, result: Completion, demonstrations: Sequence[str]
) -> list[str]:
    """The instructions in an answer to a prompt listing ``demonstrations``, read by the
    configured parser (``generation.parser``); batch mode's replay reads with it too."""
    if cfg.parser == "paper":
        return parse_instructions_paper(
            result.text,
            result.finish_reason,
            on_truncated=cfg.on_truncated,
            capitalize=cfg.capitalize,
        )
    return parse_instructions(
        result.text,
        len(demonstrations) + 1,
        result.finish_reason,
        cfg.max_number,
        known=demonstrations,
        on_truncated=cfg.on_truncated,
        capitalize=cfg.capitalize,
    )


def candidates_of(request_no: int, items: list[str], *, resumed: bool = False) -> list[Candidate]:
    last = len(items) - 1
    return [
        Candidate(item, request_no, position, last=position == last, resumed=resumed)
        for position, item in enumerate(items)
    ]

"""Stage 3: instances, output-first for classification tasks and input-first otherwise.

A failed request leaves the task pending for another try (nothing was answered, so
nothing is decided); a prompt the endpoint refuses for good rejects the task, saying so.
An answer that parses to no instance is the model's answer: the task is rejected by the
instance filters, and the answer counts as useless for the run's guard.
"""

from __future__ import annotations

import random

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import counters as names
from ..answer_formats import INPUT_FIRST, OUTPUT_FIRST, usable_format
from ..client.protocol import Completion
from ..paper_parsers import parse_instances_paper
from ..parsing import parse_instances
from ..prompts import build_instance_prompt
from ..records import Instance, PendingTask
from ..run.context import RunContext
from ..run.failures import REQUEST_REFUSED, RequestFailed
from ..run.hand_off import Received, hand_over
from ..run.retry_queue import RetryQueue

STAGE = names.GENERATE_INSTANCES
_UNUSED = random.Random(0)


async def generate_instances(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[PendingTask],
    send: MemoryObjectSendStream[tuple[PendingTask, tuple[Instance, ...]]],
    retry: RetryQueue[PendingTask],
) -> None:
    """Ask for up to ``max_instances`` instances of each task and pass them on unfiltered.

    A task whose request failed goes to ``retry``, which sends it back later.
    """
    cfg = ctx.config.instances
    async with receive, send:
        async for task in Received(receive):
            is_classification = bool(task.is_classification)
            demonstrations = ctx.instance_demonstrations.pick(
                is_classification,
                # Fixed demonstrations use no generator: none is seeded (a SHA-512 each).
                _UNUSED
                if ctx.instance_demonstrations.fixed
                else random.Random(f"{ctx.config.run.seed}:{task.id}"),
            )
            prompt = build_instance_prompt(
                task.instruction,
                is_classification,
                demonstrations,
                ctx.templates,
                cfg.max_instances,
                stops=cfg.stops,
            )
            answer_format = usable_format(
                OUTPUT_FIRST if is_classification else INPUT_FIRST, ctx.templates
            )
            result = await ctx.complete(prompt.request(STAGE, cfg, answer_format=answer_format))
            if isinstance(result, RequestFailed):
                if result.permanent:
                    await ctx.reject_task(task, REQUEST_REFUSED, result.reason())
                else:
                    ctx.defer(retry, task)
                continue
            instances = read_instances(ctx, result, is_classification)
            ctx.answered(STAGE, bool(instances), result.text, replayed=result.replayed)
            ctx.count(names.INSTANCES_GENERATED, len(instances))
            await hand_over(send, (task, tuple(instances)))


def read_instances(ctx: RunContext, result: Completion, is_classification: bool) -> list[Instance]:
    """The instances an answer holds, read by the configured parser (``instances.parser``)."""
    cfg = ctx.config.instances
    # Generous: the cap to max_instances comes after the instance filters, which must see
    # every instance the model wrote (the paper's order); the bound only keeps a runaway
    # answer from flooding them.
    bound = max(10 * cfg.max_instances, 20)
    if cfg.parser == "paper":
        return parse_instances_paper(
            result.text, is_classification, result.finish_reason, templates=ctx.templates
        )[:bound]
    return parse_instances(
        result.text, is_classification, result.finish_reason, bound, templates=ctx.templates
    )

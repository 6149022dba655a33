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
from ..parsing import parse_instances
from ..prompts import build_instance_prompt, select_instance_demonstrations
from ..records import Instance, PendingTask
from ..run.context import RunContext
from ..run.failures import REQUEST_REFUSED, RequestFailed
from ..run.retry_queue import RetryQueue

STAGE = names.GENERATE_INSTANCES


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
        async for task in receive:
            is_classification = bool(task.is_classification)
            rng = random.Random(f"{ctx.config.run.seed}:{task.id}")
            demonstrations = select_instance_demonstrations(
                ctx.seeds, is_classification, rng, cfg.demonstrations
            )
            prompt = build_instance_prompt(
                task.instruction,
                is_classification,
                demonstrations,
                ctx.templates,
                cfg.max_instances,
            )
            result = await ctx.complete(prompt.request(STAGE, cfg))
            if isinstance(result, RequestFailed):
                if result.permanent:
                    await ctx.reject_task(task, REQUEST_REFUSED, result.reason())
                else:
                    ctx.defer(retry, task)
                continue
            instances = parse_instances(
                result.text,
                is_classification,
                result.finish_reason,
                cfg.max_instances,
                templates=ctx.templates,
            )
            ctx.answered(STAGE, bool(instances), result.text)
            ctx.count(names.INSTANCES_GENERATED, len(instances))
            await send.send((task, tuple(instances)))

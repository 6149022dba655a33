"""Stage 3: instances, output-first for classification tasks and input-first otherwise."""

from __future__ import annotations

import random

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..context import RunContext
from ..parsing import parse_instances
from ..prompts import build_instance_prompt, select_instance_demonstrations
from ..records import Instance, PendingTask

STAGE = "generate_instances"


async def generate_instances(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[PendingTask],
    send: MemoryObjectSendStream[tuple[PendingTask, tuple[Instance, ...]]],
) -> None:
    """Ask for up to ``max_instances`` instances of each task and pass them on unfiltered."""
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
            completion = await ctx.complete(prompt.request(STAGE, cfg))
            instances: list[Instance] = []
            if completion is not None:
                instances = parse_instances(
                    completion.text,
                    is_classification,
                    completion.finish_reason,
                    cfg.max_instances,
                    templates=ctx.templates,
                )
            ctx.count("instances.generated", len(instances))
            await send.send((task, tuple(instances)))

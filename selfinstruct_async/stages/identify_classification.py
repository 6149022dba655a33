"""Stage 2: a few-shot yes/no question, is this a classification task with finite labels?"""

from __future__ import annotations

from dataclasses import replace

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..context import RunContext
from ..parsing import parse_classification
from ..prompts import build_classification_prompt
from ..records import PendingTask

STAGE = "identify_classification"


async def identify_classification(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[PendingTask],
    send: MemoryObjectSendStream[PendingTask],
) -> None:
    """Label each pending task; answers other than yes/no count as non-classification."""
    cfg = ctx.config.classification
    async with receive, send:
        async for task in receive:
            if task.is_classification is None:
                prompt = build_classification_prompt(
                    task.instruction, ctx.classification_demonstrations, ctx.templates
                )
                completion = await ctx.complete(prompt.request(STAGE, cfg))
                answer = None if completion is None else parse_classification(completion.text)
                if answer is None:
                    ctx.count("classification.unparseable")
                    answer = False
                ctx.count("classification.yes" if answer else "classification.no")
                await ctx.db(ctx.store.set_classification, task.id, answer)
                task = replace(task, is_classification=answer)
            await send.send(task)

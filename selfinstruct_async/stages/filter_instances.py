"""Stage 4: instance filters, then the task's final commit and its line in tasks.jsonl."""

from __future__ import annotations

import json
from collections import Counter

from anyio.streams.memory import MemoryObjectReceiveStream

from .. import counters as names
from ..filters import InstanceContext
from ..records import Instance, PendingTask, RejectionRecord, Task
from ..run.context import RunContext

NO_INSTANCES = "no_valid_instances"


async def filter_instances(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[tuple[PendingTask, tuple[Instance, ...]]],
) -> None:
    """Keep the instances every filter lets through; a task left with none is rejected."""
    async with receive:
        async for task, instances in receive:
            if ctx.pool.done:
                # The target is met; leave this task pending so a larger target resumes it.
                return
            is_classification = bool(task.is_classification)
            kept: list[Instance] = []
            rejections: list[RejectionRecord] = []
            decided: Counter[str] = Counter()  # committed with the outcome, or not at all
            for index, instance in enumerate(instances):
                context = InstanceContext(task.instruction, is_classification, instances, index)
                rejection = await ctx.chain.check_instance(instance, context)
                if rejection is None:
                    kept.append(instance)
                    continue
                decided[names.rejected("instance", rejection.filter)] += 1
                rejections.append(
                    RejectionRecord(
                        level="instance",
                        filter=rejection.filter,
                        reason=rejection.reason,
                        text=json.dumps({"input": instance.input, "output": instance.output}),
                        task_id=task.id,
                    )
                )
            accepted = None
            if kept:
                accepted = Task(task.id, task.instruction, is_classification, tuple(kept))
                decided[names.TASKS_ACCEPTED] += 1
                decided[names.INSTANCES_ACCEPTED] += len(kept)
            else:
                reason = f"all {len(instances)} generated instances were filtered out"
                if not instances:
                    reason = "no instance could be parsed from the response"
                decided[names.rejected("task", NO_INSTANCES)] += 1
                rejections.append(
                    RejectionRecord("task", NO_INSTANCES, reason, task.instruction, task.id)
                )
            await ctx.db(
                ctx.store.finish_task,
                task.id,
                accepted,
                rejections,
                ctx.take_counters(decided),
                ctx.checkpoint_meta(),
            )
            ctx.pool.finish(task.instruction if accepted else None)
            for record in rejections:
                ctx.plugins.candidate_rejected(record)
            if accepted is not None:
                ctx.plugins.task_accepted(accepted)

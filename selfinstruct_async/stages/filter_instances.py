"""Stage 4: instance filters, the cap on instances per task, then the task's final commit
and its line in tasks.jsonl.

The order is the original's: the filters judge every parsed instance (phase by phase, see
:meth:`FilterChain.check_instances`), and only then is the task cut down to
``instances.max_instances``: a random sample of the survivors (``instances.cap =
"sample"``, the paper's) or the first of them (``"first"``). The sample depends on the run
seed and the task id only, so a resumed run keeps the same instances.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from anyio.streams.memory import MemoryObjectReceiveStream

from .. import counters as names
from ..records import Instance, PendingTask, RejectionRecord, Task
from ..run.context import RunContext
from ..run.hand_off import Received

NO_INSTANCES = "no_valid_instances"
# Instances that passed every filter but were left out by the cap: not a filter's
# rejection, so not in ``rejected.instance.*``.
INSTANCES_OVER_CAP = names.INSTANCES_OVER_CAP


def cap_instances(
    instances: Sequence[Instance],
    limit: int,
    how: Literal["sample", "first"],
    seed: int,
    task_id: str,
) -> tuple[Instance, ...]:
    """At most ``limit`` of ``instances``, kept in their generated order.

    ``"sample"`` picks them at random with a generator seeded by the run seed and the
    task id (a string seed is hashed with SHA-512, so the pick is the same in every
    process); ``"first"`` keeps the first ``limit``.
    """
    if len(instances) <= limit:
        return tuple(instances)
    if how == "first":
        return tuple(instances[:limit])
    picked = random.Random(f"{seed}:{task_id}:cap").sample(range(len(instances)), limit)
    return tuple(instances[i] for i in sorted(picked))


async def filter_instances(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[tuple[PendingTask, tuple[Instance, ...]]],
) -> None:
    """Keep the instances every filter lets through, up to the cap; a task left with none
    is rejected."""
    settings = ctx.config.instances
    async with receive:
        async for task, instances in Received(receive):
            if ctx.pool.done:
                # The target is met; leave this task pending so a larger target resumes it.
                return
            is_classification = bool(task.is_classification)
            verdicts = await ctx.chain.check_instances(
                task.instruction, is_classification, instances
            )
            rejections: list[RejectionRecord] = []
            decided: Counter[str] = Counter()  # committed with the outcome, or not at all
            for instance, rejection in verdicts.rejected:
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
            kept = cap_instances(
                verdicts.kept, settings.max_instances, settings.cap, ctx.config.run.seed, task.id
            )
            if len(kept) < len(verdicts.kept):
                decided[INSTANCES_OVER_CAP] += len(verdicts.kept) - len(kept)
            accepted = None
            if kept:
                accepted = Task(task.id, task.instruction, is_classification, kept)
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

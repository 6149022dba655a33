"""Cost per 1,000 accepted tasks, and what the candidates each filter rejected had cost.

A run pays for every candidate, the rejected ones too. This module divides a run's cost
(priced by ``stats``' price table, or as the run recorded it) by its accepted tasks and
allocates the cost of rejects to the filters that rejected them, as an average per
candidate: see :class:`~.run_stats.CostReport` for the rule. The figures are pure
functions of the usage rows and the acceptance counts, so ``stats``, ``report`` and the
bench (``bench/cost.py``) compute them the same way.
"""

from __future__ import annotations

from .. import counters as names
from .run_stats import (
    Acceptance,
    CostReport,
    FilterCost,
    StageAcceptance,
    UsageReport,
    UsageRow,
    ratio,
)

INSTRUCTION = "instruction"
INSTANCE = "instance"
TASK = "task"


def _stage_cost(row: UsageRow) -> float:
    return float(row.best_cost_usd or 0.0)


def cost_report(usage: UsageReport, acceptance: Acceptance, accepted: int) -> CostReport | None:
    """The cost report of a run whose ``accepted`` tasks are in ``tasks.jsonl``.

    None when the run recorded no usage or neither prices nor recorded costs exist.
    """
    total = usage.total
    if total is None or total.best_cost_usd is None:
        return None
    by_stage = tuple((name, _stage_cost(row)) for name, row in usage.stages)
    costs = dict(by_stage)
    levels = {level.level: level for level in acceptance.levels}
    answers = acceptance.classification
    per_instruction = _per(costs, names.GENERATE_INSTRUCTIONS, levels, INSTRUCTION)
    per_instance = _per(costs, names.GENERATE_INSTANCES, levels, INSTANCE)
    per_answer = ratio(
        costs.get(names.IDENTIFY_CLASSIFICATION, 0.0),
        answers.yes + answers.no + answers.unparseable,
    )
    # A task rejected as a whole had cost its instruction and a classification answer; its
    # instances are counted where an instance filter rejected them.
    per_task = (per_instruction or 0.0) + (per_answer or 0.0)
    unit = {INSTRUCTION: per_instruction or 0.0, INSTANCE: per_instance or 0.0, TASK: per_task}
    rejected = []
    for level in acceptance.levels:
        for f in level.filters:
            usd = f.rejected * unit.get(level.level, 0.0)
            rejected.append(
                FilterCost(level.level, f.name, f.rejected, usd, _per_1000(usd, accepted))
            )
    total_usd = _stage_cost(total)
    return CostReport(
        accepted_tasks=accepted,
        basis="priced" if total.cost_usd is not None else "recorded",
        total_usd=total_usd,
        per_1000_accepted=_per_1000(total_usd, accepted),
        by_stage=by_stage,
        rejected=tuple(rejected),
        unit_costs={
            "instruction_candidate": per_instruction,
            "classification_answer": per_answer,
            "instance": per_instance,
        },
        tokens_per_accepted={
            "prompt_tokens": ratio(total.prompt_tokens, accepted),
            "cached_prompt_tokens": ratio(total.cached_prompt_tokens, accepted),
            "completion_tokens": ratio(total.completion_tokens, accepted),
        },
    )


def _per(
    costs: dict[str, float], stage: str, levels: dict[str, StageAcceptance], level: str
) -> float | None:
    """A stage's cost over the candidates it produced (``received`` at its level)."""
    found = levels.get(level)
    return ratio(costs.get(stage, 0.0), found.received if found is not None else 0)


def _per_1000(usd: float, accepted: int) -> float | None:
    value = ratio(usd, accepted)
    return None if value is None else 1000 * value

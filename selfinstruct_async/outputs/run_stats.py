"""What ``selfinstruct stats`` computes for a run, as typed, frozen records.

:func:`selfinstruct_async.outputs.stats.compute_stats` builds a :class:`RunStats`; the
terminal text, ``report.html`` and ``report.json`` read its fields, and
:meth:`RunStats.to_json` builds the dict ``selfinstruct stats --json`` prints (its keys
and values are a documented interface: change them only on purpose).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .prices import PriceTable

Number = int | float  # counts stay ints in the JSON; averages and costs are floats


def ratio(a: float, b: float) -> float | None:
    """``a / b``, or None when there is nothing to divide by."""
    return a / b if b else None


@dataclass(frozen=True)
class DatasetStats:
    """The paper's Table 1 for the tasks of ``tasks.jsonl`` (lengths in words)."""

    instructions: int
    classification: int
    non_classification: int
    instances: int
    instances_empty_input: int
    avg_instruction_words: float | None
    avg_nonempty_input_words: float | None
    avg_output_words: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FilterRejections:
    """How many items one filter rejected at a level, and their share of the items decided."""

    name: str
    rejected: int
    rejected_share: float | None

    def to_json(self) -> dict[str, Any]:
        return {"rejected": self.rejected, "rejected_share": self.rejected_share}


@dataclass(frozen=True)
class StageAcceptance:
    """One level (``instruction``, ``instance``, ``task``): what came in, what passed, why not.

    ``received`` counts what entered the level, ``decided`` what its filters have decided
    (accepted + rejected); ``acceptance_rate`` is accepted / decided, the formula of
    :func:`selfinstruct_async.counters.acceptance` that ``/status`` shows too.
    """

    level: str
    received: int
    decided: int
    accepted: int
    acceptance_rate: float | None
    filters: tuple[FilterRejections, ...]  # most rejections first

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "decided": self.decided,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "filters": {f.name: f.to_json() for f in self.filters},
        }


@dataclass(frozen=True)
class ClassificationAnswers:
    """Answers of the classification-identification stage."""

    yes: int
    no: int
    unparseable: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Acceptance:
    """Acceptance per level, in pipeline order, and the classification answers."""

    levels: tuple[StageAcceptance, ...]
    classification: ClassificationAnswers
    # Instances that passed every filter but were beyond instances.max_instances: the cap
    # is not a filter, so they are neither accepted nor rejected at the instance level.
    instances_over_cap: int = 0

    def level(self, name: str) -> StageAcceptance:
        """The figures of level ``name``; ``KeyError`` when there is no such level."""
        for stage in self.levels:
            if stage.level == name:
                return stage
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {stage.level: stage.to_json() for stage in self.levels}
        if "instance" in result:
            result["instance"]["over_cap"] = self.instances_over_cap
        return {**result, "classification": self.classification.to_json()}


@dataclass(frozen=True)
class RequestStats:
    """Requests one stage sent, and how many got no answer."""

    stage: str
    requests: int
    failed: int
    failure_rate: float | None

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "failed": self.failed, "failure_rate": self.failure_rate}


@dataclass(frozen=True)
class UsageRow:
    """Tokens, requests and cost of one stage (or of all of them: :meth:`plus`).

    ``throttled`` is the usage meter's ``rate_limited``; ``recorded_cost_usd`` is the cost
    the run itself recorded (None when it recorded none); ``cost_usd`` is computed from
    the price table (None without prices). ``cached_prompt_tokens`` is the part of
    ``prompt_tokens`` the provider served from its prompt cache; the ``batch_*`` counts
    are the part of the others sent through a Batch API (priced at the batch rate).
    """

    prompt_tokens: Number = 0
    completion_tokens: Number = 0
    requests: Number = 0
    retries: Number = 0
    failures: Number = 0
    throttled: Number = 0
    recorded_cost_usd: Number | None = None
    cost_usd: float | None = None
    cached_prompt_tokens: Number = 0
    batch_requests: Number = 0
    batch_prompt_tokens: Number = 0
    batch_cached_prompt_tokens: Number = 0
    batch_completion_tokens: Number = 0

    @property
    def total_tokens(self) -> Number:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cached_share(self) -> float | None:
        """Cached prompt tokens over prompt tokens (None before any prompt token)."""
        return ratio(self.cached_prompt_tokens, self.prompt_tokens)

    @property
    def best_cost_usd(self) -> float | None:
        """The priced cost, or else the cost the run recorded."""
        return self.cost_usd if self.cost_usd is not None else self.recorded_cost_usd

    def plus(self, other: UsageRow) -> UsageRow:
        """The sum of two rows; a cost either row lacks counts as nothing."""

        def add(a: Number | None, b: Number | None) -> Number | None:
            return b if a is None else a if b is None else a + b

        summed: dict[str, Any] = {
            name: getattr(self, name) + getattr(other, name) for name in _COUNT_FIELDS
        }
        return UsageRow(
            **summed,
            recorded_cost_usd=add(self.recorded_cost_usd, other.recorded_cost_usd),
            cost_usd=add(self.cost_usd, other.cost_usd),
        )

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_share": self.cached_share,
            "completion_tokens": self.completion_tokens,
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "throttled": self.throttled,
            "batch_requests": self.batch_requests,
            "batch_prompt_tokens": self.batch_prompt_tokens,
            "batch_cached_prompt_tokens": self.batch_cached_prompt_tokens,
            "batch_completion_tokens": self.batch_completion_tokens,
        }
        if self.recorded_cost_usd is not None:
            row["recorded_cost_usd"] = self.recorded_cost_usd
        row["total_tokens"] = self.total_tokens
        if self.cost_usd is not None:
            row["cost_usd"] = self.cost_usd
        return row


# The counts of a UsageRow (every field but the two costs), summed by UsageRow.plus.
_COUNT_FIELDS = tuple(
    f.name for f in fields(UsageRow) if f.name not in ("recorded_cost_usd", "cost_usd")
)


@dataclass(frozen=True)
class PerAcceptedInstruction:
    """Usage divided by the instructions in ``tasks.jsonl`` (None before there are any)."""

    prompt_tokens: float | None
    completion_tokens: float | None
    total_tokens: float | None
    cost_usd: float | None  # also None without prices
    cached_prompt_tokens: float | None = None  # the part of prompt_tokens served cached


@dataclass(frozen=True)
class UsageReport:
    """Usage by stage (known stages in pipeline order), priced when prices are known."""

    stages: tuple[tuple[str, UsageRow], ...] = ()
    accepted_instructions: int = 0
    priced: bool = False

    @property
    def available(self) -> bool:
        """Whether the checkpoint recorded any usage."""
        return bool(self.stages)

    @property
    def total(self) -> UsageRow | None:
        """All stages together; None when no usage was recorded."""
        rows = [row for _, row in self.stages]
        if not rows:
            return None
        total = rows[0]
        for row in rows[1:]:
            total = total.plus(row)
        return total

    @property
    def per_accepted_instruction(self) -> PerAcceptedInstruction:
        total, n = self.total or UsageRow(), self.accepted_instructions
        return PerAcceptedInstruction(
            ratio(total.prompt_tokens, n),
            ratio(total.completion_tokens, n),
            ratio(total.total_tokens, n),
            ratio(total.cost_usd or 0, n) if self.priced else None,
            ratio(total.cached_prompt_tokens, n),
        )

    def per_accepted_instruction_by_stage(self) -> dict[str, float | None]:
        """Tokens of each stage per accepted instruction."""
        return {
            name: ratio(row.total_tokens, self.accepted_instructions) for name, row in self.stages
        }

    def to_json(self) -> dict[str, Any]:
        total = self.total
        per: dict[str, Any] = {}
        if total is not None:
            figures = asdict(self.per_accepted_instruction)
            keys = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens", "total_tokens")
            per = {key: figures[key] for key in (*keys, "cost_usd") if key in keys or self.priced}
        return {
            "available": self.available,
            "stages": {name: row.to_json() for name, row in self.stages},
            "total": {} if total is None else total.to_json(),
            "per_accepted_instruction": per,
            "per_accepted_instruction_by_stage": self.per_accepted_instruction_by_stage(),
        }


@dataclass(frozen=True)
class FilterCost:
    """What the candidates one filter rejected had cost (see :class:`CostReport`)."""

    level: str
    name: str
    rejected: int
    cost_usd: float
    per_1000_accepted: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "rejected": self.rejected,
            "cost_usd": self.cost_usd,
            "per_1000_accepted": self.per_1000_accepted,
        }


@dataclass(frozen=True)
class CostReport:
    """Cost per 1,000 accepted tasks, by stage and by the filter whose rejects it paid for.

    Every request is in the total, rejected candidates and answers that produced nothing
    included, so ``per_1000_accepted`` is what a dataset of 1,000 tasks costs. What a
    rejected candidate cost is allocated as an average per candidate: each instruction
    candidate costs its stage's cost over the candidates it produced (``unit_costs``), each
    instance likewise, and a task rejected as a whole costs one instruction candidate plus
    one classification answer (its instances are counted with the instance filters that
    rejected them). ``basis`` is ``"priced"`` (the price table) or ``"recorded"`` (what the
    run recorded at its endpoints' prices).
    """

    accepted_tasks: int
    basis: str
    total_usd: float
    per_1000_accepted: float | None
    by_stage: tuple[tuple[str, float], ...]
    rejected: tuple[FilterCost, ...]
    unit_costs: dict[str, float | None]
    tokens_per_accepted: dict[str, float | None]

    @property
    def rejected_usd(self) -> float:
        """What every rejected candidate cost together."""
        return sum(f.cost_usd for f in self.rejected)

    def per_1000(self, usd: float) -> float | None:
        """``usd`` per 1,000 accepted tasks."""
        value = ratio(usd, self.accepted_tasks)
        return None if value is None else 1000 * value

    def to_json(self) -> dict[str, Any]:
        by_level: dict[str, dict[str, Any]] = {}
        for f in self.rejected:
            by_level.setdefault(f.level, {})[f.name] = f.to_json()
        return {
            "accepted_tasks": self.accepted_tasks,
            "basis": self.basis,
            "total_usd": self.total_usd,
            "per_1000_accepted": self.per_1000_accepted,
            "by_stage": {
                name: {"cost_usd": usd, "per_1000_accepted": self.per_1000(usd)}
                for name, usd in self.by_stage
            },
            "rejected": {
                "cost_usd": self.rejected_usd,
                "per_1000_accepted": self.per_1000(self.rejected_usd),
                "by_filter": by_level,
            },
            "unit_costs": dict(self.unit_costs),
            "tokens_per_accepted": dict(self.tokens_per_accepted),
            "allocation": "average per candidate",
        }


@dataclass(frozen=True)
class TaskCounts:
    """Tasks in the checkpoint by status."""

    pending: int = 0
    accepted: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class RunStats:
    """Everything ``selfinstruct stats`` shows for one run directory."""

    run_dir: str
    dataset: DatasetStats
    acceptance: Acceptance
    requests: tuple[RequestStats, ...]
    usage: UsageReport
    prices: PriceTable | None
    checkpoint_tasks: TaskCounts | None  # None: no checkpoint.sqlite
    notes: tuple[str, ...] = field(default=())
    # None when the run recorded no usage; see CostReport.
    cost: CostReport | None = None
    # How stage 2 labels the seed tasks for the run's model (classification_scoring);
    # None when there is no checkpoint.
    classifier: Mapping[str, Any] | None = None

    def with_notes(self, *notes: str) -> RunStats:
        """The same figures with more notes after the ones already there."""
        return replace(self, notes=(*self.notes, *notes))

    def to_json(self) -> dict[str, Any]:
        """The dict ``selfinstruct stats --json`` prints (and ``report.json`` holds)."""
        checkpoint: dict[str, Any] = {"available": self.checkpoint_tasks is not None}
        if self.checkpoint_tasks is not None:
            checkpoint["tasks"] = asdict(self.checkpoint_tasks)
        return {
            "run_dir": self.run_dir,
            "dataset": self.dataset.to_json(),
            "notes": list(self.notes),
            "checkpoint": checkpoint,
            "acceptance": self.acceptance.to_json(),
            "requests": {r.stage: r.to_json() for r in self.requests},
            "usage": self.usage.to_json(),
            "prices": None if self.prices is None else self.prices.as_dict(),
            "cost": None if self.cost is None else self.cost.to_json(),
            "classifier": None if self.classifier is None else dict(self.classifier),
        }

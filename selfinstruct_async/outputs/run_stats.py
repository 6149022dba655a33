"""What ``selfinstruct stats`` computes for a run, as typed, frozen records.

:func:`selfinstruct_async.outputs.stats.compute_stats` builds a :class:`RunStats`; the
terminal text, ``report.html`` and ``report.json`` read its fields, and
:meth:`RunStats.to_json` builds the dict ``selfinstruct stats --json`` prints (its keys
and values are a documented interface: change them only on purpose).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
    the price table (None without prices).
    """

    prompt_tokens: Number = 0
    completion_tokens: Number = 0
    requests: Number = 0
    retries: Number = 0
    failures: Number = 0
    throttled: Number = 0
    recorded_cost_usd: Number | None = None
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> Number:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: UsageRow) -> UsageRow:
        """The sum of two rows; a cost either row lacks counts as nothing."""

        def add(a: Number | None, b: Number | None) -> Number | None:
            return b if a is None else a if b is None else a + b

        return UsageRow(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.requests + other.requests,
            self.retries + other.retries,
            self.failures + other.failures,
            self.throttled + other.throttled,
            add(self.recorded_cost_usd, other.recorded_cost_usd),
            add(self.cost_usd, other.cost_usd),
        )

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "throttled": self.throttled,
        }
        if self.recorded_cost_usd is not None:
            row["recorded_cost_usd"] = self.recorded_cost_usd
        row["total_tokens"] = self.total_tokens
        if self.cost_usd is not None:
            row["cost_usd"] = self.cost_usd
        return row


@dataclass(frozen=True)
class PerAcceptedInstruction:
    """Usage divided by the instructions in ``tasks.jsonl`` (None before there are any)."""

    prompt_tokens: float | None
    completion_tokens: float | None
    total_tokens: float | None
    cost_usd: float | None  # also None without prices


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
            keys = ("prompt_tokens", "completion_tokens", "total_tokens")
            per = {key: figures[key] for key in (*keys, "cost_usd") if key in keys or self.priced}
        return {
            "available": self.available,
            "stages": {name: row.to_json() for name, row in self.stages},
            "total": {} if total is None else total.to_json(),
            "per_accepted_instruction": per,
            "per_accepted_instruction_by_stage": self.per_accepted_instruction_by_stage(),
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
        }

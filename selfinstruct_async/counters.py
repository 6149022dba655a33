"""The run's counter names, and the one way to read them back: rejections and acceptance.

Stages count what they do (``ctx.count(name)``); the counters ride along with checkpoint
commits and come back in ``/status``, ``/metrics``, the progress display, the run's
summary and ``selfinstruct stats``. Every name is built here and parsed here, so a writer
and a reader can never drift apart. The families:

================================  ==============================================
``requests.<stage>``              requests a stage sent (ledger hits included)
``failed.<stage>``                requests that got no answer (see ``RequestFailed``)
``deferred.<stage>``              tasks sent back to their stage after a failed request
``useless.<stage>``               answers with nothing usable in them
``ledger.reused.<stage>``         answers taken from the request ledger, not bought
``rejected.<level>.<filter>``     rejections by ``filter`` at ``level`` (see ``LEVELS``)
``instructions.generated``        candidate instructions parsed from answers
``instructions.unparseable_responses``  generation answers with no instruction in them
``instructions.accepted``         candidates that passed the instruction filters
``instances.generated``           instances parsed from answers
``instances.accepted``            instances that passed the instance filters
``instances.over_cap``            instances that passed every filter but were beyond
                                  ``instances.max_instances`` (the cap is not a filter)
``tasks.accepted``                tasks written to ``tasks.jsonl``
``classification.<answer>``       classification answers: yes, no, unparseable
``retries.context_length``        requests resent with a smaller ``max_tokens``
``batch.*``                       batch mode: batches submitted, found on resume,
                                  polled and ended by status; requests submitted,
                                  answered, failed, unfinished, resubmitted, bought twice
================================  ==============================================

:func:`acceptance` is THE acceptance formula: every place that shows a rate uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

# ---------------------------------------------------------------- stages (verbs)

GENERATE_INSTRUCTIONS: Final = "generate_instructions"
FILTER_INSTRUCTIONS: Final = "filter_instructions"
IDENTIFY_CLASSIFICATION: Final = "identify_classification"
GENERATE_INSTANCES: Final = "generate_instances"
FILTER_INSTANCES: Final = "filter_instances"
# The stages that send requests, in pipeline order.
REQUEST_STAGES: Final = (GENERATE_INSTRUCTIONS, IDENTIFY_CLASSIFICATION, GENERATE_INSTANCES)
# Every stage, in pipeline order.
STAGES: Final = (
    GENERATE_INSTRUCTIONS,
    FILTER_INSTRUCTIONS,
    IDENTIFY_CLASSIFICATION,
    GENERATE_INSTANCES,
    FILTER_INSTANCES,
)

# ---------------------------------------------------------------- rejection levels

# ``instruction``: a candidate instruction; ``instance``: one generated instance;
# ``task``: a whole task (no valid instance left, request refused, unreadable label).
LEVELS: Final = ("instruction", "instance", "task")

# ---------------------------------------------------------------- fixed names

INSTRUCTIONS_GENERATED: Final = "instructions.generated"
INSTRUCTIONS_UNPARSEABLE: Final = "instructions.unparseable_responses"
INSTRUCTIONS_ACCEPTED: Final = "instructions.accepted"
INSTANCES_GENERATED: Final = "instances.generated"
INSTANCES_ACCEPTED: Final = "instances.accepted"
INSTANCES_OVER_CAP: Final = "instances.over_cap"
TASKS_ACCEPTED: Final = "tasks.accepted"
CLASSIFICATION_ANSWERS: Final = ("yes", "no", "unparseable")
# Requests resent with a smaller max_tokens after prompt + max_tokens overflowed the context.
RETRIES_CONTEXT_LENGTH: Final = "retries.context_length"
# Batch mode (client.batch): what went to the Batch API and what came of it.
BATCHES_SUBMITTED: Final = "batch.batches_submitted"  # batches created
BATCHES_FOUND: Final = "batch.batches_found"  # created before a crash, found on resume
BATCH_FILES_UPLOADED: Final = "batch.files_uploaded"
BATCH_FILES_FOUND: Final = "batch.files_found"  # uploaded before a crash, found on resume
BATCH_POLLS: Final = "batch.polls"
BATCH_REQUESTS_SUBMITTED: Final = "batch.requests_submitted"
BATCH_REQUESTS_ANSWERED: Final = "batch.requests_answered"
BATCH_REQUESTS_FAILED: Final = "batch.requests_failed"  # error-file lines
BATCH_REQUESTS_UNFINISHED: Final = "batch.requests_unfinished"  # expired or cancelled
BATCH_RESUBMITTED: Final = "batch.requests_resubmitted"
BATCH_BOUGHT_TWICE: Final = "batch.requests_bought_twice"  # must stay 0
BATCH_REPLAYED: Final = "batch.generations_replayed"  # answers no live session took
BATCH_STATUSES: Final = ("completed", "failed", "expired", "cancelled")
# What passed the filters at each level, set against ``rejected.<level>.*``.
ACCEPTED: Final[Mapping[str, str]] = {
    "instruction": INSTRUCTIONS_ACCEPTED,
    "instance": INSTANCES_ACCEPTED,
    "task": TASKS_ACCEPTED,
}

_REQUESTS = "requests."
_FAILED = "failed."
_DEFERRED = "deferred."
_USELESS = "useless."
_LEDGER_REUSED = "ledger.reused."
_REJECTED = "rejected."

# ---------------------------------------------------------------- name builders


def requests(stage: str) -> str:
    """Requests ``stage`` sent, answered or not."""
    return _REQUESTS + stage


def failed(stage: str) -> str:
    """Requests of ``stage`` that got no answer."""
    return _FAILED + stage


def deferred(stage: str) -> str:
    """Tasks deferred by ``stage`` because their request failed."""
    return _DEFERRED + stage


def useless(stage: str) -> str:
    """Answers to ``stage`` with nothing usable in them."""
    return _USELESS + stage


def ledger_reused(stage: str) -> str:
    """Answers to ``stage`` taken from the request ledger instead of the endpoint."""
    return _LEDGER_REUSED + stage


def rejected(level: str, filter_name: str) -> str:
    """Rejections by ``filter_name`` at ``level`` (one of :data:`LEVELS`)."""
    return f"{_REJECTED}{level}.{filter_name}"


def batch_status(status: str) -> str:
    """Batches that ended with ``status`` (one of :data:`BATCH_STATUSES`)."""
    return f"batch.batches_{status}"


def classification(answer: bool | None) -> str:
    """Classification answers: ``True`` yes, ``False`` no, ``None`` neither."""
    return "classification." + ("unparseable" if answer is None else "yes" if answer else "no")


# ---------------------------------------------------------------- reading back


def value(counters: Mapping[str, float], name: str) -> float:
    """The counter ``name``, 0 when absent (or not a number, as in a damaged checkpoint)."""
    number = counters.get(name, 0)
    return float(number) if isinstance(number, int | float) else 0.0


def is_rejection(name: str) -> bool:
    """Whether ``name`` is a ``rejected.<level>.<filter>`` counter."""
    return name.startswith(_REJECTED)


def rejections(
    counters: Mapping[str, float],
    fallback: Mapping[tuple[str, str], float] | None = None,
) -> dict[tuple[str, str], float]:
    """Rejections by ``(level, filter)`` from the ``rejected.*`` counters.

    ``fallback`` (the checkpoint's rejections table, say) adds the filters the counters
    do not name; where both have a filter, the counter wins.
    """
    found = dict(fallback or {})
    for name in counters:
        if not is_rejection(name):
            continue
        parts = name.split(".", 2)
        if len(parts) == 3:
            found[(parts[1], parts[2])] = value(counters, name)
    return found


_FIXED = frozenset(
    {
        INSTRUCTIONS_GENERATED,
        INSTRUCTIONS_UNPARSEABLE,
        INSTRUCTIONS_ACCEPTED,
        INSTANCES_GENERATED,
        INSTANCES_ACCEPTED,
        INSTANCES_OVER_CAP,
        TASKS_ACCEPTED,
        RETRIES_CONTEXT_LENGTH,
        *(f"classification.{answer}" for answer in CLASSIFICATION_ANSWERS),
        BATCHES_SUBMITTED,
        BATCHES_FOUND,
        BATCH_FILES_UPLOADED,
        BATCH_FILES_FOUND,
        BATCH_POLLS,
        BATCH_REQUESTS_SUBMITTED,
        BATCH_REQUESTS_ANSWERED,
        BATCH_REQUESTS_FAILED,
        BATCH_REQUESTS_UNFINISHED,
        BATCH_RESUBMITTED,
        BATCH_BOUGHT_TWICE,
        BATCH_REPLAYED,
        *(f"batch.batches_{status}" for status in BATCH_STATUSES),
    }
)
_PER_STAGE = (_REQUESTS, _FAILED, _DEFERRED, _USELESS, _LEDGER_REUSED)


def known(name: str) -> bool:
    """Whether ``name`` is one of the names above (a stage's family with a known stage)."""
    if name in _FIXED:
        return True
    if is_rejection(name):
        parts = name.split(".", 2)
        return len(parts) == 3 and parts[1] in LEVELS and bool(parts[2])
    return any(name.startswith(p) and name[len(p) :] in REQUEST_STAGES for p in _PER_STAGE)


def request_stages(counters: Mapping[str, float]) -> list[str]:
    """Stages that sent requests: the known ones in pipeline order, then others, sorted."""
    names = {name.split(".", 1)[1] for name in counters if name.startswith((_REQUESTS, _FAILED))}
    return [s for s in REQUEST_STAGES if s in names] + sorted(names - set(REQUEST_STAGES))


def ledger_reused_total(counters: Mapping[str, float]) -> float:
    """Answers taken from the ledger, all stages together."""
    return sum(value(counters, name) for name in counters if name.startswith(_LEDGER_REUSED))


def classified(counters: Mapping[str, float]) -> dict[str, float]:
    """Classification answers by kind: ``yes``, ``no``, ``unparseable``."""
    return {
        answer: value(counters, f"classification.{answer}") for answer in CLASSIFICATION_ANSWERS
    }


# ---------------------------------------------------------------- acceptance


@dataclass(frozen=True)
class LevelAcceptance:
    """How the filters decided at one level (see :func:`acceptance`)."""

    level: str
    accepted: float
    rejected_by_filter: Mapping[str, float] = field(default_factory=dict)

    @property
    def rejected(self) -> float:
        return sum(self.rejected_by_filter.values())

    @property
    def decided(self) -> float:
        """Items the filters decided at this level: accepted plus rejected."""
        return self.accepted + self.rejected

    @property
    def rate(self) -> float | None:
        """Accepted over decided; ``None`` before anything was decided."""
        return self.accepted / self.decided if self.decided else None


def acceptance(
    counters: Mapping[str, float],
    rejected_by: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, LevelAcceptance]:
    """THE acceptance formula, per level: accepted / decided at that level.

    - ``instruction``: candidate instructions that passed the instruction filters, over
      candidates decided (passed + rejected by an instruction filter);
    - ``instance``: generated instances that passed the instance filters, over instances
      decided (passed + rejected by an instance filter);
    - ``task``: tasks written to ``tasks.jsonl``, over tasks decided (written + rejected
      as a whole: no valid instance left, request refused, unreadable classification).

    Work not decided yet (a request in flight, a task waiting for another try, items in
    a queue) is in neither the numerator nor the denominator, so a rate read during the
    run (``/status``) and after it (``stats``) mean the same thing. ``rejected_by``
    defaults to :func:`rejections` of ``counters``. Levels are always all present, in
    :data:`LEVELS` order, followed by any unknown level found in the counters.
    """
    by_level: dict[str, dict[str, float]] = {level: {} for level in LEVELS}
    found = rejections(counters) if rejected_by is None else rejected_by
    for (level, filter_name), number in found.items():
        by_level.setdefault(level, {})[filter_name] = number
    return {
        level: LevelAcceptance(
            level,
            value(counters, ACCEPTED.get(level, f"{level}s.accepted")),
            dict(sorted(by_filter.items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for level, by_filter in by_level.items()
    }

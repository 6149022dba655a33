"""Usage accounting per stage and the run's optional token / cost budget.

The HTTP client records every attempt here; the pipeline checkpoints :meth:`snapshot` and
feeds it back through :meth:`restore` on resume, so a budget covers the whole run and not
just the current process. Cached prompt tokens (a part of ``prompt_tokens``) and what
Batch API requests used (``batch_*``, a part of every other count) are counted apart, so
``stats`` can price each at its own rate. Budgets are checked *before* a request is sent,
counting what in-flight requests may still spend, so a run stops cleanly below its budget
instead of overshooting it by a concurrency's worth of answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import BudgetExhausted, CheckpointError
from .protocol import Usage

SNAPSHOT_VERSION = 1


@dataclass
class StageUsage:
    """Counters of one stage (or of the whole run when summed)."""

    prompt_tokens: int = 0
    # The part of prompt_tokens the provider served from its prompt cache.
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # successful completions
    retries: int = 0  # attempts after the first
    rate_limited: int = 0  # 429 answers
    failures: int = 0  # requests that ended in an error
    cost_usd: float = 0.0
    # The part of requests / prompt / cached / completion tokens sent through a Batch API,
    # billed at the batch rate; the rest was streamed.
    batch_requests: int = 0
    batch_prompt_tokens: int = 0
    batch_cached_prompt_tokens: int = 0
    batch_completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: StageUsage) -> None:
        for name in USAGE_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


#: The counter names of one stage's usage, in display order: the keys of every stage object
#: in :meth:`UsageMeter.snapshot` (``{"version": 1, "stages": {stage: {field: value}}}``)
#: and the fields of :class:`StageUsage`: ``prompt_tokens``, ``cached_prompt_tokens`` (the
#: part of the prompt served from the provider's cache), ``completion_tokens``,
#: ``requests`` (successful completions), ``retries`` (attempts after the first),
#: ``rate_limited`` (429 answers), ``failures`` (requests that ended in an error),
#: ``cost_usd`` (the only float) and the Batch API's share of the counts
#: (``batch_requests``, ``batch_prompt_tokens``, ``batch_cached_prompt_tokens``,
#: ``batch_completion_tokens``). A snapshot written before a field existed restores with
#: zero for it. Readers of a snapshot (stats, report, /status) take the
#: names from here rather than spelling them again.
USAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StageUsage))


class UsageMeter:
    """Per-stage counters, a JSON-able snapshot, and the budget gate."""

    def __init__(self, *, max_tokens: int | None = None, max_cost: float | None = None) -> None:
        self._stages: dict[str, StageUsage] = {}
        self._total = StageUsage()  # kept in step so budget checks need no summing
        self._max_tokens = max_tokens
        self._max_cost = max_cost
        self._pending_tokens = 0
        self._pending_cost = 0.0
        self._exhausted: str | None = None

    # -- budget ---------------------------------------------------------------------------

    def set_budget(self, *, max_tokens: int | None = None, max_cost: float | None = None) -> None:
        """Set (or clear with ``None``) the run's token and cost ceilings."""
        self._max_tokens, self._max_cost = max_tokens, max_cost

    @property
    def exhausted(self) -> bool:
        """Whether a request has already been refused for lack of budget."""
        return self._exhausted is not None

    def reserve(self, tokens: int, cost: float) -> None:
        """Hold ``tokens``/``cost`` for a request about to be sent, or raise.

        Raises :class:`BudgetExhausted` if what is spent, what in-flight requests may still
        spend and this request together would exceed the budget. Once raised, every later
        reservation is refused too, so all stages stop at the same point.
        """
        if self._exhausted is not None:
            raise BudgetExhausted(self._exhausted)
        total = self._total
        if self._max_tokens is not None:
            would = total.total_tokens + self._pending_tokens + tokens
            if would > self._max_tokens:
                self._exhausted = (
                    f"token budget of {self._max_tokens} would be exceeded "
                    f"({total.total_tokens} spent, {self._pending_tokens} in flight, "
                    f"{tokens} requested)"
                )
                raise BudgetExhausted(self._exhausted)
        if self._max_cost is not None:
            would_cost = total.cost_usd + self._pending_cost + cost
            if would_cost > self._max_cost:
                self._exhausted = (
                    f"cost budget of ${self._max_cost:.4f} would be exceeded "
                    f"(${total.cost_usd:.4f} spent, ${self._pending_cost:.4f} in flight, "
                    f"${cost:.4f} requested)"
                )
                raise BudgetExhausted(self._exhausted)
        self._pending_tokens += tokens
        self._pending_cost += cost

    def release(self, tokens: int, cost: float) -> None:
        """Return a reservation made by :meth:`reserve` (the real spend is recorded)."""
        self._pending_tokens = max(0, self._pending_tokens - tokens)
        self._pending_cost = max(0.0, self._pending_cost - cost)

    # -- counters -------------------------------------------------------------------------

    def record(
        self,
        stage: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        requests: int = 0,
        retries: int = 0,
        rate_limited: int = 0,
        failures: int = 0,
        cost_usd: float = 0.0,
        cached_prompt_tokens: int = 0,
        batch: bool = False,
    ) -> None:
        """Add to the counters of ``stage``.

        ``cached_prompt_tokens`` is the part of ``prompt_tokens`` served from the provider's
        prompt cache (clamped to it); ``batch`` says the answer came through a Batch API, so
        its requests and tokens are also added to the ``batch_*`` counters.
        """
        cached = max(0, min(cached_prompt_tokens, prompt_tokens))
        for usage in (self._stages.get(stage) or self._new_stage(stage), self._total):
            usage.prompt_tokens += prompt_tokens
            usage.cached_prompt_tokens += cached
            usage.completion_tokens += completion_tokens
            usage.requests += requests
            usage.retries += retries
            usage.rate_limited += rate_limited
            usage.failures += failures
            usage.cost_usd += cost_usd
            if batch:
                usage.batch_requests += requests
                usage.batch_prompt_tokens += prompt_tokens
                usage.batch_cached_prompt_tokens += cached
                usage.batch_completion_tokens += completion_tokens

    def record_answer(
        self, stage: str, usage: Usage, *, cost_usd: float = 0.0, batch: bool = False
    ) -> None:
        """One answered request of ``stage``: its tokens as the backend reported them."""
        self.record(
            stage,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            requests=1,
            cost_usd=cost_usd,
            cached_prompt_tokens=usage.cached_prompt_tokens,
            batch=batch,
        )

    def _new_stage(self, stage: str) -> StageUsage:
        usage = self._stages[stage] = StageUsage()
        return usage

    def stage(self, name: str) -> StageUsage:
        """A copy of the counters of one stage (zeros if it never ran)."""
        return StageUsage(**asdict(self._stages.get(name, StageUsage())))

    def stages(self) -> dict[str, StageUsage]:
        """Copies of every stage's counters."""
        return {name: self.stage(name) for name in self._stages}

    def totals(self) -> StageUsage:
        """The counters summed over stages."""
        return StageUsage(**asdict(self._total))

    @property
    def has_budget(self) -> bool:
        """Whether a token or cost ceiling is set (requests must then be counted)."""
        return self._max_tokens is not None or self._max_cost is not None

    # -- persistence ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for a checkpoint (counters only; budgets come from config)."""
        # Taken with every finished task: one level of getattr, not ``asdict``'s deep copy.
        return {
            "version": SNAPSHOT_VERSION,
            "stages": {
                name: {field: getattr(u, field) for field in USAGE_FIELDS}
                for name, u in sorted(self._stages.items())
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the counters with a :meth:`snapshot` taken by an earlier process."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise CheckpointError(
                f"usage snapshot has version {data.get('version')!r}, expected {SNAPSHOT_VERSION}"
            )
        stages = data.get("stages")
        if not isinstance(stages, Mapping):
            raise CheckpointError("usage snapshot: 'stages' must be an object")
        restored: dict[str, StageUsage] = {}
        for stage, counters in stages.items():
            if not isinstance(counters, Mapping):
                raise CheckpointError(f"usage snapshot: stage {stage!r} must be an object")
            usage = StageUsage()
            for key, value in counters.items():
                if key not in USAGE_FIELDS:
                    raise CheckpointError(f"usage snapshot: stage {stage!r}: unknown {key!r}")
                is_float = key == "cost_usd"
                ok = isinstance(value, int | float) if is_float else isinstance(value, int)
                if not ok or isinstance(value, bool) or value < 0:
                    raise CheckpointError(
                        f"usage snapshot: stage {stage!r}: {key!r} must be a non-negative "
                        f"{'number' if is_float else 'integer'}, got {value!r}"
                    )
                setattr(usage, key, float(value) if is_float else value)
            restored[str(stage)] = usage
        self._stages = restored
        self._total = StageUsage()
        for usage in restored.values():
            self._total.add(usage)
        self._exhausted = None

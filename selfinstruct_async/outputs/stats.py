"""``selfinstruct stats``: the paper's Table 1 for a run, acceptance, tokens and cost.

Everything is read without disturbing a daemon that may still be writing: ``tasks.jsonl`` is
streamed up to its last complete line (``checkpoint.tasks_file.TasksReader``) and
the checkpoint is opened read-only. The dataset figures come from ``tasks.jsonl`` (what a
user exports); acceptance and usage come from the checkpoint's counters, rejections table
and the ``usage`` meta key. :func:`compute_stats` returns a typed
:class:`~.run_stats.RunStats`; :func:`render_text` draws it for a terminal and
``RunStats.to_json()`` is what ``--json`` prints. Prices: :mod:`.prices`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import counters as names
from ..checkpoint.run_files import CHECKPOINT
from ..checkpoint.tasks_file import TasksReader
from ..classification_scoring import classifier_lines, classifier_summary
from ..client.usage import USAGE_FIELDS
from ..records import Task
from .cost import cost_report
from .prices import Price, PriceTable, load_prices, prices_from_run, run_models
from .run_stats import (
    Acceptance,
    ClassificationAnswers,
    CostReport,
    DatasetStats,
    FilterRejections,
    RequestStats,
    RunStats,
    StageAcceptance,
    TaskCounts,
    UsageReport,
    UsageRow,
    ratio,
)

# The usage meter's counts shown as they are; ``rate_limited`` is shown as ``throttled`` and
# the recorded ``cost_usd`` as ``recorded_cost_usd`` (``cost_usd`` is the priced cost).
_USAGE_INT_KEYS = tuple(k for k in USAGE_FIELDS if k not in ("rate_limited", "cost_usd"))


def words(text: str) -> int:
    """Length in words as the paper counts it: whitespace-separated tokens."""
    return len(text.split())


# ---------------------------------------------------------------- Table 1


@dataclass
class Table1:
    """The paper's Table 1, accumulated one task at a time."""

    instructions: int = 0
    classification: int = 0
    instances: int = 0
    instances_empty_input: int = 0
    instruction_words: int = 0
    nonempty_input_words: int = 0
    output_words: int = 0

    def add(self, task: Task) -> None:
        self.instructions += 1
        self.classification += task.is_classification
        self.instruction_words += words(task.instruction)
        for inst in task.instances:
            self.instances += 1
            if inst.input.strip():
                self.nonempty_input_words += words(inst.input)
            else:
                self.instances_empty_input += 1
            self.output_words += words(inst.output)

    def summary(self) -> DatasetStats:
        """The table as the paper prints it: counts and average lengths."""
        nonempty = self.instances - self.instances_empty_input
        return DatasetStats(
            instructions=self.instructions,
            classification=self.classification,
            non_classification=self.instructions - self.classification,
            instances=self.instances,
            instances_empty_input=self.instances_empty_input,
            avg_instruction_words=ratio(self.instruction_words, self.instructions),
            avg_nonempty_input_words=ratio(self.nonempty_input_words, nonempty),
            avg_output_words=ratio(self.output_words, self.instances),
        )


def table1(tasks: Iterable[Task]) -> Table1:
    table = Table1()
    for task in tasks:
        table.add(task)
    return table


# ---------------------------------------------------------------- usage


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value) if float(value).is_integer() else float(value)


def _usage_row(counters: Mapping[str, Any]) -> UsageRow:
    counts = {key: _number(counters.get(key)) for key in _USAGE_INT_KEYS}
    return UsageRow(
        **counts,
        throttled=_number(counters.get("throttled", counters.get("rate_limited"))),
        recorded_cost_usd=_number(counters.get("cost_usd")) if "cost_usd" in counters else None,
    )


def usage_stages(raw: Any) -> dict[str, UsageRow]:
    """Per-stage usage from the ``usage`` meta value, tolerating absence and extra keys.

    Accepts ``UsageMeter.snapshot()`` (``{"version": 1, "stages": {...}}``) as well as a
    bare ``{stage: {...}}`` mapping; ``rate_limited`` and ``throttled`` mean the same.
    """
    if not isinstance(raw, Mapping):
        return {}
    stages = raw.get("stages") if isinstance(raw.get("stages"), Mapping) else raw
    assert isinstance(stages, Mapping)
    return {
        str(name): _usage_row(counters)
        for name, counters in stages.items()
        if isinstance(counters, Mapping)
    }


def _stage_order(stages: Iterable[str]) -> list[str]:
    """Known stages in pipeline order, then any others, sorted."""
    found = set(stages)
    known = names.REQUEST_STAGES
    return [s for s in known if s in found] + sorted(found - set(known))


def row_cost(price: Price, row: UsageRow) -> float:
    """USD of a usage row: streamed requests at ``price``, Batch API ones at its batch rate."""
    batch = price.cost(
        row.batch_prompt_tokens,
        row.batch_completion_tokens,
        row.batch_cached_prompt_tokens,
        batch=True,
    )
    streamed = price.cost(
        max(0, row.prompt_tokens - row.batch_prompt_tokens),
        max(0, row.completion_tokens - row.batch_completion_tokens),
        max(0, row.cached_prompt_tokens - row.batch_cached_prompt_tokens),
    )
    return streamed + batch


def usage_report(raw_usage: Any, prices: PriceTable | None, accepted: int) -> UsageReport:
    """Usage by stage in pipeline order, each priced at its stage's price when known."""
    stages = usage_stages(raw_usage)
    rows = []
    for name in _stage_order(stages):
        row = stages[name]
        if prices is not None:
            row = replace(row, cost_usd=row_cost(prices.for_stage(name), row))
        rows.append((name, row))
    return UsageReport(tuple(rows), accepted, priced=prices is not None)


def status_cost(raw_usage: Any, accepted: int, prices: PriceTable | None) -> dict[str, Any]:
    """What ``selfinstruct status`` shows of the spend: cost per 1,000 accepted tasks (priced
    when ``prices`` are given, else as the run recorded it) and the cached share by stage."""
    usage = usage_report(raw_usage, prices, accepted)
    total = usage.total or UsageRow()

    def per_1000(usd: float | None) -> float | None:
        return None if usd is None or not accepted else 1000 * usd / accepted

    return {
        "basis": "priced" if prices is not None else "recorded",
        "cost_usd": total.best_cost_usd,
        "per_1000_accepted": per_1000(total.best_cost_usd),
        "cached_share": total.cached_share,
        "stages": {
            name: {
                "per_1000_accepted": per_1000(row.best_cost_usd),
                "cached_share": row.cached_share,
                "batch_requests": row.batch_requests,
            }
            for name, row in usage.stages
        },
    }


# ---------------------------------------------------------------- acceptance and requests


def acceptance_of(
    counters: Mapping[str, float], table: Mapping[tuple[str, str], float]
) -> Acceptance:
    """Acceptance per level by :func:`counters.acceptance`, the formula ``/status`` uses too.

    ``table`` (rejections by ``(level, filter)`` in the checkpoint's rejections table)
    adds the filters no counter names. ``received`` is what entered the level, decided or
    not yet; the rate and the filters' shares are of the items decided.
    """
    received = {
        "instruction": names.value(counters, names.INSTRUCTIONS_GENERATED),
        "instance": names.value(counters, names.INSTANCES_GENERATED),
        # every instruction that passed its filters goes on to instance generation
        "task": names.value(counters, names.INSTRUCTIONS_ACCEPTED),
    }
    levels = []
    for level, figures in names.acceptance(counters, names.rejections(counters, table)).items():
        filters = tuple(
            FilterRejections(name, int(n), ratio(n, figures.decided))
            for name, n in figures.rejected_by_filter.items()
        )
        levels.append(
            StageAcceptance(
                level,
                received=int(received.get(level, 0)),
                decided=int(figures.decided),
                accepted=int(figures.accepted),
                acceptance_rate=figures.rate,
                filters=filters,
            )
        )
    answers = {answer: int(n) for answer, n in names.classified(counters).items()}
    over_cap = int(names.value(counters, names.INSTANCES_OVER_CAP))
    return Acceptance(tuple(levels), ClassificationAnswers(**answers), over_cap)


def requests_of(counters: Mapping[str, float]) -> tuple[RequestStats, ...]:
    """Requests sent and failed per stage that sent any."""
    result = []
    for stage in names.request_stages(counters):
        sent = int(names.value(counters, names.requests(stage)))
        failed = int(names.value(counters, names.failed(stage)))
        result.append(RequestStats(stage, sent, failed, ratio(failed, sent)))
    return tuple(result)


# ---------------------------------------------------------------- the whole picture


@dataclass(frozen=True)
class _Checkpoint:
    """What ``stats`` reads from the checkpoint (empty when there is none)."""

    counters: Mapping[str, float]
    rejections: Mapping[tuple[str, str], float]  # (level, filter) -> rejections table rows
    raw_usage: Any
    tasks: TaskCounts | None


def _read_checkpoint(run_dir: Path) -> _Checkpoint:
    from ..checkpoint.store import Store

    if not (run_dir / CHECKPOINT).exists():
        return _Checkpoint({}, {}, None, None)
    with Store(run_dir, read_only=True) as store:
        return _Checkpoint(
            store.counters(),
            {
                (level, name): v["count"]
                for key, v in store.rejection_summary(0).items()
                for level, _, name in [key.partition("/")]
            },
            store.get_meta("usage"),
            TaskCounts(**store.count_by_status()),
        )


def compute_stats(
    run_dir: Path, prices: PriceTable | None = None, *, tasks: Table1 | None = None
) -> RunStats:
    """Everything ``selfinstruct stats`` shows (``.to_json()`` for the JSON form).

    ``tasks`` lets a caller that already streamed ``tasks.jsonl`` (the report) pass its
    Table 1 instead of reading the file again; it then adds the reader's notes itself.
    """
    notes: list[str] = []
    if tasks is None:
        reader = TasksReader.in_run(run_dir)
        tasks = table1(reader)
        notes.extend(reader.notes("tasks.jsonl"))
    # A price file's [models.NAME] tables are picked by the models the run used.
    prices = prices_from_run(run_dir) if prices is None else prices.for_models(run_models(run_dir))
    checkpoint = _read_checkpoint(run_dir)
    if checkpoint.tasks is None:
        notes.append("no checkpoint.sqlite: acceptance and usage are unknown")
    if prices is None:
        notes.append("no prices (give --prices FILE or endpoint prices in the run config)")
    acceptance = acceptance_of(checkpoint.counters, checkpoint.rejections)
    usage = usage_report(checkpoint.raw_usage, prices, tasks.instructions)
    return RunStats(
        run_dir=str(run_dir),
        dataset=tasks.summary(),
        acceptance=acceptance,
        requests=requests_of(checkpoint.counters),
        usage=usage,
        prices=prices,
        checkpoint_tasks=checkpoint.tasks,
        notes=tuple(notes),
        cost=cost_report(usage, acceptance, tasks.instructions),
        classifier=None if checkpoint.tasks is None else classifier_summary(run_dir),
    )


# ---------------------------------------------------------------- text output


def fmt_number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _dataset_lines(run_dir: str, d: DatasetStats) -> list[str]:
    rows = [
        ("# of instructions", fmt_number(d.instructions)),
        ("  - classification", fmt_number(d.classification)),
        ("  - non-classification", fmt_number(d.non_classification)),
        ("# of instances", fmt_number(d.instances)),
        ("  - with empty input", fmt_number(d.instances_empty_input)),
        ("avg. instruction length (words)", fmt_number(d.avg_instruction_words)),
        ("avg. non-empty input length (words)", fmt_number(d.avg_nonempty_input_words)),
        ("avg. output length (words)", fmt_number(d.avg_output_words)),
    ]
    header = f"{run_dir}: dataset (Table 1 of the paper)"
    return [header] + [f"  {name:38s}{value:>14s}" for name, value in rows]


def _acceptance_lines(acc: Acceptance) -> list[str]:
    lines = ["", "acceptance by stage and filter (rate: accepted of decided)"]
    lines.append(f"  {'':38s}{'received':>14s}{'decided':>12s}{'accepted':>12s}{'rate':>9s}")
    for s in acc.levels:
        lines.append(
            f"  {s.level + 's':38s}{fmt_number(s.received):>14s}{fmt_number(s.decided):>12s}"
            f"{fmt_number(s.accepted):>12s}{fmt_share(s.acceptance_rate):>9s}"
        )
        for f in s.filters:
            lines.append(
                f"    rejected by {f.name:26s}{'':14s}{fmt_number(f.rejected):>12s}"
                f"{'':12s}{fmt_share(f.rejected_share):>9s}"
            )
        if s.level == "instance" and acc.instances_over_cap:
            lines.append(
                f"    {'beyond max_instances (not a filter)':38s}"
                f"{fmt_number(acc.instances_over_cap):>14s}"
            )
    clf = acc.classification
    lines.append(
        f"  classification answers: {clf.yes} yes, {clf.no} no, {clf.unparseable} unparseable"
    )
    return lines


def _request_lines(requests: tuple[RequestStats, ...]) -> list[str]:
    if not requests:
        return []
    lines = ["", f"  {'requests by stage':38s}{'sent':>14s}{'failed':>12s}{'rate':>9s}"]
    for r in requests:
        lines.append(
            f"  {r.stage:38s}{fmt_number(r.requests):>14s}{fmt_number(r.failed):>12s}"
            f"{fmt_share(r.failure_rate):>9s}"
        )
    return lines


def _usage_lines(usage: UsageReport) -> list[str]:
    if usage.total is None:
        return ["", "usage: not recorded in the checkpoint"]
    header = f"  {'stage':26s}{'prompt':>14s}{'cached':>8s}{'completion':>14s}{'requests':>10s}"
    header += f"{'batch':>8s}{'retries':>9s}{'throttled':>10s}{'cost':>14s}"
    lines = ["", "tokens and cost by stage (cached: share of prompt tokens)", header]
    for stage, u in [*usage.stages, ("total", usage.total)]:
        lines.append(
            f"  {stage:26s}{fmt_number(u.prompt_tokens):>14s}{fmt_share(u.cached_share):>8s}"
            f"{fmt_number(u.completion_tokens):>14s}{fmt_number(u.requests):>10s}"
            f"{fmt_number(u.batch_requests):>8s}"
            f"{fmt_number(u.retries):>9s}{fmt_number(u.throttled):>10s}"
            f"{fmt_money(u.cost_usd):>14s}"
        )
    per = usage.per_accepted_instruction
    lines.append(
        f"  per accepted instruction: {fmt_number(per.total_tokens)} tokens "
        f"({fmt_number(per.prompt_tokens)} prompt of which {fmt_number(per.cached_prompt_tokens)} "
        f"cached, {fmt_number(per.completion_tokens)} completion), {fmt_money(per.cost_usd)}"
    )
    return lines


def _cost_lines(cost: CostReport | None) -> list[str]:
    if cost is None:
        return []
    basis = "priced" if cost.basis == "priced" else "as recorded by the run"
    lines = [
        "",
        f"cost per 1,000 accepted tasks ({basis}; rejected candidates included): "
        f"{fmt_money(cost.per_1000_accepted)}",
    ]
    for stage, usd in cost.by_stage:
        lines.append(f"  {stage:38s}{fmt_money(cost.per_1000(usd)):>14s}")
    lines.append(
        f"  {'paid for rejected candidates':38s}{fmt_money(cost.per_1000(cost.rejected_usd)):>14s}"
        "  (average per candidate)"
    )
    for f in sorted(cost.rejected, key=lambda f: -f.cost_usd):
        lines.append(
            f"    {f.level + ' / ' + f.name:36s}{fmt_money(f.per_1000_accepted):>14s}"
            f"{fmt_number(f.rejected):>12s} rejected"
        )
    return lines


def render_text(stats: RunStats) -> str:
    """The terminal form of :func:`compute_stats`."""
    lines = _dataset_lines(stats.run_dir, stats.dataset)
    lines += _acceptance_lines(stats.acceptance)
    lines += _request_lines(stats.requests)
    lines += _usage_lines(stats.usage)
    lines += _cost_lines(stats.cost)
    if stats.classifier is not None:
        lines += classifier_lines(dict(stats.classifier))
    if stats.prices is not None:
        p = stats.prices.default
        lines.append(
            f"  prices from {stats.prices.source}: ${p.prompt:g} / ${p.cached:g} / "
            f"${p.completion:g} per 1M prompt / cached prompt / completion tokens, "
            f"batch x{p.batch_multiplier:g}"
        )
    lines += [f"note: {note}" for note in stats.notes]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def _run(args: argparse.Namespace) -> int:
    prices = load_prices(args.prices) if args.prices is not None else None
    stats = compute_stats(Path(args.run_dir), prices)
    if args.json:
        print(json.dumps(stats.to_json(), indent=2, sort_keys=True))
    else:
        print(render_text(stats))
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``selfinstruct stats``."""
    p = subparsers.add_parser(
        "stats",
        help="the paper's Table 1, acceptance, tokens and cost of a run (safe while it runs)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="TOML price table, USD per 1M tokens; [models.NAME] tables are picked by the "
        "run's model (default: the run's endpoint prices)",
    )
    p.set_defaults(func=_run)

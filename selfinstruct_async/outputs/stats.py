"""``selfinstruct stats``: the paper's Table 1 for a run, acceptance, tokens and cost.

Everything is read without disturbing a daemon that may still be writing: ``tasks.jsonl`` is
streamed up to its last complete line and the checkpoint is opened read-only. The dataset
figures come from ``tasks.jsonl`` (what a user exports); acceptance and usage come from the
checkpoint's counters, rejections table and the ``usage`` meta key.

Prices are USD per million tokens: from ``--prices FILE`` (TOML, see :func:`load_prices`)
or else the ``[[endpoints]]`` ``prompt_price`` / ``completion_price`` saved in the run's
``config.json``. Requests are spread over the endpoints, so several endpoints with different
prices are averaged (the usage snapshot does not say which endpoint served a request).
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SelfInstructError
from ..records import Task
from .export import TaskFile, skipped_note

STAGE_LEVELS = ("instruction", "instance", "task")
# Order in which stages are listed; stages found in the data but not here follow, sorted.
KNOWN_STAGES = ("generate_instructions", "identify_classification", "generate_instances")
_USAGE_INT_KEYS = ("prompt_tokens", "completion_tokens", "requests", "retries", "failures")


class StatsError(SelfInstructError):
    """A run directory or price table cannot be read."""


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

    def as_dict(self) -> dict[str, Any]:
        nonempty = self.instances - self.instances_empty_input
        return {
            "instructions": self.instructions,
            "classification": self.classification,
            "non_classification": self.instructions - self.classification,
            "instances": self.instances,
            "instances_empty_input": self.instances_empty_input,
            "avg_instruction_words": _ratio(self.instruction_words, self.instructions),
            "avg_nonempty_input_words": _ratio(self.nonempty_input_words, nonempty),
            "avg_output_words": _ratio(self.output_words, self.instances),
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def table1(tasks: Iterable[Task]) -> Table1:
    table = Table1()
    for task in tasks:
        table.add(task)
    return table


# ---------------------------------------------------------------- prices


@dataclass(frozen=True)
class Price:
    """USD per million prompt and completion tokens."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


@dataclass(frozen=True)
class PriceTable:
    """A default price, optional per-stage prices, and where they came from."""

    default: Price
    stages: Mapping[str, Price] = field(default_factory=dict)
    source: str = ""

    def for_stage(self, stage: str) -> Price:
        return self.stages.get(stage, self.default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prompt_price": self.default.prompt,
            "completion_price": self.default.completion,
            "stages": {
                name: {"prompt_price": p.prompt, "completion_price": p.completion}
                for name, p in sorted(self.stages.items())
            },
        }


def _price_value(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsError(f"{where}{key}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise StatsError(f"{where}{key}: must be a non-negative number, got {value}")
    return float(value)


def _price(table: Mapping[str, Any], where: str) -> Price:
    unknown = sorted(set(table) - {"prompt_price", "completion_price", "stages"})
    if unknown:
        raise StatsError(
            f"{where}{unknown[0]}: unknown key (expected prompt_price, completion_price, stages)"
        )
    return Price(
        _price_value(table, "prompt_price", where), _price_value(table, "completion_price", where)
    )


def _endpoint_prices(endpoints: Any, where: str) -> Price | None:
    if not isinstance(endpoints, list) or not endpoints:
        return None
    prices = []
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, Mapping):
            raise StatsError(f"{where}endpoints[{i}]: expected a table")
        here = f"{where}endpoints[{i}]."
        prices.append(
            Price(
                _price_value(ep, "prompt_price", here), _price_value(ep, "completion_price", here)
            )
        )
    return Price(
        sum(p.prompt for p in prices) / len(prices),
        sum(p.completion for p in prices) / len(prices),
    )


def load_prices(path: Path) -> PriceTable:
    """A TOML price table. Either of::

        prompt_price = 0.15          # USD per 1M prompt tokens
        completion_price = 0.60
        [stages.generate_instances]  # optional per-stage prices
        completion_price = 0.30

    (also accepted inside a ``[prices]`` table), or a run configuration whose
    ``[[endpoints]]`` carry ``prompt_price`` / ``completion_price`` (averaged).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StatsError(f"{path}: price file not found") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise StatsError(f"{path}: {e}") from None
    where = f"{path}: "
    if "prices" in data:
        table = data["prices"]
        if not isinstance(table, Mapping):
            raise StatsError(f"{where}prices: expected a table")
        where += "prices."
    elif "prompt_price" in data or "completion_price" in data or "stages" in data:
        table = data
    else:
        price = _endpoint_prices(data.get("endpoints"), where)
        if price is None:
            raise StatsError(
                f"{path}: no prices found (expected prompt_price / completion_price, "
                "a [prices] table or [[endpoints]] with prices)"
            )
        return PriceTable(price, source=f"{path} [[endpoints]]")
    default = _price(table, where)
    stages_raw = table.get("stages", {})
    if not isinstance(stages_raw, Mapping):
        raise StatsError(f"{where}stages: expected a table of stage tables")
    stages = {}
    for name, stage_table in stages_raw.items():
        if not isinstance(stage_table, Mapping):
            raise StatsError(f"{where}stages.{name}: expected a table")
        here = f"{where}stages.{name}."
        stages[name] = Price(
            _price_value(stage_table, "prompt_price", here)
            if "prompt_price" in stage_table
            else default.prompt,
            _price_value(stage_table, "completion_price", here)
            if "completion_price" in stage_table
            else default.completion,
        )
    return PriceTable(default, stages, source=str(path))


def prices_from_run(run_dir: Path) -> PriceTable | None:
    """The endpoints' prices saved in ``RUN_DIR/config.json``, if any."""
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StatsError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, Mapping):
        return None
    price = _endpoint_prices(data.get("endpoints"), f"{path}: ")
    if price is None:
        return None
    return PriceTable(price, source=f"{path} endpoints")


# ---------------------------------------------------------------- usage


def usage_stages(raw: Any) -> dict[str, dict[str, float]]:
    """Per-stage usage from the ``usage`` meta value, tolerating absence and extra keys.

    Accepts ``UsageMeter.snapshot()`` (``{"version": 1, "stages": {...}}``) as well as a
    bare ``{stage: {...}}`` mapping; ``rate_limited`` and ``throttled`` mean the same.
    """
    if not isinstance(raw, Mapping):
        return {}
    stages = raw.get("stages") if isinstance(raw.get("stages"), Mapping) else raw
    assert isinstance(stages, Mapping)
    result: dict[str, dict[str, float]] = {}
    for name, counters in stages.items():
        if not isinstance(counters, Mapping):
            continue
        row: dict[str, float] = {}
        for key in _USAGE_INT_KEYS:
            row[key] = _number(counters.get(key))
        row["throttled"] = _number(counters.get("throttled", counters.get("rate_limited")))
        if "cost_usd" in counters:
            row["recorded_cost_usd"] = _number(counters.get("cost_usd"))
        row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
        result[str(name)] = row
    return result


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value) if float(value).is_integer() else float(value)


def _stage_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in KNOWN_STAGES if s in names] + sorted(names - set(KNOWN_STAGES))


# ---------------------------------------------------------------- the whole picture


def _acceptance(
    counters: Mapping[str, float], rejections: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    def c(name: str) -> int:
        return int(counters.get(name, 0))

    inputs = {
        "instruction": (c("instructions.generated"), c("instructions.accepted")),
        "instance": (c("instances.generated"), c("instances.accepted")),
        # every instruction that passed its filters goes on to instance generation
        "task": (c("instructions.accepted"), c("tasks.accepted")),
    }
    stages: dict[str, dict[str, Any]] = {}
    for level in STAGE_LEVELS:
        received, accepted = inputs[level]
        names = {k.split(".", 2)[2] for k in counters if k.startswith(f"rejected.{level}.")}
        names |= {k.split("/", 1)[1] for k in rejections if k.startswith(f"{level}/")}
        filters: dict[str, dict[str, Any]] = {}
        for name in sorted(names):
            key = f"rejected.{level}.{name}"
            n = c(key) if key in counters else rejections.get(f"{level}/{name}", 0)
            filters[name] = {"rejected": n, "rejected_share": _ratio(n, received)}
        stages[level] = {
            "received": received,
            "accepted": accepted,
            "acceptance_rate": _ratio(accepted, received),
            "filters": dict(sorted(filters.items(), key=lambda kv: -kv[1]["rejected"])),
        }
    stages["classification"] = {
        answer: c(f"classification.{answer}") for answer in ("yes", "no", "unparseable")
    }
    return stages


def _usage_report(raw_usage: Any, prices: PriceTable | None, accepted: int) -> dict[str, Any]:
    stages = usage_stages(raw_usage)
    total: dict[str, float] = {}
    for name in _stage_order(stages):
        row = stages[name]
        if prices is not None:
            row["cost_usd"] = prices.for_stage(name).cost(
                row["prompt_tokens"], row["completion_tokens"]
            )
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    per = {
        key: _ratio(total.get(key, 0), accepted)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
        if key in total
    }
    return {
        "available": bool(stages),
        "stages": {name: stages[name] for name in _stage_order(stages)},
        "total": total,
        "per_accepted_instruction": per,
        "per_accepted_instruction_by_stage": {
            name: _ratio(stages[name]["total_tokens"], accepted) for name in _stage_order(stages)
        },
    }


def compute_stats(
    run_dir: Path, prices: PriceTable | None = None, *, tasks: Table1 | None = None
) -> dict[str, Any]:
    """Everything ``selfinstruct stats`` shows, as a JSON-able dict.

    ``tasks`` lets a caller that already streamed ``tasks.jsonl`` (the report) pass its
    Table 1 instead of reading the file again.
    """
    from ..checkpoint.store import Store

    note: list[str] = []
    if tasks is None:
        task_file = TaskFile.in_run(run_dir)
        tasks = table1(task_file)
        if task_file.torn_tail:
            note.append("tasks.jsonl: ignored an incomplete last line (a run is still writing)")
        if task_file.skipped:
            note.append(skipped_note("tasks.jsonl", task_file.skipped))
    result: dict[str, Any] = {"run_dir": str(run_dir), "dataset": tasks.as_dict(), "notes": note}
    if prices is None:
        prices = prices_from_run(run_dir)
    checkpoint = run_dir / "checkpoint.sqlite"
    counters: dict[str, float] = {}
    rejections: dict[str, int] = {}
    raw_usage: Any = None
    if checkpoint.exists():
        with Store(run_dir, read_only=True) as store:
            counters = store.counters()
            rejections = {k: v["count"] for k, v in store.rejection_summary(0).items()}
            raw_usage = store.get_meta("usage")
            result["checkpoint"] = {"available": True, "tasks": store.count_by_status()}
    else:
        result["checkpoint"] = {"available": False}
        note.append("no checkpoint.sqlite: acceptance and usage are unknown")
    result["acceptance"] = _acceptance(counters, rejections)
    requests = {}
    for stage in _stage_order(
        {k.split(".", 1)[1] for k in counters if k.startswith(("requests.", "failed."))}
    ):
        sent, failed = (
            int(counters.get(f"requests.{stage}", 0)),
            int(counters.get(f"failed.{stage}", 0)),
        )
        requests[stage] = {"requests": sent, "failed": failed, "failure_rate": _ratio(failed, sent)}
    result["requests"] = requests
    result["usage"] = _usage_report(raw_usage, prices, tasks.instructions)
    result["prices"] = prices.as_dict() if prices is not None else None
    if prices is None:
        note.append("no prices (give --prices FILE or endpoint prices in the run config)")
    return result


# ---------------------------------------------------------------- text output


def fmt_number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def render_text(stats: Mapping[str, Any]) -> str:
    """The terminal form of :func:`compute_stats`."""
    lines: list[str] = []
    d = stats["dataset"]
    lines.append(f"{stats['run_dir']}: dataset (Table 1 of the paper)")
    rows = [
        ("# of instructions", fmt_number(d["instructions"])),
        ("  - classification", fmt_number(d["classification"])),
        ("  - non-classification", fmt_number(d["non_classification"])),
        ("# of instances", fmt_number(d["instances"])),
        ("  - with empty input", fmt_number(d["instances_empty_input"])),
        ("avg. instruction length (words)", fmt_number(d["avg_instruction_words"])),
        ("avg. non-empty input length (words)", fmt_number(d["avg_nonempty_input_words"])),
        ("avg. output length (words)", fmt_number(d["avg_output_words"])),
    ]
    lines += [f"  {name:38s}{value:>14s}" for name, value in rows]

    acc = stats["acceptance"]
    lines.append("")
    lines.append("acceptance by stage and filter")
    lines.append(f"  {'':38s}{'received':>14s}{'accepted':>12s}{'rate':>9s}")
    for level in STAGE_LEVELS:
        s = acc[level]
        lines.append(
            f"  {level + 's':38s}{fmt_number(s['received']):>14s}{fmt_number(s['accepted']):>12s}"
            f"{fmt_share(s['acceptance_rate']):>9s}"
        )
        for name, f in s["filters"].items():
            lines.append(
                f"    rejected by {name:26s}{fmt_number(f['rejected']):>14s}"
                f"{'':12s}{fmt_share(f['rejected_share']):>9s}"
            )
    clf = acc["classification"]
    lines.append(
        f"  classification answers: {clf['yes']} yes, {clf['no']} no, "
        f"{clf['unparseable']} unparseable"
    )
    if stats["requests"]:
        lines.append("")
        lines.append(f"  {'requests by stage':38s}{'sent':>14s}{'failed':>12s}{'rate':>9s}")
        for stage, r in stats["requests"].items():
            lines.append(
                f"  {stage:38s}{fmt_number(r['requests']):>14s}{fmt_number(r['failed']):>12s}"
                f"{fmt_share(r['failure_rate']):>9s}"
            )

    usage = stats["usage"]
    lines.append("")
    if not usage["available"]:
        lines.append("usage: not recorded in the checkpoint")
    else:
        lines.append("tokens and cost by stage")
        header = f"  {'stage':26s}{'prompt':>14s}{'completion':>14s}{'requests':>10s}"
        header += f"{'retries':>9s}{'throttled':>10s}{'cost':>14s}"
        lines.append(header)
        rows_u = [*usage["stages"].items(), ("total", usage["total"])]
        for stage, u in rows_u:
            n = {key: fmt_number(u[key]) for key in ("prompt_tokens", "completion_tokens")}
            m = {key: fmt_number(u[key]) for key in ("requests", "retries", "throttled")}
            lines.append(
                f"  {stage:26s}{n['prompt_tokens']:>14s}{n['completion_tokens']:>14s}"
                f"{m['requests']:>10s}{m['retries']:>9s}{m['throttled']:>10s}"
                f"{_money(u.get('cost_usd')):>14s}"
            )
        per = usage["per_accepted_instruction"]
        lines.append(
            f"  per accepted instruction: {fmt_number(per.get('total_tokens'))} tokens "
            f"({fmt_number(per.get('prompt_tokens'))} prompt, "
            f"{fmt_number(per.get('completion_tokens'))} completion), {_money(per.get('cost_usd'))}"
        )
    if stats["prices"] is not None:
        p = stats["prices"]
        lines.append(
            f"  prices from {p['source']}: ${p['prompt_price']:g} / "
            f"${p['completion_price']:g} per 1M prompt / completion tokens"
        )
    for note in stats["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def _run(args: argparse.Namespace) -> int:
    prices = load_prices(args.prices) if args.prices is not None else None
    stats = compute_stats(Path(args.run_dir), prices)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
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
        help="TOML price table, USD per 1M tokens (default: the run's endpoint prices)",
    )
    p.set_defaults(func=_run)

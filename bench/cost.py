"""Cost per 1,000 accepted tasks, streaming and batch, with and without cacheable prompts.

    .venv/bin/python bench/cost.py                       # 2,000 tasks per variant
    .venv/bin/python bench/cost.py --tasks 10000         # the issue's size
    .venv/bin/python bench/cost.py --variants stream-paper,stream

Every variant starts from the default seeds with the same run seed, against its own
simulator process (zero latency, no limits, seed 1; a fresh process so that no variant
finds another's prompts in the simulated prompt cache, which reports cached tokens the way
OpenAI does: the longest prefix seen before, from 1,024 tokens in 128-token steps). The
endpoint carries the issue's prices, those of a small hosted model: input $0.15, cached
input $0.075, output $0.60 per million tokens, Batch API half price. The variants:

- ``stream-paper``: streaming with the paper preset's classification prompt (24 seed
  demonstrations, about 760 tokens: below the 1,024 at which providers cache);
- ``stream``: streaming with today's defaults (40 demonstrations, a fixed prefix of about
  1,170 tokens that the cache serves);
- ``batch``: ``run.mode = "batch"`` (the Batch API) with today's defaults, when this
  checkout has batch mode.

Printed per variant: accepted tasks, cost per 1,000 accepted tasks (every request counted,
rejected candidates included; ``selfinstruct stats`` computes it), tokens per accepted task
(prompt, of which cached, completion), the cached share of prompt tokens per stage, and
the acceptance rate per level with each filter's share, to show the prompts changed what
the run spends and not what it keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfinstruct_async.config import Config, RunConfig, load_config  # noqa: E402
from selfinstruct_async.outputs.run_stats import RunStats  # noqa: E402
from selfinstruct_async.outputs.stats import compute_stats  # noqa: E402
from selfinstruct_async.run.runner import run  # noqa: E402
from selfinstruct_async.simulator.process import simulator_process, stats  # noqa: E402

PRICES = {
    "prompt_price": 0.15,
    "cached_prompt_price": 0.075,
    "completion_price": 0.60,
    "batch_price_multiplier": 0.5,
}
VARIANTS = ("stream-paper", "stream", "batch")
TARGET_BATCH_PER_1000 = 0.12


def has_batch_mode() -> bool:
    return any(f.name == "mode" for f in dataclasses.fields(RunConfig))


def variant_config(
    variant: str, base_url: str, out: Path, target: int, demonstrations: int | None = None
) -> Config:
    overrides: dict[str, dict[str, Any]] = {
        "run": {"out": str(out), "target": target, "queue_size": 256, "seed": 1},
        "generation": {"workers": 16},
        "classification": {"workers": 32},
        "instances": {"workers": 64},
        "endpoint": {"base_url": base_url, "model": "sim-model", "concurrency": 64, **PRICES},
    }
    if variant == "stream-paper":
        # Only the prompt length differs from "stream": the paper preset's other settings
        # (parsers, stops, filters) would change the acceptance rates being compared.
        overrides["classification"]["demonstrations"] = 24
    elif demonstrations is not None:
        overrides["classification"]["demonstrations"] = demonstrations
    if variant == "batch":
        overrides["run"]["mode"] = "batch"
    return load_config(None, environ={}, overrides=overrides)


async def measure(
    variant: str, target: int, tmp: Path, demonstrations: int | None
) -> tuple[RunStats, dict[str, Any], float]:
    out = tmp / variant
    with simulator_process("--seed", "1") as base_url:
        started = time.monotonic()
        await run(variant_config(variant, base_url, out, target, demonstrations))
        wall = time.monotonic() - started
        seen = stats(base_url)
    return compute_stats(out), seen, wall


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def report(variant: str, result: RunStats, seen: dict[str, Any], wall: float) -> None:
    cost = result.cost
    assert cost is not None, "the run recorded no usage"
    tokens = cost.tokens_per_accepted
    print(f"\n== {variant}: {cost.accepted_tasks:,} accepted tasks in {wall:.0f} s")
    print(f"  cost per 1,000 accepted tasks   {_money(cost.per_1000_accepted)}")
    for stage, usd in cost.by_stage:
        print(f"    {stage:30s}{_money(cost.per_1000(usd))}")
    print(f"    {'(paid for rejected candidates)':30s}{_money(cost.per_1000(cost.rejected_usd))}")
    print(
        f"  tokens per accepted task       {_num(tokens['prompt_tokens'])} prompt "
        f"({_num(tokens['cached_prompt_tokens'])} cached), "
        f"{_num(tokens['completion_tokens'])} completion"
    )
    print("  cached share of prompt tokens by stage")
    for stage, row in result.usage.stages:
        share = row.cached_share
        per = (row.prompt_tokens / cost.accepted_tasks) if cost.accepted_tasks else 0
        print(
            f"    {stage:30s}{'-' if share is None else f'{100 * share:5.1f}%'}"
            f"   ({per:,.0f} prompt tokens per accepted task, {row.requests:,} requests)"
        )
    print("  acceptance (rate of decided; filters' shares)")
    for level in result.acceptance.levels:
        rate = "-" if level.acceptance_rate is None else f"{100 * level.acceptance_rate:.1f}%"
        shares = ", ".join(
            f"{f.name} {100 * (f.rejected_share or 0):.1f}%" for f in level.filters[:6]
        )
        print(f"    {level.level:12s}{rate:>7s}  {shares}")
    print(f"  simulator: {seen['ok']:,} answers, {seen['cached_prompt_tokens']:,} cached tokens")
    if result.checkpoint_tasks is not None and result.checkpoint_tasks.pending:
        # Paid for but neither accepted nor rejected when the target was met.
        print(f"  tasks still pending at the target: {result.checkpoint_tasks.pending:,}")


async def main_async(args: argparse.Namespace) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    if "batch" in variants and not has_batch_mode():
        print("note: this checkout has no batch mode (run.mode); skipping the batch variant")
        variants.remove("batch")
    print(
        f"prices per 1M tokens: input ${PRICES['prompt_price']}, cached input "
        f"${PRICES['cached_prompt_price']}, output ${PRICES['completion_price']}, batch "
        f"x{PRICES['batch_price_multiplier']}; {args.tasks:,} tasks per variant, run seed 1"
    )
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            result, seen, wall = await measure(
                variant, args.tasks, Path(tmp), args.classification_demonstrations
            )
            report(variant, result, seen, wall)
            results[variant] = result.cost.per_1000_accepted if result.cost else None
    print()
    for variant, per_1000 in results.items():
        print(f"{variant:14s} {_money(per_1000)} per 1,000 accepted tasks")
    batch = results.get("batch")
    if batch is not None:
        verdict = "PASS" if batch <= TARGET_BATCH_PER_1000 else "FAIL"
        print(f"batch target <= ${TARGET_BATCH_PER_1000}: {verdict}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The simulator's useless answers are expected; their warnings would flood the output.
    logging.getLogger("selfinstruct_async").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=2000, help="accepted tasks per variant")
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    p.add_argument(
        "--classification-demonstrations",
        type=int,
        metavar="K",
        help="classification demonstrations of the stream and batch variants (default: "
        "the run's default)",
    )
    args = p.parse_args(argv)
    started = time.monotonic()
    code = asyncio.run(main_async(args))
    print(f"\ntook {time.monotonic() - started:.0f} s; {os.cpu_count()} cores")
    return code


if __name__ == "__main__":
    sys.exit(main())

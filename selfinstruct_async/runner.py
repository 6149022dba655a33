"""One ``selfinstruct run``: validate everything, open the checkpoint, run the pipeline, report.

Every input (seeds, configuration, filter settings, plugins) is checked before the first
request, so a typo never costs money. Resuming is the same call on the same run
directory: pool, counters, request numbering and pending tasks come back from the
checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pluggy

from .config import Config
from .context import RunContext
from .errors import ConfigError
from .llm import LLMClient
from .pipeline import run_pipeline
from .plugins import Plugins, make_plugin_manager
from .pool import Pool
from .prompts import DEFAULT_TEMPLATES, select_classification_demonstrations
from .seeds import DEFAULT_SEEDS, load_seed_tasks
from .store import Store

log = logging.getLogger("selfinstruct_async")


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the terminal and for ``summary.json``."""

    run_dir: str
    target: int
    accepted: int
    pending: int
    rejected_tasks: int
    seconds: float
    counters: dict[str, float] = field(default_factory=dict)

    @property
    def reached_target(self) -> bool:
        return self.accepted >= self.target

    def lines(self) -> list[str]:
        out = [
            f"{self.accepted}/{self.target} tasks in {self.run_dir}/tasks.jsonl "
            f"({self.pending} pending, {self.rejected_tasks} rejected) in {self.seconds:.1f}s"
        ]
        rejected = {k: v for k, v in self.counters.items() if k.startswith("rejected.")}
        for name, count in sorted(rejected.items(), key=lambda kv: -kv[1]):
            out.append(f"  {name.removeprefix('rejected.')}: {int(count)}")
        return out


def seeds_path(config: Config) -> Path:
    return Path(config.run.seeds) if config.run.seeds else DEFAULT_SEEDS


def build_client(config: Config) -> LLMClient:
    """The HTTP client for the configured endpoints."""
    if not config.endpoints or not config.endpoints[0].base_url:
        raise ConfigError(
            "endpoints: no endpoint configured; pass --base-url URL --model NAME "
            "or add an [[endpoints]] table to the config file"
        )
    from .http_client import build_http_client
    from .usage import UsageMeter

    return build_http_client(
        config.endpoints,
        UsageMeter(),
        max_tokens_budget=config.run.max_tokens_budget,
        max_cost_budget=config.run.max_cost_budget,
    )


@asynccontextmanager
async def _open_store(run_dir: Path) -> AsyncIterator[Store]:
    store = await anyio.to_thread.run_sync(Store, run_dir)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def run(
    config: Config,
    *,
    client: LLMClient | None = None,
    pm: pluggy.PluginManager | None = None,
) -> RunSummary:
    """Run (or resume) generation into ``config.run.out`` until ``config.run.target`` tasks."""
    started = time.monotonic()
    if not config.run.out:
        raise ConfigError("run.out: no run directory given (--out RUN_DIR)")
    run_dir = Path(config.run.out)
    seeds = load_seed_tasks(seeds_path(config))
    plugins = Plugins(pm or make_plugin_manager(config.plugins.disabled))
    chain = plugins.build_filter_chain(config.filters.settings, config.filters.on_error)
    owns_client = client is None
    if client is None:
        client = build_client(config)

    try:
        async with _open_store(run_dir) as store:
            await anyio.to_thread.run_sync(
                _write_json_atomic, run_dir / "config.json", config.to_dict()
            )
            accepted = await anyio.to_thread.run_sync(store.accepted_tasks)
            resumed = await anyio.to_thread.run_sync(store.pending_tasks)
            pooled = await anyio.to_thread.run_sync(store.pooled_instructions)
            counters_before = await anyio.to_thread.run_sync(store.counters)
            if accepted or resumed:
                log.info(
                    "resuming %s: %d accepted, %d pending", run_dir, len(accepted), len(resumed)
                )

            def remember_pool() -> None:
                for instruction in [s.instruction for s in seeds] + pooled:
                    chain.remember(instruction)

            await anyio.to_thread.run_sync(remember_pool)
            pool = Pool(
                seeds,
                [t.instruction for t in accepted],
                target=config.run.target,
                pending=len(resumed),
                classification_only=config.generation.classification_only,
            )
            ctx = RunContext(
                config=config,
                seeds=seeds,
                client=client,
                store=store,
                chain=chain,
                plugins=plugins,
                pool=pool,
                templates=DEFAULT_TEMPLATES,
                classification_demonstrations=select_classification_demonstrations(
                    seeds, config.classification.demonstrations
                ),
            )
            try:
                await run_pipeline(ctx, resumed)
            finally:
                with anyio.CancelScope(shield=True):
                    await ctx.db(store.add_counters, ctx.take_counters())
                    counts = await ctx.db(store.count_by_status)
                    totals = await ctx.db(store.counters)
                    summary = RunSummary(
                        run_dir=str(run_dir),
                        target=config.run.target,
                        accepted=counts["accepted"],
                        pending=counts["pending"],
                        rejected_tasks=counts["rejected"],
                        seconds=time.monotonic() - started,
                        counters=totals,
                    )
                    await anyio.to_thread.run_sync(
                        _write_json_atomic,
                        run_dir / "summary.json",
                        {**summary.__dict__, "counters_before_this_session": counters_before},
                    )
    finally:
        if owns_client:
            with anyio.CancelScope(shield=True):
                await client.aclose()
    return summary

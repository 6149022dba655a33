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
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pluggy
from anyio.abc import TaskGroup

from .config import Config
from .context import RunContext
from .errors import ConfigError
from .ledger import LedgerClient
from .llm import LLMClient
from .pipeline import Resumed, run_pipeline
from .plugins import Plugins, make_plugin_manager
from .pool import Pool
from .prompts import DEFAULT_TEMPLATES, select_classification_demonstrations
from .seeds import load_seed_tasks, resolve_seeds
from .store import Store
from .usage import UsageMeter

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
    stopped_by: str | None = None

    @property
    def reached_target(self) -> bool:
        return self.target > 0 and self.accepted >= self.target

    def lines(self) -> list[str]:
        target = self.target if self.target > 0 else "unlimited"
        out = [f"stopped by {self.stopped_by}"] if self.stopped_by else []
        out += [
            f"{self.accepted}/{target} tasks in {self.run_dir}/tasks.jsonl "
            f"({self.pending} pending, {self.rejected_tasks} rejected) in {self.seconds:.1f}s"
        ]
        rejected = {k: v for k, v in self.counters.items() if k.startswith("rejected.")}
        for name, count in sorted(rejected.items(), key=lambda kv: -kv[1]):
            out.append(f"  {name.removeprefix('rejected.')}: {int(count)}")
        return out


def _ledger_namespace(config: Config) -> str:
    """Answers are reusable only from the same model through the same kind of endpoint."""
    return "|".join(f"{e.model}@{e.api}" for e in config.endpoints)


def seeds_path(config: Config) -> Path:
    return resolve_seeds(config.run.seeds)


def build_client(config: Config, usage: UsageMeter | None = None) -> LLMClient:
    """The HTTP client for the configured endpoints, or the embedded model when there are none."""
    usage = usage if usage is not None else UsageMeter()
    endpoints = tuple(e for e in config.endpoints if e.base_url)
    if not endpoints:
        from .local_backend import LocalClient

        local = config.local
        if config.endpoints and config.local.api == "completions":
            local = replace(local, api=config.endpoints[0].api)  # --api without --base-url
        client = LocalClient(local, usage, seed=config.run.seed)
        log.info("no endpoint configured: using the embedded model %s", client.description)
        return client
    from .http_client import build_http_client

    return build_http_client(
        endpoints,
        usage,
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


async def _stop_on_signals(ctx: RunContext, tg: TaskGroup, stopped_by: list[str]) -> None:
    """First signal: drain, then stop. Second signal: stop now."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            if stopped_by:
                log.warning("second %s: stopping now", received.name)
                tg.cancel_scope.cancel()
                return
            stopped_by.append(received.name)
            log.info(
                "%s: no new requests; waiting up to %.0fs for %d in flight (again to stop now)",
                received.name,
                ctx.config.run.drain_seconds,
                ctx.in_flight,
            )
            ctx.stop_requesting()
            tg.start_soon(_drain, ctx, tg.cancel_scope)


async def _drain(ctx: RunContext, scope: anyio.CancelScope) -> None:
    with anyio.move_on_after(ctx.config.run.drain_seconds):
        await ctx.wait_idle()
    scope.cancel()


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def run(
    config: Config,
    *,
    client: LLMClient | None = None,
    pm: pluggy.PluginManager | None = None,
    handle_signals: bool = False,
    monitor: tuple[str, int] | None = None,
    progress: bool = False,
) -> RunSummary:
    """Run (or resume) generation into ``config.run.out`` until ``config.run.target`` tasks.

    With ``handle_signals``, the first SIGTERM or SIGINT stops new requests and waits up
    to ``run.drain_seconds`` for those in flight, whose answers are recorded; a second
    signal stops at once. Either way everything committed stays consistent.
    """
    started = time.monotonic()
    if not config.run.out:
        raise ConfigError("run.out: no run directory given (--out RUN_DIR)")
    run_dir = Path(config.run.out)
    seeds = load_seed_tasks(seeds_path(config))
    plugins = Plugins(pm or make_plugin_manager(config.plugins.disabled))
    chain = plugins.build_filter_chain(
        config.filters.settings,
        config.filters.on_error,
        allow_unfiltered=config.filters.allow_unfiltered,
    )
    owns_client = client is None
    usage = UsageMeter()
    if client is None:
        client = build_client(config, usage)
    else:
        usage = getattr(client, "usage", None) or usage

    try:
        async with _open_store(run_dir) as store:
            await anyio.to_thread.run_sync(
                _write_json_atomic, run_dir / "config.json", config.to_dict()
            )
            accepted = await anyio.to_thread.run_sync(store.accepted_tasks)
            resumed = Resumed(
                pending=await anyio.to_thread.run_sync(store.pending_tasks),
                generations=await anyio.to_thread.run_sync(store.unprocessed_generations),
            )
            pooled = await anyio.to_thread.run_sync(store.pooled_instructions)
            counters_before = await anyio.to_thread.run_sync(store.counters)
            saved_usage = await anyio.to_thread.run_sync(store.get_meta, "usage")
            if saved_usage:
                usage.restore(saved_usage)
            if accepted or resumed.pending or resumed.generations:
                log.info(
                    "resuming %s: %d accepted, %d pending, %d responses to filter",
                    run_dir,
                    len(accepted),
                    len(resumed.pending),
                    len(resumed.generations),
                )

            def remember_pool() -> None:
                for instruction in [s.instruction for s in seeds] + pooled:
                    chain.remember(instruction)

            await anyio.to_thread.run_sync(remember_pool)
            pool = Pool(
                seeds,
                [t.instruction for t in accepted],
                target=config.run.target,
                pending=len(resumed.pending),
                undecided=len(resumed.candidates()),
                classification_only=config.generation.classification_only,
            )
            ctx = RunContext(
                config=config,
                seeds=seeds,
                client=client,  # replaced below by the ledger that wraps it
                store=store,
                chain=chain,
                plugins=plugins,
                pool=pool,
                templates=plugins.prompt_templates(DEFAULT_TEMPLATES),
                classification_demonstrations=select_classification_demonstrations(
                    seeds, config.classification.demonstrations
                ),
                usage=usage,
            )
            ctx.client = LedgerClient(client, store, ctx.db, ctx.count, _ledger_namespace(config))
            stopped_by: list[str] = []
            try:
                async with anyio.create_task_group() as tg:
                    if handle_signals:
                        tg.start_soon(_stop_on_signals, ctx, tg, stopped_by)
                    if monitor is not None:
                        from .monitor import serve_monitor

                        host, port = monitor
                        url = await tg.start(
                            partial(serve_monitor, ctx.status, host=host, port=port)
                        )
                        log.info("monitor on %s (/healthz, /status, /metrics)", url)
                    if progress:
                        from .progress import show_progress

                        tg.start_soon(partial(show_progress, ctx.status))
                    await run_pipeline(ctx, resumed)
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await ctx.db(store.add_counters, ctx.take_counters())
                    await ctx.db(store.set_meta, "usage", usage.snapshot())
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
                        stopped_by=stopped_by[0] if stopped_by else None,
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

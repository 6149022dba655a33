"""One ``selfinstruct run``: validate everything, open the checkpoint, run the pipeline, report.

Every input (seeds, configuration, filter settings, plugins) is checked before the first
request, so a typo never costs money. Resuming is the same call on the same run
directory: pool, counters, request numbering and pending tasks come back from the
checkpoint; each call records a session (:mod:`.sessions`).

The run is wired once, in order: inputs checked (:func:`check_inputs`), the endpoint
client built (:func:`.backends.build_client`), the checkpoint opened and the session recorded, the
run's state read back and the context built around the complete client
(:func:`open_context`), then the pipeline with the signal handler, monitor and progress
display beside it (:func:`_serve`), and the session's end recorded (:func:`_end_session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pluggy
from anyio.abc import TaskGroup

from .. import counters as names
from ..checkpoint import batches_table
from ..checkpoint.run_files import CONFIG, SUMMARY
from ..checkpoint.store import Durability, Store
from ..client.batch import BatchClient
from ..client.protocol import LLMClient
from ..client.recording import LedgerClient
from ..client.usage import UsageMeter
from ..config import Config
from ..demonstrations import InstanceDemonstrations, load_instance_demonstrations
from ..errors import CheckpointError, ConfigError, SelfInstructError
from ..filters import FilterChain
from ..plugins import Plugins, make_plugin_manager
from ..prompts import DEFAULT_TEMPLATES, select_classification_demonstrations
from ..records import SeedTask
from ..seeds import load_seed_tasks, resolve_seeds
from .answer_guard import AnswerGuard
from .backends import answer_formats_apply, batch_workers, build_client, ledger_namespace
from .commit_groups import GroupCommitter, groups_commits
from .context import RunContext
from .counter_buffer import CounterBuffer
from .failures import FailurePolicy
from .pipeline import Pipeline, Resumed
from .pool import Pool
from .sessions import begin_session, public_config
from .stop import StopGate
from .store_calls import StoreCalls

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
        rejected = names.rejections(self.counters)
        for (level, filter_name), count in sorted(rejected.items(), key=lambda kv: -kv[1]):
            out.append(f"  {level}.{filter_name}: {int(count)}")
        return out


@dataclass(frozen=True)
class RunInputs:
    """Everything checked before the run directory is touched."""

    seeds_file: Path
    seeds: list[SeedTask]
    demonstrations: InstanceDemonstrations
    plugins: Plugins
    chain: FilterChain


@dataclass(frozen=True)
class Beside:
    """What runs beside the pipeline: signal handling, the monitor, the progress display."""

    handle_signals: bool = False
    monitor: tuple[str, int] | None = None
    progress: bool = False


def seeds_path(config: Config) -> Path:
    return resolve_seeds(config.run.seeds)


@asynccontextmanager
async def _open_store(run_dir: Path, durability: Durability = "power") -> AsyncIterator[Store]:
    store = await anyio.to_thread.run_sync(partial(Store, run_dir, durability=durability))
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)


async def _stop_on_signals(
    gate: StopGate, drain_seconds: float, tg: TaskGroup, stopped_by: list[str]
) -> None:
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
                drain_seconds,
                gate.in_flight,
            )
            gate.stop_requesting()
            tg.start_soon(_drain, gate, drain_seconds, tg.cancel_scope)


async def _drain(gate: StopGate, drain_seconds: float, scope: anyio.CancelScope) -> None:
    with anyio.move_on_after(drain_seconds):
        await gate.wait_idle()
    scope.cancel()


def _write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` whole or not at all; a full disk is one line and leaves no ``.tmp``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(
            f"{path}: cannot write ({e.strerror or e}); everything committed before is kept, "
            "run again once there is room"
        ) from None


def check_inputs(
    config: Config, pm: pluggy.PluginManager | None, monitor: tuple[str, int] | None
) -> RunInputs:
    """Refusals that need no checkpoint: made before the run directory is touched."""
    if not config.run.out:
        raise ConfigError("run.out: no run directory given (--out RUN_DIR)")
    seeds_file = seeds_path(config)
    seeds = load_seed_tasks(seeds_file)
    if config.generation.classification_only and not any(s.is_classification for s in seeds):
        raise ConfigError(
            f"generation.classification_only: the seeds in {seeds_file} hold no classification task"
        )
    demonstrations = load_instance_demonstrations(config.instances, seeds, seeds_file)
    if monitor is not None and not 0 <= monitor[1] <= 65535:
        raise ConfigError(f"--monitor: port must be between 0 and 65535, got {monitor[1]}")
    plugins = Plugins(pm or make_plugin_manager(config.plugins.disabled))
    chain = plugins.build_filter_chain(
        config.filters.settings,
        config.filters.on_error,
        allow_unfiltered=config.filters.allow_unfiltered,
    )
    return RunInputs(seeds_file, seeds, demonstrations, plugins, chain)


@dataclass(frozen=True)
class _Saved:
    """The run's state read back from the checkpoint."""

    accepted: list[str]
    pooled: list[str]
    resumed: Resumed


async def _read_back(config: Config, store: Store, usage: UsageMeter) -> _Saved:
    """Accepted and pooled instructions, unfinished work; restores ``usage`` in place."""
    accepted = await anyio.to_thread.run_sync(store.accepted_tasks)
    resumed = Resumed(
        pending=await anyio.to_thread.run_sync(store.pending_tasks),
        generations=await anyio.to_thread.run_sync(store.unprocessed_generations),
    )
    pooled = await anyio.to_thread.run_sync(store.pooled_instructions)
    saved_usage = await anyio.to_thread.run_sync(store.get_meta, "usage")
    if saved_usage:
        usage.restore(saved_usage)
    if accepted or resumed.pending or resumed.generations:
        log.info(
            "resuming %s: %d accepted, %d pending, %d responses to filter",
            config.run.out,
            len(accepted),
            len(resumed.pending),
            len(resumed.generations),
        )
    return _Saved([t.instruction for t in accepted], pooled, resumed)


def _remember(chain: FilterChain, instructions: Sequence[str]) -> None:
    for instruction in instructions:
        chain.remember(instruction)


def _pool(config: Config, seeds: list[SeedTask], saved: _Saved) -> Pool:
    return Pool(
        seeds,
        saved.accepted,
        target=config.run.target,
        filtered=saved.pooled,
        machine_pool=config.generation.machine_pool,
        pending=len(saved.resumed.pending),
        undecided=len(saved.resumed.candidates()),
        classification_only=config.generation.classification_only,
        max_deferred=config.run.queue_size,
    )


async def _earlier_batches(
    endpoints: LLMClient, store: Store, db: StoreCalls, counters: CounterBuffer, resumed: Resumed
) -> Resumed:
    """Batch mode: requests of earlier sessions wait on their batches before a stage asks."""
    if isinstance(endpoints, BatchClient):
        await endpoints.recover(store, db, counters)
        replay = endpoints.unclaimed(names.GENERATE_INSTRUCTIONS)
        if replay:
            log.info("batch mode: replaying %d generation answers of earlier sessions", len(replay))
        return replace(resumed, replay=replay, claim=endpoints.claim)
    still_open = await db(batches_table.open_batches, store.db)
    if still_open:
        log.warning(
            "%d batches of an earlier batch-mode session are still open at the provider; "
            "their answers are collected only by a run with --mode batch",
            len(still_open),
        )
    return resumed


async def open_context(
    config: Config,
    inputs: RunInputs,
    store: Store,
    endpoints: LLMClient,
    usage: UsageMeter,
) -> tuple[RunContext, Resumed]:
    """Read the run back from the checkpoint and build the run's context, complete.

    ``endpoints`` is the client that reaches the model; the stages get it wrapped in the
    request ledger, which records every answer before anyone processes it.
    """
    config = batch_workers(config)
    saved = await _read_back(config, store, usage)
    seeds = inputs.seeds
    generation = config.generation
    # Classification-only runs compare against the classification seeds only, as the
    # original does: the other seeds never reach a prompt, so they are not in the pool.
    compared = [s for s in seeds if s.is_classification or not generation.classification_only]
    known = [s.instruction for s in compared] + saved.pooled
    await anyio.to_thread.run_sync(_remember, inputs.chain, known)
    pool = _pool(config, seeds, saved)
    counters = CounterBuffer()
    count_to = getattr(endpoints, "count_to", None)
    if count_to is not None:
        count_to(counters.count)  # the HTTP client's context-length shrinks, for instance
    db = StoreCalls(counters, inline=not store.waits_for_disk)
    resumed = await _earlier_batches(endpoints, store, db, counters, saved.resumed)
    run = config.run
    ctx = RunContext(
        config=config,
        seeds=seeds,
        templates=inputs.plugins.prompt_templates(DEFAULT_TEMPLATES),
        classification_demonstrations=select_classification_demonstrations(
            seeds, config.classification.demonstrations
        ),
        instance_demonstrations=inputs.demonstrations,
        client=LedgerClient(
            endpoints,
            store,
            db,
            counters.count,
            ledger_namespace(config),
            answer_formats=answer_formats_apply(config),
        ),
        store=store,
        db=db,
        counters=counters,
        chain=inputs.chain,
        plugins=inputs.plugins,
        pool=pool,
        gate=StopGate(),
        failures=FailurePolicy(),
        guard=AnswerGuard(run.max_useless_streak, run.max_useless_share, run.useless_window),
        usage=usage,
        started=time.time(),
    )
    return ctx, resumed


async def _serve(ctx: RunContext, resumed: Resumed, beside: Beside, stopped_by: list[str]) -> None:
    """The pipeline, with the signal handler, monitor and progress display beside it."""
    async with Pipeline(ctx, resumed) as pipeline, anyio.create_task_group() as tg:

        def status() -> dict[str, Any]:
            return ctx.status(pipeline.queue_depths())

        if beside.handle_signals:
            tg.start_soon(_stop_on_signals, ctx.gate, ctx.config.run.drain_seconds, tg, stopped_by)
        if beside.monitor is not None:
            from ..observe.monitor import serve_monitor

            host, port = beside.monitor
            url = await tg.start(partial(serve_monitor, status, host=host, port=port))
            log.info("monitor on %s (/healthz, /status, /metrics)", url)
        if beside.progress:
            from ..observe.progress import show_progress

            tg.start_soon(partial(show_progress, status))
        batch = getattr(ctx.client, "inner", None)
        if isinstance(batch, BatchClient):
            await tg.start(batch.serve)
        if groups_commits(ctx.config):
            committer = GroupCommitter(ctx.store, ctx.db, ctx.config.run.commit_interval)
            tg.start_soon(committer.run)
        await pipeline.run()
        tg.cancel_scope.cancel()


async def _end_session(
    ctx: RunContext,
    started: float,
    stopped_by: list[str],
    counters_before: dict[str, float],
    *,
    failing: bool,
) -> RunSummary | None:
    """Flush counters and usage, write ``summary.json``; return the summary.

    While another error is ending the run, a failure here (the same full disk, most
    likely) is logged and None returned, so the error the user sees is the first one.
    """
    store, config = ctx.store, ctx.config
    try:
        await ctx.db(store.add_counters, ctx.take_counters())
        if ctx.usage is not None:
            await ctx.db(store.set_meta, "usage", ctx.usage.snapshot())
        await ctx.db(store.flush)  # the last group too, before the summary says what is done
        counts = await ctx.db(store.count_by_status)
        totals = await ctx.db(store.counters)
        summary = RunSummary(
            run_dir=str(config.run.out),
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
            Path(config.run.out) / SUMMARY,
            {**summary.__dict__, "counters_before_this_session": counters_before},
        )
    except (SelfInstructError, sqlite3.Error, OSError) as e:
        if not failing:
            raise
        log.warning("could not record the end of this session: %s", e)
        return None
    return summary


async def _run_session(
    config: Config,
    inputs: RunInputs,
    client: LLMClient,
    usage: UsageMeter,
    beside: Beside,
    started: float,
) -> RunSummary:
    """One session on the run directory, from recording it to writing ``summary.json``."""
    run_dir = Path(config.run.out)
    async with _open_store(run_dir, config.run.durability) as store:
        await anyio.to_thread.run_sync(begin_session, store, config, inputs.seeds_file)
        await anyio.to_thread.run_sync(_write_json_atomic, run_dir / CONFIG, public_config(config))
        counters_before = await anyio.to_thread.run_sync(store.counters)
        ctx, resumed = await open_context(config, inputs, store, client, usage)
        stopped_by: list[str] = []
        ending = partial(_end_session, ctx, started, stopped_by, counters_before)
        try:
            await _serve(ctx, resumed, beside, stopped_by)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await ending(failing=True)
            raise
        with anyio.CancelScope(shield=True):
            summary = await ending(failing=False)
    assert summary is not None  # only a failing end returns None, and that one re-raised
    return summary


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
    inputs = check_inputs(config, pm, monitor)
    if config.run.event_loop != "asyncio":  # the loop actually running, not the setting
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
    owns_client = client is None
    usage = UsageMeter()
    if client is None:
        client = build_client(config, usage)
    else:
        usage = getattr(client, "usage", None) or usage
    beside = Beside(handle_signals, monitor, progress)
    try:
        return await _run_session(config, inputs, client, usage, beside, started)
    finally:
        if owns_client:
            with anyio.CancelScope(shield=True):
                await client.aclose()

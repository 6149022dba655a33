"""One ``selfinstruct run``: validate everything, open the checkpoint, run the pipeline, report.

Every input (seeds, configuration, filter settings, plugins) is checked before the first
request, so a typo never costs money. Resuming is the same call on the same run
directory: pool, counters, request numbering and pending tasks come back from the
checkpoint.

Each call records a session in the checkpoint (configuration without secrets, the seed
file's path and sha256, the endpoints' model, api and base URL, or the local model file).
A resume whose seeds (by content), model(s) or API(s) differ from those of the run's first
session that produced anything is refused before any request, unless
``run.allow_mixed`` (``--allow-mixed``) says to add to the run anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread
import pluggy
from anyio.abc import TaskGroup

from ..checkpoint.run_files import CONFIG, SUMMARY
from ..checkpoint.store import Store
from ..client.protocol import LLMClient
from ..client.recording import LedgerClient
from ..client.usage import UsageMeter
from ..config import Config
from ..errors import CheckpointError, ConfigError, SelfInstructError
from ..plugins import Plugins, make_plugin_manager
from ..prompts import DEFAULT_TEMPLATES, select_classification_demonstrations
from ..records import SeedTask
from ..seeds import load_seed_tasks, resolve_seeds
from .context import RunContext
from .pipeline import Resumed, run_pipeline
from .pool import Pool

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


def _local_api(config: Config) -> Literal["completions", "chat"]:
    """The embedded model's API: ``--api`` without ``--base-url`` lands on the first endpoint."""
    if config.endpoints and config.local.api == "completions":
        return config.endpoints[0].api
    return config.local.api


def build_client(config: Config, usage: UsageMeter | None = None) -> LLMClient:
    """The HTTP client for the configured endpoints, or the embedded model when there are none."""
    usage = usage if usage is not None else UsageMeter()
    endpoints = tuple(e for e in config.endpoints if e.base_url)
    if not endpoints:
        from ..client.local import LocalClient

        local = replace(config.local, api=_local_api(config))
        client = LocalClient(local, usage, seed=config.run.seed)
        log.info("no endpoint configured: using the embedded model %s", client.description)
        return client
    from ..client.http import build_http_client

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


# ---------------------------------------------------------------- sessions and provenance


def without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part: credentials never reach the run directory."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def public_config(config: Config) -> dict[str, Any]:
    """``config.to_dict()`` as written to ``config.json`` and the sessions table."""
    data = config.to_dict()
    for endpoint in data.get("endpoints", []):
        endpoint["base_url"] = without_userinfo(endpoint.get("base_url", ""))
    return data


def _local_model_name(model_path: str) -> str:
    if model_path:
        return Path(model_path).name
    from ..client.local import default_model_path

    try:
        return default_model_path().name
    except ConfigError:
        return "(default model, not installed)"


def provenance(config: dict[str, Any], seeds_file: Path | None) -> dict[str, Any]:
    """What a session's tasks come from, from its :func:`public_config`."""
    digest = None
    if seeds_file is not None:
        with contextlib.suppress(OSError):
            digest = hashlib.sha256(seeds_file.read_bytes()).hexdigest()
    endpoints = [e for e in config.get("endpoints", []) if e.get("base_url")]
    found: dict[str, Any] = {
        "seeds": str(seeds_file) if seeds_file is not None else None,
        "seeds_resolved": str(seeds_file.resolve()) if seeds_file is not None else None,
        "seeds_sha256": digest,
        "endpoints": [
            {"model": e.get("model", ""), "api": e.get("api", ""), "base_url": e["base_url"]}
            for e in endpoints
        ],
    }
    if not endpoints:
        local = config.get("local", {})
        api = local.get("api", "completions")
        if config.get("endpoints") and api == "completions":
            api = config["endpoints"][0].get("api", api)
        found["local"] = {"model_file": _local_model_name(local.get("model_path", "")), "api": api}
    return found


def _models(found: dict[str, Any]) -> list[str]:
    if found.get("endpoints"):
        return sorted({f"model '{e['model']}'" for e in found["endpoints"]})
    return [f"the embedded model {found.get('local', {}).get('model_file', '?')}"]


def _apis(found: dict[str, Any]) -> list[str]:
    if found.get("endpoints"):
        return sorted({str(e["api"]) for e in found["endpoints"]})
    return [str(found.get("local", {}).get("api", "completions"))]


def _seeds_text(found: dict[str, Any]) -> str:
    digest = found.get("seeds_sha256")
    return f"seeds {found.get('seeds')} (sha256 {digest[:8] if digest else 'unknown'})"


def describe_provenance(found: dict[str, Any]) -> str:
    """``model 'a' (api completions) and seeds FILE (sha256 1234abcd)``."""
    return f"{', '.join(_models(found))} (api {', '.join(_apis(found))}) and {_seeds_text(found)}"


def provenance_differences(first: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What ``current`` asks for that differs from ``first``: models, APIs, seed content."""
    differences = []
    if _models(first) != _models(current):
        differences.append(", ".join(_models(current)))
    if _apis(first) != _apis(current):
        differences.append(f"api {', '.join(_apis(current))}")
    if first.get("seeds_sha256") and first["seeds_sha256"] != current.get("seeds_sha256"):
        differences.append(_seeds_text(current))
    return differences


def _reference_session(sessions: list[dict[str, Any]], progress: int) -> dict[str, Any] | None:
    """The first session that added anything: one that failed at once made nothing to mix."""
    for i, session in enumerate(sessions):
        after = sessions[i + 1]["progress_before"] if i + 1 < len(sessions) else progress
        if after > session["progress_before"]:
            return session
    return None


def _recover_first_session(store: Store, run_dir: Path) -> None:
    """A run from before sessions were recorded: its ``config.json`` says what made it."""
    path = run_dir / CONFIG
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        started = path.stat().st_mtime
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    seeds = old.get("run", {}).get("seeds", "")
    try:
        seeds_file: Path | None = resolve_seeds(seeds if isinstance(seeds, str) else "")
    except SelfInstructError:
        seeds_file = None
    found = {**provenance(old, seeds_file), "recorded_from": CONFIG}
    store.add_session(old, found, from_start=True, started=started)


def begin_session(store: Store, config: Config, seeds_file: Path) -> None:
    """Refuse a resume that would mix datasets (unless allowed); record this session."""
    run_dir = Path(config.run.out)
    settings = public_config(config)
    current = provenance(settings, seeds_file)
    progress = store.progress_mark()
    if progress and not store.sessions():
        _recover_first_session(store, run_dir)
    first = _reference_session(store.sessions(), progress)
    differences = provenance_differences(first["provenance"], current) if first else []
    if differences:
        was = describe_provenance(first["provenance"]) if first else ""
        asks = " and ".join(differences)
        if not config.run.allow_mixed:
            raise ConfigError(
                f"{run_dir} was generated with {was}; this session asks for {asks}; "
                "pass --allow-mixed to add to it anyway, or use another --out"
            )
        log.warning("%s was generated with %s; adding tasks made with %s", run_dir, was, asks)
    store.add_session(settings, current)


def _check_before_opening(
    config: Config, seeds: list[SeedTask], seeds_file: Path, monitor: tuple[str, int] | None
) -> None:
    """Refusals that need no checkpoint: made before the run directory is touched."""
    if config.generation.classification_only and not any(s.is_classification for s in seeds):
        raise ConfigError(
            f"generation.classification_only: the seeds in {seeds_file} hold no classification task"
        )
    if monitor is not None and not 0 <= monitor[1] <= 65535:
        raise ConfigError(f"--monitor: port must be between 0 and 65535, got {monitor[1]}")


async def _prepare(
    config: Config,
    store: Store,
    seeds: list[SeedTask],
    plugins: Plugins,
    chain: Any,
    client: LLMClient,
    usage: UsageMeter,
) -> tuple[RunContext, Resumed]:
    """Read the run back from the checkpoint and build the run's context."""
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
    return ctx, resumed


async def _serve(
    ctx: RunContext,
    resumed: Resumed,
    *,
    handle_signals: bool,
    monitor: tuple[str, int] | None,
    progress: bool,
    stopped_by: list[str],
) -> None:
    """The pipeline, with the signal handler, monitor and progress display beside it."""
    async with anyio.create_task_group() as tg:
        if handle_signals:
            tg.start_soon(_stop_on_signals, ctx, tg, stopped_by)
        if monitor is not None:
            from ..observe.monitor import serve_monitor

            host, port = monitor
            url = await tg.start(partial(serve_monitor, ctx.status, host=host, port=port))
            log.info("monitor on %s (/healthz, /status, /metrics)", url)
        if progress:
            from ..observe.progress import show_progress

            tg.start_soon(partial(show_progress, ctx.status))
        await run_pipeline(ctx, resumed)
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
    seeds_file = seeds_path(config)
    seeds = load_seed_tasks(seeds_file)
    _check_before_opening(config, seeds, seeds_file, monitor)
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
            await anyio.to_thread.run_sync(begin_session, store, config, seeds_file)
            await anyio.to_thread.run_sync(
                _write_json_atomic, run_dir / CONFIG, public_config(config)
            )
            counters_before = await anyio.to_thread.run_sync(store.counters)
            ctx, resumed = await _prepare(config, store, seeds, plugins, chain, client, usage)
            stopped_by: list[str] = []
            ending = partial(_end_session, ctx, started, stopped_by, counters_before)
            try:
                await _serve(
                    ctx,
                    resumed,
                    handle_signals=handle_signals,
                    monitor=monitor,
                    progress=progress,
                    stopped_by=stopped_by,
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await ending(failing=True)
                raise
            with anyio.CancelScope(shield=True):
                summary = await ending(failing=False)
    finally:
        if owns_client:
            with anyio.CancelScope(shield=True):
                await client.aclose()
    assert summary is not None  # only a failing end returns None, and that one re-raised
    return summary

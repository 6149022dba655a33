"""The ``selfinstruct`` command line: run, status, plugins, filter, stats, report, export, dedup.

``run``, ``status`` and ``plugins`` live here; ``filter`` (the instruction filters over a
file, :mod:`selfinstruct_async.filter_file`) and the output commands (``stats``,
``report``, ``export``, ``dedup``, from :mod:`selfinstruct_async.outputs`) add their own
sub-parsers.

Exit codes:

- 0: done (target reached, or stopped by SIGTERM or Ctrl-C after draining);
- 1: error, with a one-line reason on stderr;
- 2: bad usage;
- 3: stopped by the token or cost budget;
- 141: the reader of standard output went away (``selfinstruct stats RUN | head -1``),
  nothing printed, as for any command killed by SIGPIPE; ``run`` keeps its own exit code
  then, since its work is done;
- 130: interrupted (Ctrl-C in a command that has no graceful stop, e.g. ``stats``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from . import __version__
from .config import PRESETS, load_config
from .errors import BudgetExhausted, ConfigError, SelfInstructError
from .observe.logs import configure_logging, redact, silence_broken_stream

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE


def _cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Flags given on the command line, as config sections; absent flags change nothing."""
    layout = {
        "run": {"out": "out", "seeds": "seeds", "target": "target", "seed": "seed", "mode": "mode"},
        "endpoint": {
            "base_url": "base_url",
            "model": "model",
            "api": "api",
            "rpm": "rpm",
            "tpm": "tpm",
            "concurrency": "concurrency",
        },
    }
    overrides: dict[str, dict[str, Any]] = {}
    for section, keys in layout.items():
        for key, attr in keys.items():
            value = getattr(args, attr, None)
            if value is not None:
                overrides.setdefault(section, {})[key] = value
    if getattr(args, "model_path", None):
        overrides.setdefault("local", {})["model_path"] = args.model_path
    if getattr(args, "classification_only", False):
        overrides.setdefault("generation", {})["classification_only"] = True
    if getattr(args, "allow_mixed", False):
        overrides.setdefault("run", {})["allow_mixed"] = True
    return overrides


def _run(args: argparse.Namespace) -> int:
    from .run.runner import run

    config_path = args.config or (
        Path(os.environ["SELFINSTRUCT_CONFIG"]) if os.environ.get("SELFINSTRUCT_CONFIG") else None
    )
    config = load_config(
        config_path, environ=os.environ, overrides=_cli_overrides(args), preset=args.preset
    )
    configure_logging(
        verbose=args.verbose,
        json_lines=args.log_json,
        stream=sys.stderr,
        secret_env=[e.api_key_env for e in config.endpoints if e.api_key_env],
    )
    summary = anyio.run(
        partial(
            run,
            config,
            handle_signals=True,
            monitor=args.monitor,
            progress=not args.no_progress,
        ),
        backend_options=loop_options(config.run.event_loop),
    )
    code = EXIT_OK if summary.reached_target or summary.stopped_by else EXIT_ERROR
    try:
        for line in summary.lines():
            print(line)
        sys.stdout.flush()
    except OSError:
        # Nobody reads the summary any more; the run's data and summary.json are written.
        silence_broken_stream(sys.stdout)
    return code


def loop_options(event_loop: str) -> dict[str, Any]:
    """anyio's asyncio backend options for ``run.event_loop``; a clear error without uvloop."""
    if event_loop == "asyncio":
        return {}
    if importlib.util.find_spec("uvloop") is None:
        raise ConfigError(
            'run.event_loop: "uvloop" needs the uvloop package, which is not installed '
            "(pip install 'selfinstruct-async[fast]'), or set it back to \"asyncio\""
        )
    return {"use_uvloop": True}


def monitor_address(value: str) -> tuple[str, int]:
    """``[HOST:]PORT`` for ``--monitor``, checked while parsing: before any run directory."""
    host, _, port = value.rpartition(":")
    if not (port.isascii() and port.isdigit() and 0 <= int(port) <= 65535):
        raise argparse.ArgumentTypeError(
            f"expected [HOST:]PORT with PORT from 0 to 65535, got {value!r}"
        )
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise argparse.ArgumentTypeError(
            f"an IPv6 host goes in brackets ([::1]:{port}), got {value!r}"
        )
    return (host.strip("[]") or "127.0.0.1", int(port))


def _status(args: argparse.Namespace) -> int:
    from .checkpoint.batches_table import open_batches
    from .checkpoint.store import Store
    from .run.sessions import describe_provenance

    with Store(Path(args.run_dir), read_only=True) as store:
        report = {
            "run_dir": args.run_dir,
            "tasks": store.count_by_status(),
            "counters": store.counters(),
            "rejections": store.rejection_summary(),
            "sessions": store.sessions(),
            "open_batches": [dataclasses.asdict(b) for b in open_batches(store.db)],
        }
        raw_usage = store.get_meta("usage")
    report["cost"] = _status_cost(args, raw_usage, report["tasks"]["accepted"])
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return EXIT_OK
    tasks = report["tasks"]
    print(
        f"{args.run_dir}: {tasks['accepted']} accepted, {tasks['pending']} pending, "
        f"{tasks['rejected']} rejected tasks"
    )
    for name, info in report["rejections"].items():
        example = info["examples"][0]["reason"] if info["examples"] else ""
        print(f"  {name:40s} {info['count']:>8d}  e.g. {example}")
    for session in report["sessions"]:
        print(
            f"  session {session['session']} from {session['started']}: "
            f"{session['tasks_added']} tasks, {describe_provenance(session['provenance'])}"
        )
    _print_open_batches(report["open_batches"])
    print(_cost_line(report["cost"]))
    return EXIT_OK


def _print_open_batches(batches: list[dict[str, Any]], shown: int = 10) -> None:
    """Batch-mode batches not collected yet: what a resume with --mode batch will wait for."""
    if not batches:
        return
    waiting = sum(b["requests"] for b in batches)
    print(f"  open batches: {len(batches)} ({waiting} requests)")
    for b in batches[:shown]:
        print(
            f"    {b['local_id']}  {b['batch_id'] or '(not created)'}  "
            f"{b['status'] or b['state']}  {b['requests']} requests"
        )
    if len(batches) > shown:
        print(f"    ... and {len(batches) - shown} more")


def _status_cost(args: argparse.Namespace, raw_usage: Any, accepted: int) -> dict[str, Any]:
    from .outputs.prices import load_prices, run_models
    from .outputs.stats import status_cost

    prices = None
    if args.prices is not None:
        prices = load_prices(args.prices).for_models(run_models(Path(args.run_dir)))
    return status_cost(raw_usage, accepted, prices)


def _cost_line(cost: dict[str, Any]) -> str:
    """Cost per 1,000 accepted tasks and the cached share of prompt tokens, by stage."""
    per_1000, share = cost["per_1000_accepted"], cost["cached_share"]
    head = "  cost per 1,000 accepted tasks: " + (
        "-" if per_1000 is None else f"${per_1000:,.4f} ({cost['basis']})"
    )

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    stages = ", ".join(f"{name} {pct(s['cached_share'])}" for name, s in cost["stages"].items())
    cached = pct(share)
    return f"{head}; cached prompt tokens {cached}" + (f" ({stages})" if stages else "")


def _plugins(args: argparse.Namespace) -> int:
    from .config import load_config as load
    from .plugins import Plugins, make_plugin_manager

    config = load(args.config, environ=os.environ)
    pm = make_plugin_manager(config.plugins.disabled)
    plugins = Plugins(pm)
    infos = plugins.describe()
    chain = plugins.build_filter_chain(config.filters.settings, config.filters.on_error)
    left_out = sorted(pm.disabled_filters)
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return EXIT_OK
    for info in infos:
        print(f"{info.name} {info.version or ''}".rstrip())
        print(f"  hooks: {', '.join(info.hooks)}")
        if info.filters:
            print(f"  filters: {', '.join(info.filters)}")
    if left_out:
        print(f"filters left out by plugins.disabled: {', '.join(left_out)}")
    print("instruction filters, in order:")
    for f in chain.instruction_filters:
        print(f"  {f.order:>4d} {f.name}")
    print("instance filters, in order:")
    for g in chain.instance_filters:
        print(f"  {g.order:>4d} {g.name}")
    return EXIT_OK


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfinstruct",
        description="Self-Instruct data generation, resumable and rate-limited.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_status_parser(sub)
    _add_plugins_parser(sub)

    from . import filter_file
    from .outputs import dedup, export, report, stats

    filter_file.add_parser(sub)
    for command in (stats, report, export, dedup):
        command.add_parser(sub)
    return parser


def _add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="generate (or resume generating) a dataset")
    run.add_argument("--out", help="run directory (created, or resumed when it exists)")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named preset: 'paper' is the original code's choices "
        "(docs/faithfulness.md)",
    )
    run.add_argument("--seeds", help="seed tasks JSONL (default: the project's seeds)")
    run.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    run.add_argument("--model", help="model name sent to the endpoint")
    run.add_argument("--api", choices=["completions", "chat"], help="endpoint kind")
    run.add_argument(
        "--model-path",
        help="GGUF file for the embedded llama.cpp backend (used without --base-url)",
    )
    run.add_argument(
        "--target",
        type=int,
        help="stop once tasks.jsonl holds this many tasks (0: run until stopped)",
    )
    run.add_argument("--seed", type=int, help="random seed for prompt sampling")
    run.add_argument(
        "--mode",
        choices=["stream", "batch"],
        help="stream requests as the stages make them (default), or send them in rounds "
        "through the provider's Batch API at the batch price ([batch] settings)",
    )
    run.add_argument("--rpm", type=float, help="requests per minute limit")
    run.add_argument("--tpm", type=float, help="tokens per minute limit")
    run.add_argument("--concurrency", type=int, help="most requests in flight at once")
    run.add_argument(
        "--classification-only", action="store_true", help="prompt with classification seeds only"
    )
    run.add_argument(
        "--monitor",
        metavar="[HOST:]PORT",
        type=monitor_address,
        help="serve /healthz, /status, /metrics (host defaults to 127.0.0.1; no authentication)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress display or lines")
    run.add_argument(
        "--allow-mixed",
        action="store_true",
        help="resume even though seeds, model or API differ from the run's earlier sessions",
    )
    run.set_defaults(func=_run)


def _add_status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="progress of a run directory (safe while it runs)")
    status.add_argument("run_dir")
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="price the spend with this TOML price table (see stats; default: as recorded)",
    )
    status.set_defaults(func=_status)


def _add_plugins_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plugins = sub.add_parser("plugins", help="list loaded plugins, hooks and filter order")
    plugins.add_argument("--config", type=Path)
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=_plugins)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, json_lines=args.log_json, stream=sys.stderr)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a closed pipe is then handled below
        return code
    except KeyboardInterrupt:
        _say("selfinstruct: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``| head -1``): it has what it wanted.
        silence_broken_stream(sys.stdout)
        return EXIT_BROKEN_PIPE
    except (SelfInstructError, BaseExceptionGroup) as raised:
        error = _find_error(raised)
        if error is None:
            raise
        if isinstance(error, BudgetExhausted):
            _say(f"selfinstruct: stopped: {error}")
            return EXIT_BUDGET
        _say(f"selfinstruct: error: {error}")
        return EXIT_ERROR


def _say(line: str) -> None:
    """The command's last word on stderr, scrubbed like a log line; lost if stderr is gone."""
    try:
        print(redact(line), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        silence_broken_stream(sys.stderr)


def _find_error(raised: BaseException) -> SelfInstructError | None:
    """The first of our own errors inside (possibly nested) task-group exception groups."""
    if isinstance(raised, SelfInstructError):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        for inner in raised.exceptions:
            found = _find_error(inner)
            if found is not None:
                return found
    return None

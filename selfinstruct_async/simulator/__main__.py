"""Run the simulated provider: ``python -m selfinstruct_async.simulator --port 8000 --rpm 3000``.

Prints ``listening on http://HOST:PORT/v1`` once it accepts requests (``--port 0`` picks a
free port, which is how ``bench/rpm.py`` starts it in a separate process) and serves until
interrupted. ``GET /_simulator/stats`` returns the counters as JSON; ``POST
/_simulator/outage`` with ``{"active": true}`` or ``{"active": false}`` starts or ends an
outage (every request answered 503).

A hostile provider, for example::

    python -m selfinstruct_async.simulator --answers echo            # useless answers
    python -m selfinstruct_async.simulator --fault-429 0.5 --retry-after 86400
    python -m selfinstruct_async.simulator --fault-huge 0.1 --huge-bytes 100000000
    python -m selfinstruct_async.simulator --outage-after 20 --outage-seconds 5
    python -m selfinstruct_async.simulator --rpm 600 --limit-slice 0.1   # 1 per 100 ms slice
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from .server import running_simulator
from .settings import ANSWER_MODES, CONTEXT_WORDINGS, FAULTS, SimulatorSettings, echo_respond


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m selfinstruct_async.simulator",
        description="A simulated OpenAI-compatible provider on loopback.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    _add_limit_options(p)
    _add_fault_options(p)
    _add_answer_options(p)
    _add_batch_options(p)
    return p


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    """The Batch API (simulator.batch_api): how long batches take, expiry, failures, limits."""
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds from creating a batch to its completion",
    )
    p.add_argument(
        "--batch-window",
        type=float,
        default=86_400.0,
        metavar="S",
        help="seconds after which an unfinished batch expires with partial results",
    )
    p.add_argument(
        "--batch-error-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="share of batch lines answered with a 500 in the error file",
    )
    p.add_argument("--batch-max-requests", type=int, default=50_000, metavar="N")
    p.add_argument("--batch-max-file-bytes", type=int, default=200 << 20, metavar="N")


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    """Rate limits and latency: how a healthy provider paces its clients."""
    p.add_argument("--rpm", type=float, default=None, help="requests per minute (default: none)")
    p.add_argument("--tpm", type=float, default=None, help="tokens per minute (default: none)")
    p.add_argument("--window", type=float, default=1.0, help="seconds of burst the limits allow")
    p.add_argument(
        "--limit-slice",
        type=float,
        default=None,
        metavar="S",
        help="enforce the limits in fixed S-second slices on the wall clock (e.g. 1 or 0.1): "
        "limit/60*S per slice, instead of a --window bucket",
    )
    p.add_argument("--no-rate-limit-headers", action="store_true", help="omit x-ratelimit-*")
    p.add_argument("--latency", type=float, default=0.0, help="median latency in seconds")
    p.add_argument("--latency-sigma", type=float, default=0.0, help="lognormal sigma (0: fixed)")


def _add_fault_options(p: argparse.ArgumentParser) -> None:
    """Injected faults and a hostile provider's habits: long waits, huge bodies, outages."""
    for fault in FAULTS:
        p.add_argument(f"--fault-{fault}", type=float, default=0.0, metavar="P")
    p.add_argument("--hang-seconds", type=float, default=3600.0)
    p.add_argument(
        "--retry-after",
        type=float,
        default=None,
        metavar="S",
        help="send this Retry-After (seconds) on every 429, e.g. 86400",
    )
    p.add_argument(
        "--huge-bytes",
        type=int,
        default=100 << 20,
        metavar="N",
        help="body size of a --fault-huge answer (default: 100 MiB)",
    )
    p.add_argument(
        "--huge-chunked",
        action="store_true",
        help="send huge bodies chunked, without Content-Length",
    )
    p.add_argument(
        "--huge-chunk-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="pause between 64 KiB pieces of a huge body",
    )
    p.add_argument(
        "--outage-after",
        type=int,
        default=None,
        metavar="N",
        help="after N successful answers, answer 503 for --outage-seconds",
    )
    p.add_argument("--outage-seconds", type=float, default=5.0, metavar="S")


def _add_answer_options(p: argparse.ArgumentParser) -> None:
    """What the provider answers, and to whom."""
    p.add_argument(
        "--answers",
        choices=ANSWER_MODES,
        default="normal",
        help="useless answers: the prompt echoed back, null text, or empty text",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="sim-model")
    p.add_argument(
        "--api-key-env",
        default="",
        help="require the key held in this environment variable as a Bearer token",
    )
    p.add_argument(
        "--responder",
        choices=("self-instruct", "echo"),
        default="self-instruct",
        help="answers that follow our prompts (default) or the prompt's first words",
    )
    p.add_argument(
        "--context-limit",
        type=int,
        default=None,
        metavar="TOKENS",
        help="answer 400 when prompt tokens + max_tokens exceed this (default: no limit)",
    )
    p.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="report no cached prompt tokens (default: OpenAI's automatic prefix caching)",
    )
    p.add_argument(
        "--prompt-cache-ttl",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds a cached prompt prefix lives after its last use",
    )
    p.add_argument(
        "--context-wording",
        choices=CONTEXT_WORDINGS,
        default="openai",
        help="whose words the context-length 400 is in",
    )


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        raise SystemExit(f"--api-key-env: environment variable {args.api_key_env} is not set")
    return SimulatorSettings(
        latency_median=args.latency,
        latency_sigma=args.latency_sigma,
        rpm=args.rpm,
        tpm=args.tpm,
        context_limit=args.context_limit,
        context_wording=args.context_wording,
        window=args.window,
        limit_slice=args.limit_slice,
        rate_limit_headers=not args.no_rate_limit_headers,
        fault_5xx=args.fault_5xx,
        fault_reset=args.fault_reset,
        fault_hang=args.fault_hang,
        fault_malformed=args.fault_malformed,
        fault_empty=args.fault_empty,
        fault_truncate=args.fault_truncate,
        fault_429=args.fault_429,
        fault_huge=args.fault_huge,
        hang_seconds=args.hang_seconds,
        retry_after=args.retry_after,
        huge_bytes=args.huge_bytes,
        huge_chunked=args.huge_chunked,
        huge_chunk_delay=args.huge_chunk_delay,
        answers=args.answers,
        outage_after=args.outage_after,
        outage_seconds=args.outage_seconds,
        seed=args.seed,
        model=args.model,
        api_key=api_key,
        responder=echo_respond if args.responder == "echo" else None,
        prompt_cache=not args.no_prompt_cache,
        prompt_cache_ttl=args.prompt_cache_ttl,
        batch_seconds=args.batch_seconds,
        batch_window=args.batch_window,
        batch_error_rate=args.batch_error_rate,
        batch_max_requests=args.batch_max_requests,
        batch_max_file_bytes=args.batch_max_file_bytes,
    )


async def _serve(settings: SimulatorSettings, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running_simulator(settings, host=host, port=port) as handle:
        print(f"listening on {handle.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(settings, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The full pipeline held at a provider's limit: the rate it keeps, its 429s, its CPU.

    .venv/bin/python bench/pipeline_at_limit.py                  # 30,000 RPM, 60 s measured
    .venv/bin/python bench/pipeline_at_limit.py --rpm 60000 --seconds 30
    .venv/bin/python bench/pipeline_at_limit.py --limit-slice 1  # the limit in 1 s slices

Issue 15's title, measured directly: "the client is never the bottleneck: a full
pipeline at 30,000 requests/min on one core". ``bench/pipeline.py`` measures the client's
CPU per request with the simulator answering at once; this runs the same pipeline (every
stage, filter, checkpoint write) from the seeds against the simulator in its own process
enforcing ``--rpm`` (a sliding window, or fixed wall-clock slices with
``--limit-slice``) with lognormal latency (median ``--latency`` s), the client configured
with the provider's limit as a user would configure it. After ``--warmup`` seconds it
measures ``--seconds`` of steady state, then stops the run (a cancelled run, as a killed
daemon is; the checkpoint is thrown away).

Printed: the rate the simulator answered in the window against the limit (target >= 0.98),
the 429s it sent (target 0), the client's CPU in the window as a share of one core, its
CPU per request, and the rate one core of this client could sustain at that cost. The
client is not the bottleneck when the first two pass with the CPU share well under 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import cpu_now, pipeline_config  # noqa: E402

from selfinstruct_async.config import Config  # noqa: E402
from selfinstruct_async.plugins import make_plugin_manager  # noqa: E402
from selfinstruct_async.run.runner import run  # noqa: E402
from selfinstruct_async.simulator.process import simulator_process, stats  # noqa: E402


@dataclass(frozen=True)
class Reading:
    """The simulator's counters and the client's clocks at one moment."""

    answered: int
    rate_limited: int
    cpu: float
    wall: float


async def read(base_url: str) -> Reading:
    seen = await anyio.to_thread.run_sync(stats, base_url)  # urllib: off the loop
    return Reading(int(seen["ok"]), int(seen["rate_limited"]), cpu_now(), time.monotonic())


def at_limit_config(base_url: str, out: Path, args: argparse.Namespace) -> Config:
    """``pipeline.py``'s configuration, with the provider's limit and room for its latency.

    About ``rpm / 60 * latency`` requests are in flight at the limit (~280 at 30,000 RPM
    and 0.5 s): the workers and the endpoint's concurrency leave room for twice that.
    """
    config = pipeline_config(base_url, out, 10_000_000, args.concurrency)
    endpoint = replace(config.endpoints[0], rpm=float(args.rpm), expected_latency=args.latency)
    return replace(
        config,
        endpoints=(endpoint,),
        generation=replace(config.generation, workers=args.concurrency // 8),
        classification=replace(config.classification, workers=args.concurrency // 2),
        instances=replace(config.instances, workers=args.concurrency // 2),
    )


async def measure(args: argparse.Namespace) -> tuple[Reading, Reading, int]:
    """Readings at the window's two ends, and the 429s over the whole run."""
    flags = ["--rpm", str(args.rpm), "--latency", str(args.latency)]
    flags += ["--latency-sigma", str(args.sigma), "--seed", "1"]
    if args.limit_slice:
        flags += ["--limit-slice", str(args.limit_slice)]
    make_plugin_manager()  # imports every plugin now, outside the window
    with simulator_process(*flags) as base_url, tempfile.TemporaryDirectory() as tmp:
        config = at_limit_config(base_url, Path(tmp) / "run", args)
        readings: list[Reading] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, config)
            await anyio.sleep(args.warmup)
            readings.append(await read(base_url))
            await anyio.sleep(args.seconds)
            readings.append(await read(base_url))
            tg.cancel_scope.cancel()
        total_429 = int(stats(base_url)["rate_limited"])
    return readings[0], readings[1], total_429


def report(args: argparse.Namespace, start: Reading, end: Reading, total_429: int) -> int:
    wall = end.wall - start.wall
    answered = end.answered - start.answered
    rpm = answered / wall * 60
    throttled = end.rate_limited - start.rate_limited
    cpu = end.cpu - start.cpu
    per_request_ms = cpu / answered * 1000 if answered else float("nan")
    one_core = 60_000 / per_request_ms if answered else float("nan")
    limit = f"{args.rpm:,.0f} RPM"
    if args.limit_slice:
        limit += f" in {args.limit_slice:g} s slices"
    rows = [
        (
            f"rate answered ({limit}, {wall:.0f} s)",
            f"{rpm:,.0f} RPM = {rpm / args.rpm:.3f} of limit",
            ">= 0.98",
            rpm / args.rpm >= 0.98,
        ),
        (
            "429s in the window (whole run)",
            f"{throttled} ({total_429})",
            "0",
            throttled == 0,
        ),
        (
            "client CPU, share of one core",
            f"{cpu / wall:.2f} ({per_request_ms:.3f} ms a request)",
            "< 1",
            cpu / wall < 1,
        ),
    ]
    for name, value, target, passed in rows:
        print(f"{name:<46} {value:>36}  target {target:<7} {'PASS' if passed else 'FAIL'}")
    print(f"(one core at this cost: about {one_core:,.0f} requests a minute)")
    return 0 if all(row[3] for row in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    # The simulator's useless answers are expected; their warnings would flood the output.
    logging.getLogger("selfinstruct_async").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rpm", type=int, default=30_000, help="the provider's limit")
    p.add_argument("--latency", type=float, default=0.5, help="median latency, seconds")
    p.add_argument("--sigma", type=float, default=0.5, help="lognormal sigma of the latency")
    p.add_argument("--limit-slice", type=float, default=0.0, help="enforce in S-second slices")
    p.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before the window")
    p.add_argument("--concurrency", type=int, default=1024, help="endpoint concurrency")
    args = p.parse_args(argv)
    started = time.monotonic()
    with asyncio.Runner() as runner:
        start, end, total_429 = runner.run(measure(args))
    code = report(args, start, end, total_429)
    print(f"\ntook {time.monotonic() - started:.0f} s; {os.cpu_count()} cores")
    return code


if __name__ == "__main__":
    sys.exit(main())

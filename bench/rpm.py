"""Throughput at the rate limit: the real client against the simulated provider.

    .venv/bin/python bench/rpm.py                  # every scenario, prints a table (~4 min)
    .venv/bin/python bench/rpm.py --only 1,4       # some scenarios
    .venv/bin/python bench/rpm.py --only 6 --phase-ms -3.5
                                                   # quantized limits, client started 3.5 ms
                                                   # before a server slice boundary
    .venv/bin/python bench/rpm.py --base-url URL --model M --rpm R [--api chat]
                                                   # scenario 1 against a real endpoint

The simulator runs in its own process (``python -m selfinstruct_async.simulator``) so the
client's CPU time is its own. Scenarios (issue 3):

1. limit known: server and client at 3,000 RPM, latency median 0.5 s (lognormal), 60 s
   measured after a 3 s warm-up: achieved RPM / limit (>= 0.98) and 429s caused (0).
2. limit unknown: client configured at 6,000 RPM, server limit 3,000: achieved / server
   limit (>= 0.90) and 429 share (<= 2%); 2b repeats it with the server sending no
   ``x-ratelimit-*`` headers (AIMD on 429s alone; reported, no target).
3. faults: 5% 5xx, 2% resets, 1% hangs: every request ends succeeded or reported failed,
   exactly once.
4. overhead: zero-latency server, no limit: requests per client CPU-second, and the ratio
   to a bare aiohttp loop in the same run (>= 0.5), taken within each of 5 alternating
   pairs of runs and judged by its median (their range is printed).
5. the scenario-1 workload through fixed batches (send a batch, wait for all of it, the
   original scripts' way): its achieved RPM as a fraction of ours.
6. quantized limits (issue 15): a server enforcing 600 RPM in fixed slices aligned to the
   wall clock, 10 per 1 s slice (6a) and 1 per 100 ms slice (6b), as hosted providers do;
   client at 600 RPM, 60 s measured after a 3 s warm-up: achieved / limit (>= 0.98) and
   429s over the whole run, warm-up included (0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfinstruct_async.client.http import HTTPClient, build_http_client  # noqa: E402
from selfinstruct_async.client.pacing import SliceLock  # noqa: E402
from selfinstruct_async.client.protocol import CompletionRequest  # noqa: E402
from selfinstruct_async.client.usage import UsageMeter  # noqa: E402
from selfinstruct_async.config import EndpointConfig  # noqa: E402
from selfinstruct_async.errors import LLMError  # noqa: E402
from selfinstruct_async.simulator.process import simulator_process  # noqa: E402

PROMPT = "Come up with a series of tasks. Task 1: write a haiku about the sea. Task 2:"


@dataclass
class Row:
    scenario: str
    measured: str
    target: str
    verdict: str


@dataclass
class Server:
    base_url: str

    async def stats(self) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        async with aiohttp.ClientSession() as s, s.get(f"{root}/_simulator/stats") as r:
            data: dict[str, Any] = await r.json()
            return data


@asynccontextmanager
async def simulator(*flags: str) -> AsyncIterator[Server]:
    """The simulator in its own process, so the client's CPU time is its own."""
    with simulator_process("--responder", "echo", *flags) as base_url:
        yield Server(base_url)


def request(i: int, max_tokens: int = 16) -> CompletionRequest:
    return CompletionRequest(stage="bench", prompt=f"{PROMPT} {i}", max_tokens=max_tokens)


@dataclass
class Drive:
    done: list[float] = field(default_factory=list)  # completion times of successes
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


async def drive(client: HTTPClient, workers: int, seconds: float) -> Drive:
    """Keep ``workers`` requests outstanding for ``seconds``, then cancel what is left."""
    result = Drive()
    counter = iter(range(10**9))

    async def worker() -> None:
        while True:
            start = time.monotonic()
            try:
                await client.complete(request(next(counter)))
            except LLMError:
                result.failed += 1
                continue
            now = time.monotonic()
            result.done.append(now)
            result.latencies.append(now - start)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def rate_in(times: Sequence[float], start: float, seconds: float) -> float:
    """Completions per minute within ``[start, start + seconds)``."""
    return sum(1 for t in times if start <= t < start + seconds) / seconds * 60.0


def lock_state(lock: SliceLock | None) -> str:
    """What the pacer learned about the provider's slices, for the table."""
    if lock is None:
        return "none"
    if lock.off:
        return "off, not slices"
    if lock.phase is None:
        return "undecided"
    return f"{'verified' if lock.verified else 'unverified'} at {lock.phase * 1000:.0f} ms"


def ok(flag: bool) -> str:
    return "PASS" if flag else "FAIL"


# -- scenarios ----------------------------------------------------------------------------


async def limit_known(
    base_url: str,
    model: str,
    rpm: float,
    *,
    api: str = "completions",
    warmup: float = 3.0,
    seconds: float = 60.0,
    latency: float = 0.5,
    api_key_env: str = "OPENAI_API_KEY",
    server: Server | None = None,
    label: str = "1 limit known",
) -> tuple[list[Row], float]:
    usage = UsageMeter()
    config = EndpointConfig(
        base_url=base_url,
        model=model,
        api=api,  # type: ignore[arg-type]
        api_key_env=api_key_env,
        rpm=rpm,
        concurrency=1024,
        expected_latency=latency,
        timeout=60.0,
    )
    workers = max(64, math.ceil(rpm / 60 * latency * 4))
    async with build_http_client([config], usage) as client:
        t0 = time.monotonic()
        result = await drive(client, workers, warmup + seconds)
        lock = lock_state(client.endpoints[0].pacer.slice_lock)
    achieved = rate_in(result.done, t0 + warmup, seconds)
    if server is not None:
        throttled = (await server.stats())["rate_limited"]
    else:
        throttled = usage.totals().rate_limited
    p50 = statistics.median(result.latencies) if result.latencies else math.nan
    rows = [
        Row(
            f"{label} ({rpm:g} RPM, {seconds:g} s)",
            f"{achieved:,.0f} RPM = {achieved / rpm:.3f} of limit (p50 {p50:.2f} s incl. "
            f"queueing; slice lock: {lock})",
            ">= 0.98",
            ok(achieved / rpm >= 0.98),
        ),
        Row(f"{label.split()[0]} 429s caused", f"{throttled}", "0", ok(throttled == 0)),
    ]
    return rows, achieved


async def limit_unknown(headers: bool, seconds: float = 40.0) -> list[Row]:
    flags = ["--rpm", "3000", "--latency", "0.5", "--latency-sigma", "0.5", "--seed", "2"]
    if not headers:
        flags.append("--no-rate-limit-headers")
    async with simulator(*flags) as server:
        config = EndpointConfig(
            base_url=server.base_url,
            model="sim-model",
            rpm=6000,
            concurrency=1024,
            expected_latency=0.5,
        )
        async with build_http_client([config], UsageMeter()) as client:
            t0 = time.monotonic()
            result = await drive(client, 200, seconds)
            final = client.endpoints[0].pacer.rpm
        stats = await server.stats()
    achieved = rate_in(result.done, t0, seconds)
    share = stats["rate_limited"] / max(1, stats["requests"])
    name = "2 limit unknown (client 6,000, server 3,000)"
    if not headers:
        name = "2b same, server sends no x-ratelimit-* headers"
    return [
        Row(
            name,
            f"{achieved:,.0f} RPM = {achieved / 3000:.3f} of server limit "
            f"(paced at {final or 0:,.0f} at the end)",
            ">= 0.90" if headers else "(info)",
            ok(achieved / 3000 >= 0.90) if headers else "-",
        ),
        Row(
            "2 429 share" if headers else "2b 429 share",
            f"{share:.2%} ({stats['rate_limited']} of {stats['requests']})",
            "<= 2%" if headers else "(info)",
            ok(share <= 0.02) if headers else "-",
        ),
    ]


async def faults(n: int = 3000) -> list[Row]:
    flags = ["--latency", "0.05", "--latency-sigma", "0.5", "--seed", "3"]
    flags += ["--fault-5xx", "0.05", "--fault-reset", "0.02", "--fault-hang", "0.01"]
    outcomes: dict[int, list[str]] = {}
    async with simulator(*flags) as server:
        usage = UsageMeter()
        config = EndpointConfig(
            base_url=server.base_url, model="sim-model", concurrency=64, timeout=1.0
        )
        sem = asyncio.Semaphore(256)

        async def one(i: int) -> None:
            async with sem:
                try:
                    await client.complete(request(i))
                except LLMError as exc:
                    outcomes.setdefault(i, []).append(f"failed: {type(exc).__name__}")
                else:
                    outcomes.setdefault(i, []).append("ok")

        async with build_http_client([config], usage) as client:
            t0 = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(n)))
            elapsed = time.monotonic() - t0
        stats = await server.stats()
    once = all(len(v) == 1 for v in outcomes.values()) and len(outcomes) == n
    succeeded = sum(1 for v in outcomes.values() if v == ["ok"])
    failed = n - succeeded
    total = usage.totals()
    injected = stats["faults"]
    return [
        Row(
            f"3 faults ({n} requests, 5% 5xx, 2% reset, 1% hang)",
            f"{succeeded} succeeded + {failed} reported failed, each exactly once: {once}; "
            f"{total.retries} retries for {sum(injected.values())} injected faults, "
            f"{elapsed:.1f} s",
            "all end once",
            ok(once and succeeded + failed == n),
        )
    ]


async def overhead(n: int = 6000, concurrency: int = 32, rounds: int = 5) -> list[Row]:
    body = json.dumps({"model": "sim-model", "prompt": PROMPT, "max_tokens": 16}).encode()
    async with simulator() as server:
        url = f"{server.base_url}/completions"

        async def bare() -> None:
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                sem = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with sem:
                        headers = {"Content-Type": "application/json"}
                        async with session.post(url, data=body, headers=headers) as resp:
                            payload = json.loads(await resp.read())
                            assert payload["choices"][0]["text"]

                await asyncio.gather(*(one() for _ in range(n)))

        async def ours() -> None:
            config = EndpointConfig(
                base_url=server.base_url, model="sim-model", concurrency=concurrency
            )
            async with build_http_client([config], UsageMeter()) as client:
                sem = asyncio.Semaphore(concurrency * 4)

                async def one(i: int) -> None:
                    async with sem:
                        completion = await client.complete(request(i))
                        assert completion.text

                await asyncio.gather(*(one(i) for i in range(n)))

        async def measure(fn: Callable[[], Any]) -> tuple[float, float]:
            cpu, wall = time.process_time(), time.monotonic()
            await fn()
            return n / (time.process_time() - cpu), n / (time.monotonic() - wall)

        await bare()  # warm both paths (imports, tiktoken, connections)
        await ours()
        # One pair is a second of CPU each, on a machine whose speed drifts by a quarter
        # from one minute to the next: the ratio is taken within each pair, the order
        # alternating, and the median judged.
        pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
        for turn in range(rounds):
            if turn % 2 == 0:
                bare_rates = await measure(bare)
                ours_rates = await measure(ours)
            else:
                ours_rates = await measure(ours)
                bare_rates = await measure(bare)
            pairs.append((bare_rates, ours_rates))
    ratios = sorted(o[0] / b[0] for b, o in pairs)
    ratio = statistics.median(ratios)

    def middle(side: int, figure: int) -> float:
        """The median over the pairs of one side's (0 bare, 1 ours) CPU (0) or wall (1) rate."""
        return statistics.median(pair[side][figure] for pair in pairs)

    bare_cpu, bare_wall, ours_cpu, ours_wall = (
        middle(0, 0),
        middle(0, 1),
        middle(1, 0),
        middle(1, 1),
    )
    return [
        Row(
            f"4 overhead ({n} requests, zero latency, no limit)",
            f"{ours_cpu:,.0f} req per client CPU-s vs bare aiohttp {bare_cpu:,.0f} "
            f"= {ratio:.2f}, median of {rounds} pairs ({ratios[0]:.2f}-{ratios[-1]:.2f}) "
            f"(wall: {ours_wall:,.0f} vs {bare_wall:,.0f} req/s)",
            ">= 0.5",
            ok(ratio >= 0.5),
        )
    ]


async def fixed_batches(ours_rpm: float, seconds: float = 30.0, batch: int = 50) -> list[Row]:
    flags = ["--rpm", "3000", "--latency", "0.5", "--latency-sigma", "0.5", "--seed", "5"]
    body = {"model": "sim-model", "prompt": PROMPT, "max_tokens": 16}
    done: list[float] = []
    async with simulator(*flags) as server:
        url = f"{server.base_url}/completions"
        connector = aiohttp.TCPConnector(limit=batch)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> None:
                while True:
                    async with session.post(url, json=body) as resp:
                        await resp.read()
                        if resp.status == 200:
                            done.append(time.monotonic())
                            return
                        await asyncio.sleep(float(resp.headers.get("retry-after", "1")))

            t0 = time.monotonic()
            while time.monotonic() < t0 + seconds:
                await asyncio.gather(*(one() for _ in range(batch)))
        stats = await server.stats()
    achieved = rate_in(done, t0, seconds)
    return [
        Row(
            f"5 fixed batches of {batch} (scenario-1 workload, {seconds:g} s)",
            f"{achieved:,.0f} RPM = {achieved / ours_rpm:.2f} of ours "
            f"({ours_rpm:,.0f} RPM); its 429s: {stats['rate_limited']}",
            "(baseline)",
            "-",
        )
    ]


# -- output -------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    head = Row("scenario", "measured", "target", "result")
    widths = [max(len(getattr(r, f)) for r in [head, *rows]) for f in Row.__dataclass_fields__]

    def line(r: Row) -> str:
        cells = [
            getattr(r, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                cpu = text_line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.system()}"


async def quantized(
    slice_seconds: float, label: str, seconds: float = 60.0, phase_ms: float | None = None
) -> list[Row]:
    flags = ["--rpm", "600", "--limit-slice", f"{slice_seconds:g}", "--seed", "6"]
    flags += ["--latency", "0.5", "--latency-sigma", "0.5"]
    async with simulator(*flags) as server:
        name = f"{label} quantized, {slice_seconds * 1000:g} ms slices"
        if phase_ms is not None:
            # The server's slices are wall-clock multiples: start the client (its first
            # request goes at once) this far past one, to place it against the boundaries.
            late = (time.time() - phase_ms / 1000) % slice_seconds
            await asyncio.sleep(slice_seconds - late)
            side = "before" if phase_ms < 0 else "after"
            name += f", started {abs(phase_ms):g} ms {side} a boundary"
        rows, _ = await limit_known(
            server.base_url, "sim-model", 600, seconds=seconds, server=server, label=name
        )
    return rows


async def run_all(only: set[str], phase_ms: float | None = None) -> list[Row]:
    rows: list[Row] = []
    ours_rpm = math.nan
    if "1" in only or "5" in only:
        flags = ["--rpm", "3000", "--latency", "0.5", "--latency-sigma", "0.5", "--seed", "1"]
        async with simulator(*flags) as server:
            seconds = 60.0 if "1" in only else 20.0
            found, ours_rpm = await limit_known(
                server.base_url, "sim-model", 3000, seconds=seconds, server=server
            )
        if "1" in only:
            rows += found
    if "2" in only:
        rows += await limit_unknown(headers=True)
        rows += await limit_unknown(headers=False)
    if "3" in only:
        rows += await faults()
    if "4" in only:
        rows += await overhead()
    if "5" in only:
        rows += await fixed_batches(ours_rpm)
    if "6" in only or "6a" in only:
        rows += await quantized(1.0, "6a", phase_ms=phase_ms)
    if "6" in only or "6b" in only:
        rows += await quantized(0.1, "6b", phase_ms=phase_ms)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated scenarios to run")
    p.add_argument("--base-url", help="run scenario 1 against this endpoint instead")
    p.add_argument("--model", default="")
    p.add_argument("--rpm", type=float, default=None)
    p.add_argument("--api", choices=("completions", "chat"), default="completions")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--latency", type=float, default=1.0, help="expected latency (pool size)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY")
    p.add_argument(
        "--phase-ms",
        type=float,
        default=None,
        help="scenario 6: start the client this many ms after a server slice boundary",
    )
    args = p.parse_args(argv)
    started = time.monotonic()
    if args.base_url:
        if not args.model or not args.rpm:
            p.error("--base-url needs --model and --rpm")
        rows, _ = asyncio.run(
            limit_known(
                args.base_url,
                args.model,
                args.rpm,
                api=args.api,
                seconds=args.seconds,
                latency=args.latency,
                api_key_env=args.api_key_env,
            )
        )
    else:
        rows = asyncio.run(run_all(set(args.only.split(",")), args.phase_ms))
    print(table(rows))
    print(f"\nmachine: {machine()}; took {time.monotonic() - started:.0f} s")
    return 0 if all(r.verdict != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

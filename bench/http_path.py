"""Client CPU per request, layer by layer, from the bare aiohttp loop up to ``RunContext.complete``.

    .venv/bin/python bench/http_path.py                 # 5 rounds, layers alternating
    .venv/bin/python bench/http_path.py --rounds 9 --uvloop

Issue 15's first target compares the full pipeline with a bare aiohttp loop. This bench
isolates the part of that gap that is the request path: the requests of a real short run
(captured once from ``selfinstruct_async.run.runner.run`` against the simulator, so their
prompts, sampling fields and answers are the pipeline's) are replayed at the pipeline's
concurrency through each layer in turn:

1. ``bare``: ``aiohttp.ClientSession.post`` with the same bodies, ``json.loads`` of the answer;
2. ``transport``: :class:`~selfinstruct_async.client.transport.AiohttpTransport` with the
   same bodies;
3. ``http``: :class:`~selfinstruct_async.client.http.HTTPClient` (body building, pacing,
   classifying, parsing, usage);
4. ``ledger``: the request ledger over it
   (:class:`~selfinstruct_async.client.recording.LedgerClient` with a real
   :class:`~selfinstruct_async.checkpoint.store.Store`: key hashing, the stored
   completion's JSON);
5. ``context``: :meth:`RunContext.complete` over the ledger (stop gate, counters, failure
   policy).

Then layers 3 to 5 again, answered in-process (``http/mock``, ``ledger/mock``,
``context/mock``): a :class:`~selfinstruct_async.client.transport.MockTransport` hands
back the answers the simulator gave, one request at a time, so the figure is the layers'
own CPU without sockets or event-loop wake-ups, and far less noisy than the loopback one.

Layers run in turn, round after round (A B C D E A B C D E ...), so the noise of a shared
machine falls on all of them alike; the tables show medians over the rounds of the client
CPU (``time.process_time``) per request in microseconds, and what each layer adds to the one
before it. The simulator runs in its own process with zero latency and no limits.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfinstruct_async.checkpoint.store import Store  # noqa: E402
from selfinstruct_async.client.http import HTTPClient, build_http_client  # noqa: E402
from selfinstruct_async.client.openai_format import request_body  # noqa: E402
from selfinstruct_async.client.protocol import CompletionRequest  # noqa: E402
from selfinstruct_async.client.recording import LedgerClient  # noqa: E402
from selfinstruct_async.client.transport import (  # noqa: E402
    AiohttpTransport,
    MockTransport,
    Transport,
    TransportRequest,
    TransportResponse,
)
from selfinstruct_async.client.usage import UsageMeter  # noqa: E402
from selfinstruct_async.config import load_config  # noqa: E402
from selfinstruct_async.run.context import RunContext  # noqa: E402
from selfinstruct_async.run.counter_buffer import CounterBuffer  # noqa: E402
from selfinstruct_async.run.failures import FailurePolicy  # noqa: E402
from selfinstruct_async.run.runner import run  # noqa: E402
from selfinstruct_async.run.stop import StopGate  # noqa: E402
from selfinstruct_async.simulator.process import simulator_process  # noqa: E402

LAYERS = ("bare", "transport", "http", "ledger", "context")
MOCKED = ("http/mock", "ledger/mock", "context/mock")


async def capture(
    base_url: str, target: int, out: Path
) -> list[tuple[CompletionRequest, TransportResponse]]:
    """The requests a real run to ``target`` tasks sends, in order, with their answers."""
    requests: list[CompletionRequest] = []
    answers: dict[bytes, TransportResponse] = {}
    complete, send = HTTPClient.complete, AiohttpTransport.send

    async def recording(self: HTTPClient, request: CompletionRequest) -> Any:
        requests.append(request)
        return await complete(self, request)

    async def sending(self: AiohttpTransport, request: TransportRequest) -> TransportResponse:
        answers[request.body] = response = await send(self, request)
        return response

    overrides: dict[str, dict[str, Any]] = {
        "run": {"out": str(out), "target": target, "seed": 1, "retry_failed_after": 1.0},
        "endpoint": {"base_url": base_url, "model": "sim-model", "concurrency": 64},
    }
    HTTPClient.complete = recording  # type: ignore[method-assign]
    AiohttpTransport.send = sending  # type: ignore[method-assign]
    try:
        await run(load_config(None, environ={}, overrides=overrides))
    finally:
        HTTPClient.complete = complete  # type: ignore[method-assign]
        AiohttpTransport.send = send  # type: ignore[method-assign]
    bodies = [json.dumps(request_body(r, "sim-model", chat=False)).encode() for r in requests]
    return [(r, answers[b]) for r, b in zip(requests, bodies, strict=True) if b in answers]


async def _gather(items: Sequence[Any], one: Callable[[Any], Awaitable[None]], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def bounded(item: Any) -> None:
        async with sem:
            await one(item)

    await asyncio.gather(*(bounded(item) for item in items))


async def bare(base_url: str, bodies: list[bytes], limit: int) -> None:
    url = f"{base_url}/completions"
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> None:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as resp:
                payload = json.loads(await resp.read())
                assert payload["choices"][0]["text"] is not None

        await _gather(bodies, one, limit)


async def transport(base_url: str, bodies: list[bytes], limit: int) -> None:
    sender = AiohttpTransport(limit=limit)
    url = f"{base_url}/completions"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def one(body: bytes) -> None:
        response = await sender.send(TransportRequest(url, body, headers, 120.0, 1 << 24))
        assert response.status == 200

    try:
        await _gather(bodies, one, limit)
    finally:
        await sender.aclose()


def _client(base_url: str, limit: int, transport: Transport | None = None) -> HTTPClient:
    config = load_config(
        None,
        environ={},
        overrides={"endpoint": {"base_url": base_url, "model": "sim-model", "concurrency": limit}},
    )
    client = build_http_client(config.endpoints, UsageMeter())
    if transport is not None:
        client.endpoints[0].transport = transport
    return client


def _layer(
    client: HTTPClient, layer: str, store: Store | None
) -> Callable[[CompletionRequest], Awaitable[Any]]:
    """``complete`` of the layer: the HTTP client, the ledger over it, the context's."""
    if layer.startswith("http"):
        return client.complete
    assert store is not None

    async def inline(fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    counters = CounterBuffer()
    ledger = LedgerClient(client, store, inline, counters.count, "bench")
    if layer.startswith("ledger"):
        return ledger.complete
    # Only what RunContext.complete uses: the gate, the counters, the policy.
    ctx = SimpleNamespace(
        gate=StopGate(), client=ledger, failures=FailurePolicy(), count=counters.count
    )

    async def complete(request: CompletionRequest) -> Any:
        return await RunContext.complete(ctx, request)  # type: ignore[arg-type]

    return complete


async def through(
    base_url: str, requests: list[CompletionRequest], limit: int, layer: str, tmp: Path
) -> None:
    client = _client(base_url, limit)
    store = None if layer == "http" else Store(tmp / f"ledger-{time.monotonic_ns()}")
    complete = _layer(client, layer, store)

    async def one(request: CompletionRequest) -> None:
        result = await complete(request)
        assert result.choices

    try:
        await _gather(requests, one, limit)
    finally:
        await client.aclose()
        if store is not None:
            store.close()


async def replayed(
    exchanges: list[tuple[CompletionRequest, TransportResponse]], layer: str, tmp: Path
) -> None:
    """The layer's own CPU: the same requests answered in-process (no sockets, no waits)."""
    answers = iter([response for _, response in exchanges])
    client = _client("http://replay.test/v1", 64, MockTransport(lambda _: next(answers)))
    store = None if layer == "http/mock" else Store(tmp / f"ledger-{time.monotonic_ns()}")
    complete = _layer(client, layer, store)
    try:
        for request, _ in exchanges:
            await complete(request)
    finally:
        await client.aclose()
        if store is not None:
            store.close()


async def main_async(args: argparse.Namespace) -> None:
    with simulator_process("--seed", "1") as base_url, tempfile.TemporaryDirectory() as tmp:
        exchanges = (await capture(base_url, args.tasks, Path(tmp) / "capture"))[: args.requests]
        requests = [request for request, _ in exchanges]
        bodies = [json.dumps(request_body(r, "sim-model", chat=False)).encode() for r in requests]
        kinds: dict[str, int] = {}
        for r in requests:
            kinds[r.stage] = kinds.get(r.stage, 0) + 1
        mean_body = sum(map(len, bodies)) / len(bodies)
        print(f"{len(requests):,} requests {kinds}, mean body {mean_body:,.0f} bytes")
        runs: dict[str, list[float]] = {layer: [] for layer in LAYERS + MOCKED}
        for round_no in range(args.rounds + 1):  # round 0 warms connections and caches
            for layer in LAYERS + MOCKED:
                profiler = None
                if args.profile and round_no == args.rounds and layer == args.profile_layer:
                    # Timed by this thread's CPU clock: waits are not the client's cost.
                    profiler = cProfile.Profile(time.thread_time)
                    profiler.enable()
                started = time.process_time()
                if layer == "bare":
                    await bare(base_url, bodies, args.concurrency)
                elif layer == "transport":
                    await transport(base_url, bodies, args.concurrency)
                elif layer in MOCKED:
                    await replayed(exchanges, layer, Path(tmp))
                else:
                    await through(base_url, requests, args.concurrency, layer, Path(tmp))
                used = time.process_time() - started
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                if round_no:
                    runs[layer].append(used * 1e6 / len(requests))
    _table(runs, LAYERS, "over loopback")
    _table(runs, MOCKED, "answered in-process (mock transport): the layers' own CPU")


def _table(runs: dict[str, list[float]], layers: Sequence[str], title: str) -> None:
    print(f"\n{title}")
    print(f"{'layer':<10} {'us/request':>10} {'adds':>8} {'req/CPU-s':>10} {'vs first':>8}  runs")
    below: float | None = None
    base = statistics.median(runs[layers[0]])
    for layer in layers:
        med = statistics.median(runs[layer])
        adds = f"{med - below:8.1f}" if below is not None else f"{'-':>8}"
        shown = " ".join(f"{x:.0f}" for x in runs[layer])
        print(f"{layer:<10} {med:10.1f} {adds} {1e6 / med:10,.0f} {base / med:8.2f}  {shown}")
        below = med


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("selfinstruct_async").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=600, help="target of the captured run")
    p.add_argument("--requests", type=int, default=1500, help="requests replayed per layer")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--profile", metavar="FILE", help="cProfile one layer's last round into FILE")
    p.add_argument("--profile-layer", choices=LAYERS + MOCKED, default="context")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = p.parse_args(argv)
    loop_factory = None
    if args.uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main_async(args))
    print(f"({'uvloop' if args.uvloop else 'asyncio'} event loop; medians of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

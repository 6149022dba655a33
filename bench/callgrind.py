"""User-space instructions per request, pipeline against the bare loop: the low-noise figure.

    .venv/bin/python bench/callgrind.py                      # 150 and 450 tasks (~5 min)
    .venv/bin/python bench/callgrind.py --tasks 200,600 --requests 600,1800

Wall-clock CPU on a shared VM moves by ±25% from one minute to the next, more than most
single changes to the client do. Counting the instructions the client executes does not
move with the neighbours: this runs each part under valgrind's callgrind (which counts
user-space instructions, not the kernel's share) and prints instructions per request.

Each figure is a difference of two runs, so start-up, imports and warm-up cancel out:

- pipeline: ``runner.run`` (``bench/pipeline.py``'s part b configuration) to the larger
  task count minus the smaller, over the requests the simulator served in between;
- bare loop (a): ``bench/pipeline.py``'s bare aiohttp loop, one short prompt, the larger
  request count minus the smaller;
- bare loop (a2): the same loop on a uniform sample of the bodies the smaller pipeline run
  sent (as part a2 of ``bench/pipeline.py``);
- with ``--in-process``, the pipeline without sockets: the same configuration, its HTTP
  transport swapped for a :class:`~selfinstruct_async.client.transport.MockTransport` that
  answers each request in this process with the simulator's own responder (one loop turn
  per request, as a real answer takes). The responder's instructions are not the
  client's: every run is made twice, once computing each answer once and once computing it
  twice (the second copy thrown away), and the difference, the responder's share, is
  taken off. What is left is the client's cost per request with no HTTP at all: the
  stages, filters, store, request layers and event loop.

The simulator runs in its own process, outside valgrind. valgrind must be installed
(``apt install valgrind``); without it the script says so and exits with status 2. To
compare two commits, copy this file (and ``pipeline.py``) into the other checkout's
``bench/`` and run it there with the same arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import pipeline as bench  # noqa: E402

from selfinstruct_async.plugins import make_plugin_manager  # noqa: E402
from selfinstruct_async.run.runner import run  # noqa: E402
from selfinstruct_async.simulator.process import simulator_process, stats  # noqa: E402

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child_pipeline(base_url: str, tasks: int, out: Path, sample: Path | None) -> None:
    """One pipeline run to ``tasks``; prints the requests served, writes the body sample."""
    logging.getLogger("selfinstruct_async").setLevel(logging.ERROR)
    make_plugin_manager()
    bench._SAMPLE.reset(2000)
    bench._SAMPLE.on = sample is not None
    served = int(stats(base_url)["requests"])
    asyncio.run(run(bench.pipeline_config(base_url, out, tasks, 64)))
    print("REQUESTS", int(stats(base_url)["requests"]) - served)
    if sample is not None:
        sample.write_bytes(b"\n".join(bench._SAMPLE.bodies))


def child_in_process(tasks: int, out: Path, answers: int) -> None:
    """``child_pipeline`` on a MockTransport whose handler answers ``answers`` times each."""
    import json

    import anyio.lowlevel

    from selfinstruct_async.client import http
    from selfinstruct_async.client.transport import (
        MockTransport,
        TransportRequest,
        TransportResponse,
    )
    from selfinstruct_async.simulator.responder import respond

    served = 0

    def answer(body: bytes, seed: int) -> bytes:
        call = json.loads(body)
        text, finish = respond(
            call["prompt"], "", chat=False, max_tokens=call.get("max_tokens", 16), seed=seed
        )
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        used = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        payload = {"id": f"cmpl-{seed}", "object": "text_completion", "created": 0,
                   "model": "sim-model", "choices": [choice], "usage": used}  # fmt: skip
        return json.dumps(payload).encode()

    async def handler(request: TransportRequest) -> TransportResponse:
        nonlocal served
        await anyio.lowlevel.checkpoint()  # an answer over a socket takes a loop turn
        served += 1
        for _ in range(answers):
            body = answer(request.body, served)
        return TransportResponse(200, {"content-type": "application/json"}, body)

    def transport(*, limit: int) -> MockTransport:
        return MockTransport(handler)

    http.AiohttpTransport = transport  # type: ignore[attr-defined, assignment]
    logging.getLogger("selfinstruct_async").setLevel(logging.ERROR)
    make_plugin_manager()
    asyncio.run(run(bench.pipeline_config("http://127.0.0.1:9/v1", out, tasks, 64)))
    print("REQUESTS", served)


def child_bare(base_url: str, requests: int, sample: Path | None) -> None:
    """The bare loop for ``requests`` (after its own warm-up), on the sample if given."""
    bodies = sample.read_bytes().split(b"\n") if sample is not None else []
    measured = asyncio.run(bench.bare_loop(base_url, requests, 64, bodies))
    print("REQUESTS", measured.requests + min(requests, 500))


def under_callgrind(args: Sequence[str]) -> tuple[int, int]:
    """Instructions and requests of one child run of this script under callgrind."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    collected = _COLLECTED.search(done.stderr)
    served = re.search(r"REQUESTS (\d+)", done.stdout)
    if done.returncode or collected is None or served is None:
        sys.exit(f"callgrind run {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return int(collected.group(1)), int(served.group(1))


def per_request(small: tuple[int, int], big: tuple[int, int]) -> float:
    return (big[0] - small[0]) / (big[1] - small[1])


def in_process(small_tasks: int, big_tasks: int, tmp: Path) -> tuple[str, float, int]:
    """The pipeline answered in-process, the responder's instructions taken off."""
    cost = {}
    for answers in (1, 2):
        runs = [
            under_callgrind(["in-process", str(answers), str(n), f"{tmp}/in{answers}-{n}"])
            for n in (small_tasks, big_tasks)
        ]
        cost[answers] = per_request(*runs)
    # Runs answered twice cost one more responder call per request than runs answered once.
    client = cost[1] - (cost[2] - cost[1])
    return ("pipeline without sockets", client, runs[1][1] - runs[0][1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="150,450", help="two task counts for the pipeline")
    p.add_argument("--requests", default="600,1800", help="two request counts for the loop")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="also the pipeline without sockets, answered in-process (4 more runs, ~8 min)",
    )
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        mode, base_url, count, *rest = args.child
        if mode == "in-process":
            child_in_process(int(count), Path(rest[0]), int(base_url))
        elif mode == "pipeline":
            sample = Path(rest[1]) if len(rest) > 1 else None
            child_pipeline(base_url, int(count), Path(rest[0]), sample)
        else:
            child_bare(base_url, int(count), Path(rest[0]) if rest else None)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: this bench counts instructions with callgrind")
        return 2
    small_tasks, big_tasks = (int(n) for n in args.tasks.split(","))
    small_requests, big_requests = (int(n) for n in args.requests.split(","))
    with simulator_process("--seed", "1") as base_url, tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "bodies"
        small = under_callgrind(
            ["pipeline", base_url, str(small_tasks), f"{tmp}/small", str(sample)]
        )
        big = under_callgrind(["pipeline", base_url, str(big_tasks), f"{tmp}/big"])
        rows = [("pipeline (b)", per_request(small, big), big[1] - small[1])]
        for label, extra in (("bare loop (a), one short prompt", []), ("bare loop (a2)", [sample])):
            runs = [
                under_callgrind(["bare", base_url, str(n), *map(str, extra)])
                for n in (small_requests, big_requests)
            ]
            rows.append((label, per_request(*runs), runs[1][1] - runs[0][1]))
        if args.in_process:
            rows.append(in_process(small_tasks, big_tasks, Path(tmp)))
    pipeline_ir = rows[0][1]
    print(f"{'part':<34} {'instructions/request':>20} {'requests':>9} {'ratio':>6}")
    for label, ir, requests in rows:
        print(f"{label:<34} {ir / 1e6:>19.3f}M {requests:>9,} {ir / pipeline_ir:>6.2f}")
    # As the ratio of requests per CPU-second: the part's cost over the pipeline's.
    print("(ratio: the part's instructions per request over the pipeline's; target >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

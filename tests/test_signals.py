"""Graceful stop with real signals: drain what is in flight, or stop at once on a second one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.run.stop import StopGate
from selfinstruct_async.simulator.process import served, simulator_process

ROOT = Path(__file__).resolve().parent.parent


def command(out: Path, base_url: str, target: int) -> list[str]:
    return [
        sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out),
        "--base-url", base_url, "--model", "sim", "--target", str(target),
    ]  # fmt: skip


@contextmanager
def forever_run(
    out: Path, base_url: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A run with no target whose progress lines show requests in flight; ``env`` adds to
    the environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        command(out, base_url, 0), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_line(process: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read stderr until a line matches (the run's own log and progress lines)."""
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"the run ended (exit {process.wait()}) before logging {pattern!r}")


def wait_until_requests_in_flight(process: subprocess.Popen[str]) -> None:
    while int(wait_for_line(process, r"in flight (\d+)").group(1)) == 0:
        pass


def test_first_sigterm_drains_in_flight_requests_and_records_every_answer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with (
        simulator_process("--latency", "1.5") as base_url,
        forever_run(out, base_url) as process,
    ):
        wait_until_requests_in_flight(process)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        answers = served(base_url)
    assert process.returncode == 0, stderr[-2000:]
    assert stdout.startswith("stopped by SIGTERM")
    assert re.search(r"SIGTERM: no new requests; waiting up to 30s for [1-9]\d* in flight", stderr)
    with Store(out, read_only=True) as store:
        recorded = store.db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    # Drained: every answer the provider sent was recorded, none paid for and dropped.
    assert recorded == answers > 0


def test_second_signal_stops_at_once_and_leaves_a_consistent_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    hang = ("--fault-hang", "1.0", "--hang-seconds", "600")
    with simulator_process(*hang) as base_url, forever_run(out, base_url) as process:
        wait_until_requests_in_flight(process)
        process.send_signal(signal.SIGTERM)
        wait_for_line(process, r"SIGTERM: no new requests")
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        stopped_after = time.monotonic() - started
    assert process.returncode == 0, stderr[-2000:]
    assert "second SIGINT: stopping now" in stderr
    assert stdout.startswith("stopped by SIGTERM")
    # Requests hang for 600 s and the drain allows 30 s: only the second signal ended it.
    assert stopped_after < 25
    with Store(out) as store:  # opens cleanly: lock released, checkpoint consistent
        assert store.count_by_status()["accepted"] == 0


@pytest.mark.anyio
async def test_the_stop_gate_waits_for_requests_in_flight_and_lets_no_new_one_start() -> None:
    gate = StopGate()
    entered, release, idle = anyio.Event(), anyio.Event(), anyio.Event()
    ended: list[str] = []
    ended_when_idle: list[str] = []

    async def request(name: str) -> None:
        async with gate.request():
            entered.set()
            await release.wait()
        ended.append(name)

    async def drain() -> None:
        await gate.wait_idle()
        ended_when_idle.extend(ended)
        idle.set()

    with anyio.fail_after(30):  # a hang guard, not a synchronisation
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "in flight")
            await entered.wait()
            gate.stop_requesting()
            tg.start_soon(request, "after the stop")
            tg.start_soon(drain)
            assert gate.stopping and gate.in_flight == 1
            release.set()
            await idle.wait()
            tg.cancel_scope.cancel()  # the request held back would wait forever
    assert ended_when_idle == ["in flight"] == ended
    assert gate.in_flight == 0


@pytest.mark.anyio
async def test_a_stop_with_nothing_in_flight_is_idle_at_once() -> None:
    gate = StopGate()
    gate.stop_requesting()
    with anyio.fail_after(30):  # a hang guard, not a synchronisation
        await gate.wait_idle()

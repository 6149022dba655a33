"""``kill -9`` of a batch-mode run at each step of sending a batch, then a resume.

The simulator runs in the test's process and holds one request of the run (a real
``selfinstruct run --mode batch`` in its own process) at a chosen point: before the
input file is stored (``upload``), after it is stored but before the run hears its id
(``uploaded``), after the batch is created but before the run hears its id (``created``),
or while the run polls it (``poll``). The run is killed with SIGKILL there, resumed to
its target, and the simulator's own records are audited: no ``custom_id`` was ever
submitted twice, no answer was bought twice, and every answer the provider produced is
in the run's ledger (no completed batch was lost).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.batch import LOCAL_ID
from selfinstruct_async.simulator.batch_api import BATCH
from selfinstruct_async.simulator.server import SimulatorSettings
from tests.fixtures.simulator import MakeSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TARGET = 6
ENV = {
    **os.environ,
    "SELFINSTRUCT_BATCH_POLL_SECONDS": "0.02",
    "SELFINSTRUCT_BATCH_QUIET_SECONDS": "0.05",
}


def command(out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out),
        "--base-url", base_url, "--model", "sim", "--target", str(TARGET),
        "--mode", "batch", "--no-progress",
    ]  # fmt: skip


async def kill_at(point: str, base_url: str, out: Path, held: Any, log: Path) -> None:
    """Start a run, wait until the simulator holds it at ``point``, SIGKILL it."""
    with open(log, "w") as sink:  # noqa: ASYNC230 - a log file for the child, opened once
        process = await anyio.open_process(
            command(out, base_url), stdout=sink, stderr=sink, env=ENV, cwd=ROOT
        )
        try:
            with anyio.fail_after(60):  # a hang guard, not a synchronisation
                await held.wait()
        finally:
            process.kill()  # SIGKILL
            await process.wait()
    assert process.returncode == -9, log.read_text()[-2000:]  # noqa: ASYNC240


async def resume(base_url: str, out: Path) -> str:
    with anyio.fail_after(120):
        done = await anyio.run_process(
            command(out, base_url), env=ENV, cwd=ROOT, check=False, stderr=-2
        )
    output = done.stdout.decode(errors="replace")
    assert done.returncode == 0, output[-3000:]
    return output


def ledger_and_counters(out: Path) -> tuple[set[str], dict[str, float]]:
    with Store(out, read_only=True) as store:
        keys = {row[0] for row in store.db.execute("SELECT key FROM ledger")}
        return keys, store.counters()


def assert_no_batch_lost(out: Path, seen: dict[str, Any], ledger: set[str]) -> None:
    """Every batch the provider holds is one the checkpoint knows, by local id and batch
    id; the answers of every batch it collected are in the ledger; the others are still
    open in the checkpoint, for the next resume to poll."""
    with Store(out, read_only=True) as store:
        known = {
            local: (batch_id, state)
            for local, batch_id, state in store.db.execute(
                "SELECT local_id, batch_id, state FROM batches"
            )
        }
    for job_id, job in seen["jobs"].items():
        batch_id, state = known[job["metadata"][LOCAL_ID]]
        assert batch_id == job_id
        if state == "collected":
            assert set(job["answered"]) <= ledger
        else:
            assert state == "submitted"


@pytest.mark.parametrize("point", ["upload", "uploaded", "created", "poll"])
async def test_a_run_killed_while_sending_a_batch_resumes_without_buying_anything_twice(
    point: str, make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(settings=SimulatorSettings(batch_seconds=0.2, seed=7))
    batches = handle.app[BATCH]
    batches.hold.add(point)
    out = tmp_path / "run"
    await kill_at(point, handle.base_url, out, batches.held, tmp_path / "killed.log")
    output = await resume(handle.base_url, out)
    assert f"{TARGET}/{TARGET} tasks" in output

    seen = batches.audit()
    ledger, counters = ledger_and_counters(out)
    assert seen["submitted_twice"] == [] and seen["answered_twice"] == []
    assert_no_batch_lost(out, seen, ledger)
    assert counters.get(names.BATCH_BOUGHT_TWICE, 0) == 0
    # One input file per batch: nothing was uploaded twice.
    assert seen["uploads"] == seen["batches"] and seen["files_uploaded_twice"] == []
    if point == "uploaded":
        assert counters[names.BATCH_FILES_FOUND] == 1
    if point == "created":
        assert counters[names.BATCHES_FOUND] == 1
    # The first batch held the first round's generation prompts; their answers, bought
    # by the killed session, were replayed rather than lost.
    assert counters[names.BATCH_REPLAYED] > 0


async def test_a_run_killed_at_a_later_batch_keeps_the_rounds_it_collected(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(settings=SimulatorSettings(batch_seconds=0.2, seed=11))
    batches = handle.app[BATCH]
    batches.hold.add("created")
    batches.hold_skip["created"] = 1  # the generation round's batch goes through
    out = tmp_path / "run"
    await kill_at("created", handle.base_url, out, batches.held, tmp_path / "killed.log")
    with Store(out, read_only=True) as store:
        generated = store.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    await resume(handle.base_url, out)

    seen = batches.audit()
    ledger, counters = ledger_and_counters(out)
    assert generated > 0  # the killed session had collected and processed a round
    assert seen["submitted_twice"] == [] and seen["answered_twice"] == []
    assert_no_batch_lost(out, seen, ledger)
    assert counters[names.BATCHES_FOUND] == 1
    assert counters.get(names.BATCH_BOUGHT_TWICE, 0) == 0

"""Writes that wait for the next commit, durability settings and store calls (issue 15).

Ledger answers, classification labels and parsed generation responses are written with
the store's next commit instead of one of their own. The guarantee that keeps: nothing is
ever committed without what it was made from, so a process killed at any point leaves a
checkpoint a resume continues from without losing an answer it had acted on.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from selfinstruct_async import filters
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import load_config
from selfinstruct_async.errors import CheckpointError, ConfigError
from selfinstruct_async.filters import BaseFilter, FilterChain
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task
from selfinstruct_async.run.counter_buffer import CounterBuffer
from selfinstruct_async.run.store_calls import StoreCalls
from selfinstruct_async.simulator.process import simulator_process

ROOT = Path(__file__).resolve().parent.parent


def committed(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows another connection sees: only what was committed."""
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


def ledger_keys(db_path: Path) -> set[str]:
    return {row[0] for row in committed(db_path, "SELECT key FROM ledger")}


def test_waiting_writes_commit_with_the_next_commit_before_its_own_change(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.add_decisions((), PendingTask("t1", "Write a poem about the sea."), 1)
        store.ledger_put_later("k1", "identify_classification", '{"answer": 1}')
        store.set_classification("t1", True)
        store.add_generation(2, ["Explain tides."])
        # Nothing of them is committed yet, but the store itself answers from memory.
        assert ledger_keys(store.db_path) == set()
        assert committed(store.db_path, "SELECT is_classification FROM instructions") == [(None,)]
        assert committed(store.db_path, "SELECT request_no FROM generations") == []
        assert store.ledger_known("k1") and store.ledger_get("k1") == '{"answer": 1}'
        task = Task("t1", "Write a poem about the sea.", True, (Instance("", "A poem."),))
        store.finish_task("t1", task)
        assert ledger_keys(store.db_path) == {"k1"}
        assert committed(store.db_path, "SELECT is_classification, status FROM instructions") == [
            (1, "accepted")
        ]
        assert committed(store.db_path, "SELECT request_no FROM generations") == [(2,)]


def test_a_failed_commit_keeps_its_waiting_writes_for_the_next_one(tmp_path: Path) -> None:
    with Store(tmp_path, durability="process") as store:
        store.add_decisions((), PendingTask("t1", "Taken already."), 1)
        store.ledger_put_later("k1", "generate_instances", "{}")
        store.set_classification("t1", False)
        with pytest.raises(CheckpointError):  # the same id again: the commit fails
            store.add_decisions((), PendingTask("t1", "Taken already."), 1)
        assert ledger_keys(store.db_path) == set()
        rejection = RejectionRecord("task", "x", "why", "Taken already.", "t1")
        store.finish_task("t1", None, [rejection])
        assert ledger_keys(store.db_path) == {"k1"}
        assert committed(store.db_path, "SELECT is_classification FROM instructions") == [(0,)]


def test_closing_the_store_commits_the_writes_still_waiting(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.ledger_put_later("k1", "generate_instructions", "{}")
        store.add_generation(1, ["a"])
    assert ledger_keys(tmp_path / "checkpoint.sqlite") == {"k1"}
    with Store(tmp_path) as store:
        assert store.unprocessed_generations() == [(1, ["a"])]
        assert store.ledger_known("k1") and not store.ledger_known("k2")


def test_ledger_keys_are_known_across_a_reopen_and_a_shared_prefix_only_costs_a_query(
    tmp_path: Path,
) -> None:
    stored = "ab" * 32
    with Store(tmp_path) as store:
        store.ledger_put(stored, "generate_instances", '{"n": 1}')
        store.ledger_put_later("c" * 64, "generate_instances", '{"n": 2}')
    twin = stored[:16] + "0" * 48  # same first 64 bits, another request
    with Store(tmp_path) as store:
        assert store.ledger_known(stored) and store.ledger_get(stored) == '{"n": 1}'
        assert store.ledger_get("c" * 64) == '{"n": 2}'
        assert store.ledger_known(twin) and store.ledger_get(twin) is None
        assert not store.ledger_known("d" * 64) and store.ledger_get("d" * 64) is None
        store.ledger_put_later("d" * 64, "identify_classification", "{}")
        store.flush()
        assert store.ledger_known("d" * 64)


def test_reads_of_the_store_see_its_own_waiting_writes(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.add_pending(PendingTask("t1", "Write a poem about the sea."), 1)
        store.set_classification("t1", True)
        store.add_generation(3, ["x", "y"])
        assert [t.is_classification for t in store.pending_tasks()] == [True]
        assert store.unprocessed_generations() == [(3, ["x", "y"])]


@pytest.mark.parametrize(("durability", "synchronous"), [("process", 1), ("power", 2)])
def test_durability_picks_sqlites_synchronous_mode(
    tmp_path: Path, durability: Any, synchronous: int
) -> None:
    with Store(tmp_path, durability=durability) as store:
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert store.waits_for_disk is (durability == "power")


def test_durability_is_a_checked_run_setting() -> None:
    assert load_config(None, environ={}).run.durability == "process"
    power = load_config(None, environ={}, overrides={"run": {"durability": "power"}})
    assert power.run.durability == "power"
    with pytest.raises(ConfigError, match=r"run\.durability"):
        load_config(None, environ={}, overrides={"run": {"durability": "fsync"}})


@pytest.mark.anyio
@pytest.mark.parametrize("inline", [True, False])
async def test_store_calls_run_on_the_loop_thread_only_when_inline(
    tmp_path: Path, inline: bool
) -> None:
    calls = StoreCalls(CounterBuffer(), inline=inline)
    with Store(tmp_path) as store:
        thread = await calls(lambda: (store.count_by_status(), threading.get_ident())[1])
    assert (thread == threading.get_ident()) is inline


@pytest.mark.anyio
@pytest.mark.parametrize("inline", [True, False])
async def test_light_store_calls_give_no_turn_inline_and_still_keep_off_a_threads_store(
    tmp_path: Path, inline: bool
) -> None:
    calls = StoreCalls(CounterBuffer(), inline=inline)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")  # at the first turn given to the other tasks

    with Store(tmp_path) as store:
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            thread = await calls.light(lambda: (store.next_request_no(), threading.get_ident())[1])
            ran.append("after the light call")
            await calls(store.count_by_status)
    assert (thread == threading.get_ident()) is inline
    assert ran[0] == ("after the light call" if inline else "other")


class _Slow(BaseFilter):
    """A cpu_bound filter that notes the thread each check ran on."""

    name = "slow"
    cpu_bound: ClassVar[bool] = True

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.threads: list[int] = []

    def check(self, instruction: str) -> None:
        self.threads.append(threading.get_ident())


@pytest.mark.anyio
@pytest.mark.parametrize("offload_after", [float("inf"), -1.0])
async def test_cpu_bound_checks_leave_the_loop_only_once_they_take_long(
    monkeypatch: pytest.MonkeyPatch, offload_after: float
) -> None:
    # The threshold decides, not the clock: never reached, or always exceeded.
    monkeypatch.setattr(filters, "OFFLOAD_AFTER", offload_after)
    slow = _Slow()
    chain = FilterChain([slow])
    for text in ("one", "two", "three"):
        assert await chain.check_instruction(text) is None
    on_loop = [t == threading.get_ident() for t in slow.threads]
    assert on_loop == [offload_after > 0] * 3


class _OnceSlowThenWaiting(_Slow):
    """One check burns 0.2 s of CPU; every later one takes none but waits 3 ms.

    The wait stands for a worker thread waiting for the GIL while the loop runs: wall
    time that the check itself does not cost.
    """

    def check(self, instruction: str) -> None:
        super().check(instruction)
        if len(self.threads) == 1:
            burn_until = time.thread_time() + 0.2
            while time.thread_time() < burn_until:
                pass
        else:
            time.sleep(0.003)


@pytest.mark.anyio
async def test_a_check_sent_to_a_thread_by_one_slow_call_comes_back_to_the_loop() -> None:
    waiting = _OnceSlowThenWaiting()
    chain = FilterChain([waiting])
    for n in range(200):
        assert await chain.check_instruction(f"candidate {n}") is None
    on_loop = [t == threading.get_ident() for t in waiting.threads]
    assert on_loop[0] and not on_loop[1]  # the slow call sent the next ones to a thread
    # Its CPU average decays while on the thread, however long the waits there are.
    assert all(on_loop[-100:])


def _run_command(out: Path, base_url: str, target: int) -> list[str]:
    return [
        sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out),
        "--base-url", base_url, "--model", "sim", "--target", str(target),
    ]  # fmt: skip


def _ledger_covers_every_decision(out: Path) -> None:
    """Every label, parsed response and finished task has its answer in the ledger."""
    db = out / "checkpoint.sqlite"
    by_stage = dict(committed(db, "SELECT stage, COUNT(*) FROM ledger GROUP BY stage"))
    labelled = committed(
        db, "SELECT COUNT(*) FROM instructions WHERE is_classification IS NOT NULL"
    )[0][0]
    finished = committed(
        db,
        "SELECT COUNT(*) FROM instructions WHERE status = 'accepted' OR id IN "
        "(SELECT task_id FROM rejections WHERE filter = 'no_valid_instances')",
    )[0][0]
    responses = committed(db, "SELECT COUNT(*) FROM generations")[0][0]
    assert by_stage.get("identify_classification", 0) >= labelled > 0
    assert by_stage.get("generate_instances", 0) >= finished > 0
    assert by_stage.get("generate_instructions", 0) >= responses > 0


@pytest.mark.parametrize("durability", ["process", "power"])
def test_a_run_killed_mid_flight_resumes_with_every_answer_it_acted_on(
    tmp_path: Path, durability: str
) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SELFINSTRUCT_RUN_DURABILITY": durability}
    with simulator_process() as base_url:
        process = subprocess.Popen(
            _run_command(out, base_url, 0), stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            accepted = 0
            for line in process.stderr:  # the progress lines of the run
                found = re.search(r"accepted (\d+)/", line)
                accepted = int(found.group(1)) if found else accepted
                if accepted >= 20:
                    break
            assert accepted >= 20, f"the run ended first (exit {process.wait()})"
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        _ledger_covers_every_decision(out)
        with Store(out, read_only=True) as store:
            before = store.count_by_status()["accepted"]
        resumed = subprocess.run(
            _run_command(out, base_url, before + 5), capture_output=True,
            text=True, env=env, cwd=ROOT, timeout=300,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _ledger_covers_every_decision(out)
    with Store(out, read_only=True) as store:
        assert store.count_by_status()["accepted"] >= before + 5
    lines = (out / "tasks.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) >= before + 5


def test_the_store_refuses_an_unknown_durability(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        Store(tmp_path, durability="fsync")  # type: ignore[arg-type]
    assert not (tmp_path / "checkpoint.sqlite").exists()


@pytest.mark.anyio
async def test_inline_store_calls_give_back_counters_of_a_failed_commit(tmp_path: Path) -> None:
    counters = CounterBuffer()
    counters.count("requests.generate_instructions")
    calls = StoreCalls(counters, inline=True)
    with Store(tmp_path) as store:
        store.add_pending(PendingTask("t1", "Taken already."), 1)
        with pytest.raises(CheckpointError):
            await calls(
                store.add_decisions, (), PendingTask("t1", "Taken already."), 1, counters.take()
            )
        await calls(store.add_counters, counters.take())
        assert store.counters() == {"requests.generate_instructions": 1}
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_an_answer_from_the_ledger_says_it_was_replayed_and_the_flag_is_never_stored(
    tmp_path: Path,
) -> None:
    from selfinstruct_async.client.protocol import Choice, Completion, CompletionRequest
    from selfinstruct_async.client.recording import LedgerClient

    bought: list[CompletionRequest] = []

    class Model:
        async def complete(self, request: CompletionRequest) -> Completion:
            bought.append(request)
            return Completion((Choice("maybe", "stop"),), model="m")

        async def aclose(self) -> None:
            pass

    async def db(call: Any, *args: Any) -> Any:
        return call(*args)

    request = CompletionRequest("identify_classification", "Is it?", 3)
    with Store(tmp_path) as store:
        ledger = LedgerClient(Model(), store, db, lambda name: None, "m@completions")
        first = await ledger.complete(request)
        store.flush()
        again = await ledger.complete(request)
        stored = store.db.execute("SELECT completion FROM ledger").fetchone()[0]
    assert len(bought) == 1 and not first.replayed
    assert again.replayed and again.text == first.text
    assert "replayed" not in stored

"""Grouped commits: many units of work per SQLite commit, with a unit's guarantees (issue 15).

A unit (a task's outcome, a response's decisions) joins the open transaction under a
savepoint; the group commits later, all at once. What must hold: another reader (and a
killed process) sees whole groups or nothing, ``tasks.jsonl`` only gets a task after its
commit, a failed unit leaves the group's other units alone, and the run commits its groups
while it runs and whatever is open when it ends.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from selfinstruct_async.checkpoint import transactions
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import load_config
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task
from selfinstruct_async.run.commit_groups import GroupCommitter, groups_commits
from selfinstruct_async.run.counter_buffer import CounterBuffer
from selfinstruct_async.run.store_calls import StoreCalls


def committed(run_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows another connection sees: only what was committed."""
    with sqlite3.connect(run_dir / "checkpoint.sqlite") as db:
        return db.execute(sql).fetchall()


def accepted_ids(run_dir: Path) -> list[str]:
    return [
        r[0] for r in committed(run_dir, "SELECT id FROM instructions WHERE status = 'accepted'")
    ]


def lines(run_dir: Path) -> int:
    path = run_dir / "tasks.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def accept(store: Store, n: int) -> None:
    task_id = f"t{n}"
    store.add_pending(PendingTask(task_id, f"Write poem number {n}."), n)
    task = Task(task_id, f"Write poem number {n}.", False, (Instance("", f"Poem {n}."),))
    store.finish_task(task_id, task)


def test_grouped_units_are_committed_together_and_tasks_jsonl_follows_the_commit(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        store.ledger_put_later("k1", "generate_instances", "{}")
        accept(store, 1)
        accept(store, 2)
        # The store reads its own group; nobody else sees any of it, and the file waits.
        assert store.count_by_status()["accepted"] == 2
        assert accepted_ids(tmp_path) == [] and lines(tmp_path) == 0
        assert committed(tmp_path, "SELECT key FROM ledger") == []
        store.commit_group()
        assert accepted_ids(tmp_path) == ["t1", "t2"] and lines(tmp_path) == 2
        assert committed(tmp_path, "SELECT key FROM ledger") == [("k1",)]
        assert not store.group_open


def test_without_grouping_every_unit_commits_on_return(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        accept(store, 1)
        assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1
        assert not store.group_open


def test_a_failed_unit_leaves_the_groups_other_units_and_its_waiting_writes_for_later(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.set_classification("t1", True)  # waits for the next unit, which fails
        rejection = RejectionRecord("instruction", "x", "why", "Taken already.", "t1")
        with pytest.raises(CheckpointError):  # the same id again, after its rejection row
            store.add_decisions([rejection], PendingTask("t1", "Taken already."), 9)
        accept(store, 2)
        store.commit_group()
    assert accepted_ids(tmp_path) == ["t1", "t2"] and lines(tmp_path) == 2
    assert committed(tmp_path, "SELECT COUNT(*) FROM rejections") == [(0,)]
    # The label rolled back with the failed unit and was written with a later one.
    assert committed(tmp_path, "SELECT is_classification FROM instructions WHERE id = 't1'") == [
        (1,)
    ]


def test_a_write_that_must_be_durable_commits_the_open_group_with_it(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.ledger_put("k1", "generate_instances", "{}")  # durable on return
        assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1


def test_a_group_holds_at_most_max_group_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transactions, "MAX_GROUP", 4)
    with Store(tmp_path) as store:
        store.group_writes()
        for n in range(3):  # 6 units: the fifth commits the group it would overflow
            accept(store, n)
        assert accepted_ids(tmp_path) == ["t0", "t1"] and lines(tmp_path) == 2
        assert store.group_open


def test_closing_the_store_commits_the_open_group(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
    assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1


def test_a_lost_group_takes_its_tasks_with_it_and_never_its_request_numbers(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 0)
        store.commit_group()
        numbers = [store.next_request_no() for _ in range(3)]  # reserved: committed now
        accept(store, 1)
        store.db.execute("ROLLBACK")  # as SQLITE_FULL does to a whole transaction
        with pytest.raises(CheckpointError):  # nothing may build on the lost group
            accept(store, 2)
    assert accepted_ids(tmp_path) == ["t0"]
    assert [json.loads(line)["id"] for line in (tmp_path / "tasks.jsonl").open()] == ["t0"]
    with Store(tmp_path) as store:
        assert store.next_request_no() > max(numbers)  # numbers never repeat


def test_after_a_lost_group_no_later_write_commits_what_was_made_from_it(tmp_path: Path) -> None:
    # As a run under a file size limit: the group holding t1's pending row fails to
    # commit, and the stage that finishes t1 a moment later must not put it in the file.
    with Store(tmp_path) as store:
        store.group_writes()
        store.add_pending(PendingTask("t1", "Write a poem."), 1)
        store.db.execute("ROLLBACK")  # what SQLITE_IOERR does to the open transaction
        task = Task("t1", "Write a poem.", False, (Instance("", "A poem."),))
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            store.finish_task("t1", task)
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            store.add_counters({"x": 1})
    assert accepted_ids(tmp_path) == [] and lines(tmp_path) == 0


def test_a_task_without_its_pending_row_is_never_accepted(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        task = Task("t9", "Never recorded.", False, (Instance("", "x"),))
        with pytest.raises(CheckpointError, match="t9 is not in it"):
            store.finish_task("t9", task)
        accept(store, 1)  # the store goes on: nothing was lost
    assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1


@pytest.mark.anyio
async def test_the_committer_commits_a_group_once_its_interval_is_up(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        calls = StoreCalls(CounterBuffer(), inline=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(GroupCommitter(store, calls, 0.0).run)
            await anyio.wait_all_tasks_blocked()  # grouping is on once the committer runs
            await calls(accept, store, 1)
            await anyio.wait_all_tasks_blocked()
            assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1
            tg.cancel_scope.cancel()
        assert calls.after is None  # its wake-up is taken back when it stops


@pytest.mark.anyio
async def test_the_committer_waits_its_interval_and_the_end_of_the_run_commits_the_rest(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        calls = StoreCalls(CounterBuffer(), inline=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(GroupCommitter(store, calls, 3600.0).run)
            await anyio.wait_all_tasks_blocked()
            await calls(accept, store, 1)
            await anyio.wait_all_tasks_blocked()
            assert accepted_ids(tmp_path) == [] and store.group_open
            tg.cancel_scope.cancel()
        await calls(store.flush)
        assert accepted_ids(tmp_path) == ["t1"] and lines(tmp_path) == 1


def test_streaming_runs_group_commits_and_batch_runs_and_interval_zero_do_not() -> None:
    config = load_config(None, environ={})
    assert config.run.commit_interval == 0.1 and groups_commits(config)
    assert not groups_commits(replace(config, run=replace(config.run, commit_interval=0.0)))
    assert not groups_commits(replace(config, run=replace(config.run, mode="batch")))
    from_env = load_config(None, environ={"SELFINSTRUCT_RUN_COMMIT_INTERVAL": "0"})
    assert not groups_commits(from_env)

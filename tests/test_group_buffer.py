"""Counters and meta values wait for the commit that takes them (issue 15, fewer statements).

In a group, a unit's counter increments are summed and its ``meta`` values replaced in
memory, and written once, right before the group's ``COMMIT``. What must hold: the table
gets one upsert per counter name and per key per group, not per unit; a group commits all
of its units' counters and values or none; a failed unit's never get in; a lost group
loses them; reads in the process see them at once; a killed process never leaves counters
ahead of or behind the committed rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint import transactions
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task
from tests.fixtures.killed import kill_when_ready

ROOT = Path(__file__).resolve().parents[1]
USAGE = {"version": 1, "stages": {}}


def committed(run_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows another connection sees: only what was committed."""
    with sqlite3.connect(run_dir / "checkpoint.sqlite") as db:
        return db.execute(sql).fetchall()


def committed_counters(run_dir: Path) -> dict[str, float]:
    return dict(committed(run_dir, "SELECT name, value FROM counters"))


def committed_meta(run_dir: Path, key: str) -> Any:
    rows = committed(run_dir, f"SELECT value FROM meta WHERE key = '{key}'")
    return json.loads(rows[0][0]) if rows else None


def assert_committed_tasks(run_dir: Path, n: int) -> None:
    """The checkpoint holds the counters of ``n`` accepted tasks and the ``n``-th's usage."""
    assert committed_counters(run_dir) == {"instructions": n, "tasks": n, "instances": n}
    assert committed_meta(run_dir, "usage") == {"tokens": n}


def accept(store: Store, n: int, tokens: int | None = None) -> None:
    """A task's two units, as the stages write them: passed the filters, then accepted."""
    task_id = f"t{n}"
    store.add_pending(PendingTask(task_id, f"Write poem number {n}."), n, {"instructions": 1})
    task = Task(task_id, f"Write poem number {n}.", False, (Instance("", f"Poem {n}."),))
    meta = {"usage": {"tokens": n if tokens is None else tokens}}
    store.finish_task(task_id, task, counters={"tasks": 1, "instances": 1}, meta=meta)


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store's connection runs meanwhile (each row of an executemany)."""
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        store.db.set_trace_callback(None)


def upserts(seen: list[str], table: str) -> int:
    return sum(1 for sql in seen if sql.startswith(f"INSERT INTO {table} "))


def test_a_groups_counters_and_meta_are_written_once_right_before_its_commit(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        with statements(store) as seen:
            for n in range(10):
                accept(store, n)
            assert upserts(seen, "counters") == upserts(seen, "meta") == 0
            store.commit_group()
        # One upsert per counter name and per key for the group's 20 units, all before COMMIT.
        assert upserts(seen, "counters") == 3 and upserts(seen, "meta") == 1
        last_write = max(i for i, sql in enumerate(seen) if sql.startswith("INSERT INTO"))
        assert seen[last_write + 1 :] == ["COMMIT"]
    assert committed_counters(tmp_path) == {"instructions": 10, "tasks": 10, "instances": 10}
    assert committed_meta(tmp_path, "usage") == {"tokens": 9}  # the last value wins


def test_without_grouping_each_unit_commits_its_own_counters_and_meta(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        accept(store, 1)
        assert_committed_tasks(tmp_path, 1)
        accept(store, 2)
        assert_committed_tasks(tmp_path, 2)
        assert not store.group_open


def test_reads_in_the_process_see_the_open_groups_counters_and_meta(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.commit_group()
        accept(store, 2, tokens=50)
        store.add_counters({"tasks": 3, "requests": 4})
        assert store.counters() == {"instructions": 2, "tasks": 5, "instances": 2, "requests": 4}
        assert all(type(v) is float for v in store.counters().values())
        assert store.get_meta("usage") == {"tokens": 50}
        assert_committed_tasks(tmp_path, 1)
        store.commit_group()
        # Committed once: the table holds them now, and nothing is counted twice.
        assert store.counters() == committed_counters(tmp_path)
        assert store.counters() == {"instructions": 2, "tasks": 5, "instances": 2, "requests": 4}


def test_a_set_meta_outside_a_unit_joins_the_open_group_and_its_value_wins(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.set_meta("usage", USAGE)  # as the run's end does before its flush
        assert store.get_meta("usage") == USAGE
        assert committed_meta(tmp_path, "usage") is None
        store.flush()
    assert committed_meta(tmp_path, "usage") == USAGE


def test_a_set_meta_with_no_group_open_is_committed_on_return(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        store.set_meta("calibration", {"current": "x"})
        assert committed_meta(tmp_path, "calibration") == {"current": "x"}
        assert not store.group_open


def test_a_failed_units_counters_and_meta_never_reach_the_checkpoint(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        with pytest.raises(CheckpointError, match="t9 is not in it"):  # fails after its writes
            task = Task("t9", "Never recorded.", False, (Instance("", "x"),))
            store.finish_task("t9", task, counters={"tasks": 1, "lost": 7}, meta={"usage": 0})
        rejection = RejectionRecord("instruction", "x", "why", "Taken already.", "t1")
        with pytest.raises(CheckpointError):  # the same id again: fails in SQL, mid-unit
            store.add_decisions([rejection], PendingTask("t1", "Again."), 9, {"lost": 1})
        assert store.counters() == {"instructions": 1, "tasks": 1, "instances": 1}
        assert store.get_meta("usage") == {"tokens": 1}
        accept(store, 2)
        store.commit_group()
    assert_committed_tasks(tmp_path, 2)


def test_a_lost_group_loses_its_counters_and_meta(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.commit_group()
        accept(store, 2, tokens=99)
        store.db.execute("ROLLBACK")  # what SQLITE_IOERR does to the open transaction
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            store.add_counters({"tasks": 1})
        # The process reads what the checkpoint holds, not what went with the group.
        assert store.counters() == {"instructions": 1, "tasks": 1, "instances": 1}
        assert store.get_meta("usage") == {"tokens": 1}
    assert_committed_tasks(tmp_path, 1)


def test_a_commit_failing_on_the_counters_takes_the_whole_group(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        store.commit_group()
        accept(store, 2)
        accept(store, 3)
        # The group's counters fail to write (as a full disk would fail them): none of its
        # rows may be committed without them.
        store.db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON main.counters "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(CheckpointError, match="disk full"):
            store.commit_group()
        assert not store.group_open
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            accept(store, 4)
    assert committed(tmp_path, "SELECT id FROM instructions") == [("t1",)]
    assert_committed_tasks(tmp_path, 1)
    assert len((tmp_path / "tasks.jsonl").read_text().splitlines()) == 1


def test_a_group_committed_at_max_group_takes_the_counters_of_its_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transactions, "MAX_GROUP", 3)
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        accept(store, 2)  # its fourth unit commits the group, with its own counters
        assert_committed_tasks(tmp_path, 2)
        assert not store.group_open


def test_a_non_grouped_write_commits_the_groups_counters_with_it(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.group_writes()
        accept(store, 1)
        numbers = [store.next_request_no() for _ in range(2)]  # reserves a block: commits
        assert committed_counters(tmp_path) == {"instructions": 1, "tasks": 1, "instances": 1}
        assert committed_meta(tmp_path, "next_request_no") > max(numbers)
        assert committed_meta(tmp_path, "usage") == {"tokens": 1}


CHILD = """
import sys
from pathlib import Path
from tests.test_group_buffer import accept
from selfinstruct_async.checkpoint.store import Store

store = Store(Path(sys.argv[1]), durability="process")
store.group_writes()
for n in range(30):
    accept(store, n)
    if n % 7 == 6:
        store.commit_group()
print(store.group_open, flush=True)  # a group of two tasks is open: kill now
sys.stdin.read()
"""


def test_a_killed_process_leaves_counters_equal_to_the_committed_rows(tmp_path: Path) -> None:
    kill_when_ready(CHILD, str(tmp_path))
    with Store(tmp_path) as store:
        accepted = store.count_by_status()["accepted"]
        assert accepted == 28  # four groups of 7; the open group's two tasks died with it
        assert store.counters() == {"instructions": 28, "tasks": 28, "instances": 28}
        assert store.get_meta("usage") == {"tokens": 27}

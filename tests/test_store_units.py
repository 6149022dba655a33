"""Units of work without a savepoint each: the group's redo log, and fewer statements (issue 15).

A grouped unit joins the open transaction without ``SAVEPOINT``/``RELEASE``; the group
keeps its finished units' statements and, when a unit fails, rolls back and runs them
again. What must hold: a failed unit (an SQL error, an exception between two of its
statements, a Python check after its statement) leaves the checkpoint exactly as if it had
never been tried; rows changed outside the units fall back to a savepoint per unit; a redo
that fails loses the group and nothing builds on it; a killed process keeps counters equal
to its committed rows. Ledger answers go in a few multi-row statements per commit, and a
``tasks.jsonl`` line is still exactly ``json.dumps`` of the task.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.deferred_writes import _chunks
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.checkpoint.tasks_file import instances_json, task_line
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task
from tests.fixtures.killed import kill_when_ready

ROOT = Path(__file__).resolve().parents[1]

# Columns that hold the time of the write: they differ between two stores doing the same.
_TIMES = {"created", "finished"}


def dump(run_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every committed row of every table (times left out), in storage order, sequences too."""
    with sqlite3.connect(run_dir / "checkpoint.sqlite") as db:
        tables = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        out = {}
        for table in tables:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            kept = [c for c in columns if c not in _TIMES] or ["rowid"]
            if table == "meta":
                rows = db.execute("SELECT key, value FROM meta WHERE key != 'schema_version'")
            else:
                rows = db.execute(f"SELECT {', '.join(kept)} FROM {table} ORDER BY rowid")
            out[table] = rows.fetchall()
    return out


def pending(n: int) -> PendingTask:
    return PendingTask(f"t{n}", f"Write poem number {n}.")


def accepted(n: int) -> Task:
    return Task(f"t{n}", f"Write poem number {n}.", n % 3 == 0, (Instance("", f"Poem {n}."),))


def rejection(n: int, level: Any = "instruction") -> RejectionRecord:
    return RejectionRecord(level, "rouge", "0.8", f"Similar to {n}.", f"r{n}")


def interrupted(n: int) -> Iterator[RejectionRecord]:
    """Rejections whose iteration is interrupted after the unit's first statement ran."""
    yield rejection(n)
    raise KeyboardInterrupt


def good_units(store: Store, n: int) -> None:
    """A task's units as the stages write them, with every kind of waiting write."""
    store.ledger_put_later(f"{n:064x}", "identify_classification", '{"text": "No"}')
    store.add_generation(n, [f"Write poem number {n}.", "Draw a map."])
    store.add_decisions([rejection(n)], pending(n), n, {"instructions.accepted": 1}, n % 2 == 0)
    store.set_classification(f"t{n}", n % 3 == 0)
    if n % 4 == 3:
        store.finish_task(f"t{n}", None, [rejection(n, "task")], {"tasks.rejected": 1})
    else:
        meta = {"usage": {"tokens": n}}
        store.finish_task(f"t{n}", accepted(n), [], {"tasks.accepted": 1}, meta)


def failing_units(store: Store, n: int) -> None:
    """Units that fail in every way a unit can, each after writing something."""
    with pytest.raises(CheckpointError):  # SQL error on its second statement
        store.add_decisions([rejection(99)], pending(n - 1), 99, {"lost": 1}, True)
    with pytest.raises(KeyboardInterrupt):  # between its statements
        store.add_decisions(interrupted(98), pending(98), 98, {"lost": 1})
    with pytest.raises(CheckpointError, match="is not in it"):  # a check after its statement
        store.finish_task("t97", accepted(97), [rejection(97)], {"lost": 1}, {"usage": "x"})


def run_units(run_dir: Path, *, with_failures: bool) -> None:
    with Store(run_dir, durability="process") as store:
        store.group_writes()
        for n in range(1, 13):
            good_units(store, n)
            if with_failures and n % 3 == 0:
                failing_units(store, n)
            if n % 5 == 0:
                store.commit_group()


def test_failed_units_leave_the_checkpoint_as_if_they_were_never_tried(tmp_path: Path) -> None:
    run_units(tmp_path / "a", with_failures=True)
    run_units(tmp_path / "b", with_failures=False)
    failed, clean = dump(tmp_path / "a"), dump(tmp_path / "b")
    assert failed == clean
    assert len(clean["instructions"]) == 12 and len(clean["rejections"]) == 15
    assert dict(clean["counters"]) == {
        "instructions.accepted": 12,
        "tasks.accepted": 9,
        "tasks.rejected": 3,
    }
    assert (tmp_path / "a" / "tasks.jsonl").read_text() == (
        tmp_path / "b" / "tasks.jsonl"
    ).read_text()


def statements_of(store: Store) -> list[str]:
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    return seen


def test_grouped_units_run_their_own_statements_and_no_savepoints(tmp_path: Path) -> None:
    with Store(tmp_path, durability="process") as store:
        store.group_writes()
        seen = statements_of(store)
        for n in range(10):
            store.add_pending(pending(n), n)
            store.finish_task(f"t{n}", accepted(n))
        store.commit_group()
        store.db.set_trace_callback(None)
    # Per task its INSERT and UPDATE; per group a BEGIN and a COMMIT.
    assert not [s for s in seen if s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]
    assert len(seen) == 2 * 10 + 2


def test_a_unit_interrupted_between_its_statements_is_taken_out_of_its_group(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.group_writes()
        store.add_pending(pending(1), 1, {"instructions": 1})
        with pytest.raises(KeyboardInterrupt):
            store.add_decisions(interrupted(2), pending(2), 2, {"instructions": 1})
        # In the process already: the interrupted unit's row and counters are gone.
        assert [t.id for t in store.pending_tasks()] == ["t1"]
        assert store.counters() == {"instructions": 1}
        store.add_pending(pending(3), 3, {"instructions": 1})
    rows = dump(tmp_path)
    assert [r[1] for r in rows["instructions"]] == ["t1", "t3"]
    assert [r[0] for r in rows["instructions"]] == [1, 2]  # AUTOINCREMENT rolled back too
    assert rows["rejections"] == [] and dict(rows["counters"]) == {"instructions": 2}


def test_rows_changed_outside_the_units_make_the_groups_units_use_savepoints(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.group_writes()
        store.add_pending(pending(1), 1)
        # A write the redo log does not know of, in the open group.
        store.db.execute("INSERT INTO generations (request_no, items) VALUES (7, '[]')")
        seen = statements_of(store)
        with pytest.raises(CheckpointError):
            store.add_decisions([rejection(1)], pending(1), 1)  # the same id again
        store.add_pending(pending(2), 2)
        store.db.set_trace_callback(None)
        assert seen.count("SAVEPOINT unit") == 2 and seen.count("ROLLBACK TO unit") == 1
    rows = dump(tmp_path)
    assert [r[1] for r in rows["instructions"]] == ["t1", "t2"]
    assert rows["generations"] == [(7, "[]", 0)] and rows["rejections"] == []


def test_a_redo_that_fails_loses_the_group_and_nothing_builds_on_it(tmp_path: Path) -> None:
    refused: set[str] = set()

    def gate(task_id: str) -> int:
        if task_id in refused:
            raise RuntimeError("the disk refuses")
        return 0

    with Store(tmp_path, durability="process") as store:
        store.db.create_function("gate", 1, gate)
        store.db.execute(
            "CREATE TEMP TRIGGER gated BEFORE INSERT ON main.instructions "
            "BEGIN SELECT gate(NEW.id); END"
        )
        store.group_writes()
        store.add_pending(pending(0), 0, {"instructions": 1})
        store.commit_group()
        store.add_pending(pending(1), 1, {"instructions": 1})
        refused.add("t1")  # the redo of t1's row fails from now on
        with pytest.raises(CheckpointError):
            store.add_pending(pending(1), 1, {"instructions": 1})
        assert not store.group_open
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            store.finish_task("t1", accepted(1))
    rows = dump(tmp_path)
    assert [r[1] for r in rows["instructions"]] == ["t0"]
    assert dict(rows["counters"]) == {"instructions": 1}
    assert not (tmp_path / "tasks.jsonl").exists()


def test_ledger_answers_commit_in_a_few_statements_and_the_first_answer_is_kept(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.ledger_put("k0", "generate_instances", "first")
        for n in range(200):
            store.ledger_put_later(f"k{n}", "generate_instances", f"answer {n}")
        seen = statements_of(store)
        store.flush()
        store.db.set_trace_callback(None)
    ledger = [s for s in seen if s.startswith("INSERT OR IGNORE INTO ledger")]
    assert len(ledger) == len(_chunks(200)) == 4
    rows = dict((r[0], r[2]) for r in dump(tmp_path)["ledger"])
    assert len(rows) == 200 and rows["k0"] == "first" and rows["k199"] == "answer 199"


def test_statement_sizes_cover_every_row_with_few_distinct_statements() -> None:
    for total in range(300):
        sizes = _chunks(total)
        assert sum(sizes) == total and all(0 < n <= 64 for n in sizes)
        assert len(sizes) <= total // 64 + 6
    assert {n for total in range(300) for n in _chunks(total)} == {1, 2, 4, 8, 16, 32, 64}


@pytest.mark.parametrize("is_classification", [True, False])
def test_a_task_line_is_json_dumps_of_the_task(is_classification: bool) -> None:
    task = Task(
        'id "7"\\',
        "Écris un poème\u2028sur la mer\n\t\x01 «ici» 🌊",
        is_classification,
        (Instance("", "a\u0000b"), Instance('"quoted"', "naïve\r\n")),
    )
    expected = json.dumps(
        {
            "id": task.id,
            "instruction": task.instruction,
            "is_classification": task.is_classification,
            "instances": [{"input": i.input, "output": i.output} for i in task.instances],
        },
        ensure_ascii=False,
    )
    assert task_line(task) == expected
    assert task_line(task, instances_json(task.instances)) == expected


CHILD = """
import sys
from pathlib import Path
import pytest
from tests.test_store_units import failing_units, good_units
from selfinstruct_async.checkpoint.store import Store

store = Store(Path(sys.argv[1]), durability="process")
store.group_writes()
for n in range(1, 31):
    good_units(store, n)
    if n % 4 == 0:
        failing_units(store, n)
    if n % 7 == 0:
        store.commit_group()
print(store.group_open, flush=True)  # a group of two tasks is open: kill now
sys.stdin.read()
"""


def test_a_killed_process_with_failed_units_keeps_counters_equal_to_committed_rows(
    tmp_path: Path,
) -> None:
    kill_when_ready(CHILD, str(tmp_path))
    with Store(tmp_path) as store:
        counts = store.count_by_status()
        counters = store.counters()
        ids = [t.id for t in store.accepted_tasks()]
        waiting = [t.id for t in store.pending_tasks()]
    assert counts["accepted"] + counts["rejected"] == 28  # the open group's two died with it
    assert counters == {
        "instructions.accepted": 28,
        "tasks.accepted": counts["accepted"],
        "tasks.rejected": counts["rejected"],
    }
    lines = (tmp_path / "tasks.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    assert "t97" not in ids and "t98" not in waiting and waiting == []


def test_a_finished_tasks_meta_is_encoded_once_by_the_commit_that_writes_it(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.group_writes()
        for n in range(3):
            store.add_pending(pending(n), n)
            store.finish_task(f"t{n}", accepted(n), meta={"usage": {"tokens": n}})
        read = store.get_meta("usage")
        read["tokens"] = -1  # a copy: what waits for the commit is unchanged
        assert store.get_meta("usage") == {"tokens": 2}
        seen = statements_of(store)
        store.commit_group()
        store.db.set_trace_callback(None)
    assert [s for s in seen if "INTO meta" in s] == [
        "INSERT INTO meta (key, value) VALUES ('usage', '{\"tokens\": 2}') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    ]


def test_a_meta_value_that_is_not_json_fails_the_commit_that_would_write_it(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        # Without a group: that task's own commit fails, and the store goes on.
        store.add_pending(pending(0), 0)
        with pytest.raises(CheckpointError, match="meta value 'usage' cannot be stored as JSON"):
            store.finish_task("t0", accepted(0), meta={"usage": {1, 2}})
        store.finish_task("t0", accepted(0), meta={"usage": 0})
        # In a group: the group's commit fails and takes the group, as a full disk would.
        store.group_writes()
        store.add_pending(pending(1), 1, {"instructions": 1})
        store.finish_task("t1", accepted(1), meta={"usage": {1, 2}})
        with pytest.raises(CheckpointError, match="'usage' cannot be stored as JSON"):
            store.commit_group()
        with pytest.raises(CheckpointError, match="lost with a failed commit"):
            store.add_pending(pending(2), 2)
    rows = dump(tmp_path)
    assert [r[1] for r in rows["instructions"]] == ["t0"] and rows["counters"] == []
    assert ("usage", "0") in rows["meta"]


def test_a_unit_whose_own_commit_fails_keeps_its_waiting_writes_for_the_next_one(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, durability="process") as store:
        store.add_pending(pending(1), 1, {"n": 1})
        store.set_classification("t1", True)
        store.ledger_put_later("k1", "identify_classification", "{}")
        store.db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON main.counters "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(CheckpointError, match="disk full"):  # fails right before COMMIT
            store.add_rejections([rejection(1)], {"n": 1})
        store.db.execute("DROP TRIGGER refuse")
        store.flush()
    rows = dump(tmp_path)
    assert [(r[1], r[4]) for r in rows["instructions"]] == [("t1", 1)]  # the label
    assert [r[0] for r in rows["ledger"]] == ["k1"]
    assert rows["rejections"] == [] and rows["counters"] == [("n", 1.0)]

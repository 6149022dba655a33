"""The checkpoint: commits survive reopening, torn JSONL tails are repaired, one owner at a time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from selfinstruct_async.checkpoint.schema import SCHEMA_VERSION
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task


def accept(store: Store, n: int) -> Task:
    task = Task(f"t{n}", f"Instruction number {n}", n % 2 == 0, (Instance("in", f"out {n}"),))
    store.add_pending(PendingTask(task.id, task.instruction), request_no=n)
    store.finish_task(task.id, task, [], {"tasks.accepted": 1})
    return task


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_accepted_tasks_are_in_jsonl_and_checkpoint(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(3):
            accept(store, n)
        assert [t.id for t in store.accepted_tasks()] == ["t0", "t1", "t2"]
    rows = lines(tmp_path / "tasks.jsonl")
    assert [r["id"] for r in rows] == ["t0", "t1", "t2"]
    assert rows[1] == {
        "id": "t1",
        "instruction": "Instruction number 1",
        "is_classification": False,
        "instances": [{"input": "in", "output": "out 1"}],
    }


def test_reopening_restores_pending_counters_and_request_numbers(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        accept(store, 0)
        store.add_pending(PendingTask("p1", "Still waiting for instances"), request_no=1)
        store.set_classification("p1", True)
        store.add_rejections(
            [RejectionRecord("instruction", "word_count", "2 words", "Too short")],
            {"rejected.instruction.word_count": 1},
        )
        used = [store.next_request_no() for _ in range(5)]
    with Store(tmp_path) as store:
        assert store.pending_tasks() == [PendingTask("p1", "Still waiting for instances", True)]
        assert store.counters() == {"tasks.accepted": 1, "rejected.instruction.word_count": 1}
        assert store.next_request_no() > max(used)
        assert store.pooled_instructions() == [
            "Instruction number 0",
            "Still waiting for instances",
        ]
        summary = store.rejection_summary()
        assert summary["instruction/word_count"]["count"] == 1


def test_torn_last_line_is_dropped_and_committed_tasks_are_appended(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(3):
            accept(store, n)
    path = tmp_path / "tasks.jsonl"
    data = path.read_bytes()
    # A crash between the SQLite commit and the append, in the middle of the third line.
    cut = data.rfind(b"\n", 0, len(data) - 1) + 10
    path.write_bytes(data[:cut])
    with Store(tmp_path):
        pass
    assert [r["id"] for r in lines(path)] == ["t0", "t1", "t2"]


def test_missing_jsonl_lines_are_rewritten_without_duplicates(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(4):
            accept(store, n)
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    with Store(tmp_path):
        pass
    with Store(tmp_path):
        pass
    assert [r["id"] for r in lines(path)] == ["t0", "t1", "t2", "t3"]


def test_second_process_cannot_open_a_run_directory_in_use(tmp_path: Path) -> None:
    with Store(tmp_path), pytest.raises(CheckpointError, match="used by another running"):
        Store(tmp_path)


def test_checkpoint_from_a_newer_version_is_refused_and_left_intact(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        accept(store, 0)
        store.set_meta("schema_version", SCHEMA_VERSION + 1)
    before = (tmp_path / "tasks.jsonl").read_bytes()
    with pytest.raises(CheckpointError, match="from a newer selfinstruct-async"):
        Store(tmp_path)
    assert (tmp_path / "tasks.jsonl").read_bytes() == before
    db = sqlite3.connect(tmp_path / "checkpoint.sqlite")
    assert db.execute("SELECT COUNT(*) FROM instructions").fetchone() == (1,)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CheckpointError, match="not a usable checkpoint"):
        Store(tmp_path)


def test_read_only_store_reads_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    with Store(tmp_path) as writer:
        accept(writer, 0)
        with Store(tmp_path, read_only=True) as reader:
            assert reader.count_by_status()["accepted"] == 1


def test_an_instance_is_stored_as_every_field_it_has_in_order() -> None:
    """``Instance.to_json`` stands in for ``asdict`` on the hot path: a new field must show."""
    from dataclasses import asdict, fields

    from selfinstruct_async.records import Instance

    instance = Instance(*(f"value of {f.name}" for f in fields(Instance)))
    assert list(instance.to_json().items()) == list(asdict(instance).items())

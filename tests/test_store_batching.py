"""Instruction-filter decisions committed per response, not per rejection (issue 15).

The batching must keep the crash guarantees: a decision and its counters are committed
together or not at all, and nothing is reported to the pool or plugins before it is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Candidate, PendingTask, Rejection, RejectionRecord
from selfinstruct_async.run.counter_buffer import CounterBuffer
from selfinstruct_async.run.store_calls import StoreCalls
from selfinstruct_async.stages.filter_instructions import filter_instructions


def record(task_id: str, text: str = "too short") -> RejectionRecord:
    return RejectionRecord("instruction", "word_count", "1 word", text, task_id)


def generations(store: Store) -> dict[int, int]:
    return dict(store.db.execute("SELECT request_no, processed FROM generations"))


def rejected_ids(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("SELECT task_id FROM rejections")}


def test_decisions_of_a_response_commit_with_its_end(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.add_generation(1, ["a", "b", "c"])
        store.add_decisions(
            [record("si-1-0"), record("si-1-2")],
            PendingTask("si-1-1", "Write a poem about the sea."),
            1,
            {"rejected.instruction.word_count": 2, names.INSTRUCTIONS_ACCEPTED: 1},
            True,
        )
        assert generations(store) == {1: 1}
        assert rejected_ids(store.db_path) == {"si-1-0", "si-1-2"}
        assert [t.id for t in store.pending_tasks()] == ["si-1-1"]
        assert store.counters()["rejected.instruction.word_count"] == 2


def test_a_failed_commit_leaves_none_of_its_decisions(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.add_generation(1, ["a", "b"])
        store.add_pending(PendingTask("si-1-1", "Taken already."), 1)
        with pytest.raises(CheckpointError):
            # The pending id repeats: the whole commit fails, rejections and counters too.
            store.add_decisions(
                [record("si-1-0")],
                PendingTask("si-1-1", "Taken already."),
                1,
                {"rejected.instruction.word_count": 1},
                True,
            )
        assert rejected_ids(store.db_path) == set()
        assert "rejected.instruction.word_count" not in store.counters()
        assert generations(store) == {1: 0}


@dataclass
class Chain:
    """Rejects instructions of fewer than three words; remembers the rest."""

    remembered: list[str] = field(default_factory=list)

    async def check_instruction(self, instruction: str) -> Rejection | None:
        if len(instruction.split()) < 3:
            return Rejection("too short", "word_count")
        return None

    def remember(self, instruction: str) -> None:
        self.remembered.append(instruction)


@dataclass
class Observed:
    """What the pool and the plugins heard, each with what the checkpoint held by then."""

    db_path: Path
    decided: list[tuple[bool, str]] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    durable_when_reported: list[bool] = field(default_factory=list)

    def candidate_rejected(self, rejection: RejectionRecord) -> None:
        self.reported.append(rejection.task_id or "")
        self.durable_when_reported.append(rejection.task_id in rejected_ids(self.db_path))

    def pool_decided(self, accepted: bool, instruction: str = "") -> None:
        self.decided.append((accepted, instruction))


class FailingStore(Store):
    """A store whose decision commits fail once armed, as with a full disk."""

    armed = False

    def add_decisions(
        self,
        rejections: Iterable[RejectionRecord],
        pending: PendingTask | None,
        request_no: int,
        counters: Any = None,
        processed: bool = False,
    ) -> None:
        if self.armed:
            raise CheckpointError("disk full")
        super().add_decisions(rejections, pending, request_no, counters, processed)


async def run_filter(
    store: Store, candidates: list[Candidate]
) -> tuple[Observed, CounterBuffer, list[PendingTask], BaseException | None]:
    observed = Observed(store.db_path)
    counters = CounterBuffer()
    ctx: Any = SimpleNamespace(
        db=StoreCalls(counters),
        store=store,
        chain=Chain(),
        pool=SimpleNamespace(decided=observed.pool_decided),
        plugins=SimpleNamespace(candidate_rejected=observed.candidate_rejected),
        take_counters=counters.take,
    )
    send_c, receive_c = anyio.create_memory_object_stream[Candidate](100)
    send_p, receive_p = anyio.create_memory_object_stream[PendingTask](100)
    for candidate in candidates:
        send_c.send_nowait(candidate)
    send_c.close()
    error: BaseException | None = None
    try:
        await filter_instructions(ctx, receive_c, send_p)
    except CheckpointError as e:
        error = e
    passed = [p async for p in receive_p]
    return observed, counters, passed, error


@pytest.mark.anyio
async def test_interleaved_responses_are_reported_only_once_committed(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.add_generation(1, ["x"] * 3)
        store.add_generation(2, ["x"] * 2)
        candidates = [
            Candidate("Short one", 1, 0),
            Candidate("Nope", 2, 0),
            Candidate("Write a poem about the sea.", 1, 1),
            Candidate("Tiny", 1, 2, last=True),
            Candidate("Explain how tides work.", 2, 1, last=True),
        ]
        observed, counters, passed, error = await run_filter(store, candidates)
        assert error is None
        assert [p.id for p in passed] == ["si-1-1", "si-2-1"]
        assert sorted(observed.reported) == ["si-1-0", "si-1-2", "si-2-0"]
        assert all(observed.durable_when_reported)
        assert observed.decided.count((False, "")) == 3
        assert generations(store) == {1: 1, 2: 1}
        stored = store.counters()
        assert stored["rejected.instruction.word_count"] == 3
        assert stored[names.INSTRUCTIONS_ACCEPTED] == 2
        assert counters.totals["rejected.instruction.word_count"] == 3


@pytest.mark.anyio
async def test_rejections_never_committed_are_neither_reported_nor_counted(
    tmp_path: Path,
) -> None:
    store = FailingStore(tmp_path)
    with store:
        store.add_generation(1, ["x"] * 2)
        store.flush()  # the response is in the checkpoint; its decisions' commit fails
        store.armed = True
        candidates = [Candidate("Short one", 1, 0), Candidate("Tiny", 1, 1, last=True)]
        observed, counters, passed, error = await run_filter(store, candidates)
        assert isinstance(error, CheckpointError)
        assert passed == [] and observed.reported == [] and observed.decided == []
        assert counters.totals.get("rejected.instruction.word_count", 0) == 0
        assert generations(store) == {1: 0}  # a resume filters the response again
        assert rejected_ids(store.db_path) == set()

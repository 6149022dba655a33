"""Counter names have one owner, and acceptance one formula, shared by /status and stats."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.run.backends import build_client
from selfinstruct_async.run.counter_buffer import CounterBuffer, TakenCounters
from selfinstruct_async.run.runner import run
from selfinstruct_async.run.store_calls import StoreCalls
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator
from tests.test_monitor import fetch, monitor
from tests.test_pipeline import RecordingClient, make_config

pytestmark = pytest.mark.anyio


@pytest.fixture
async def provider(make_simulator: MakeSimulator) -> SimulatorHandle:
    """A simulated provider answering like a model, flaws the filters catch included."""
    return await make_simulator(responder=None)


def test_names_keep_the_format_already_in_checkpoints_and_metrics() -> None:
    # These strings are in every checkpoint, summary.json and /metrics label written so
    # far: a change here orphans the counters of every earlier run.
    stage = names.GENERATE_INSTANCES
    assert names.requests(stage) == "requests.generate_instances"
    assert names.failed(stage) == "failed.generate_instances"
    assert names.deferred(stage) == "deferred.generate_instances"
    assert names.useless(stage) == "useless.generate_instances"
    assert names.ledger_reused(stage) == "ledger.reused.generate_instances"
    assert names.rejected("instruction", "blacklist") == "rejected.instruction.blacklist"
    assert [names.classification(a) for a in (True, False, None)] == [
        "classification.yes",
        "classification.no",
        "classification.unparseable",
    ]
    assert names.TASKS_ACCEPTED == "tasks.accepted"


def test_rejections_read_back_every_level_and_filter_rejected_builds() -> None:
    built = {
        names.rejected(level, name): float(n)
        for n, (level, name) in enumerate(
            [(level, name) for level in names.LEVELS for name in ("a", "b_c", "dotted.name")],
            start=1,
        )
    }
    counters = {**built, names.TASKS_ACCEPTED: 9.0, names.requests(names.GENERATE_INSTANCES): 3}
    found = names.rejections(counters)
    assert {names.rejected(level, name): n for (level, name), n in found.items()} == built


def test_rejection_counters_win_over_the_rejections_table_and_it_fills_the_rest() -> None:
    counters = {names.rejected("instance", "empty_output"): 4.0}
    table = {("instance", "empty_output"): 9.0, ("task", "no_valid_instances"): 2.0}
    assert names.rejections(counters, table) == {
        ("instance", "empty_output"): 4.0,
        ("task", "no_valid_instances"): 2.0,
    }


def test_acceptance_divides_by_what_was_decided_not_by_what_was_generated() -> None:
    accepted = {"instruction": 6.0, "instance": 15.0, "task": 4.0}
    rejected = {
        ("instruction", "rouge_similarity"): 9.0,
        ("instruction", "blacklist"): 3.0,
        ("instance", "empty_output"): 2.0,
        ("task", "no_valid_instances"): 1.0,
    }
    counters = {names.ACCEPTED[level]: n for level, n in accepted.items()}
    counters |= {names.rejected(level, f): n for (level, f), n in rejected.items()}
    # Work still under way: generated but not decided yet. It must not move the rates.
    counters[names.INSTRUCTIONS_GENERATED] = 100.0
    counters[names.INSTANCES_GENERATED] = 100.0
    result = names.acceptance(counters)
    assert list(result) == list(names.LEVELS)
    for level in names.LEVELS:
        refused = {f: n for (lv, f), n in rejected.items() if lv == level}
        figures = result[level]
        assert figures.accepted == accepted[level]
        assert dict(figures.rejected_by_filter) == refused
        assert figures.decided == accepted[level] + sum(refused.values())
        assert figures.rate == accepted[level] / (accepted[level] + sum(refused.values()))
    by_filter = list(result["instruction"].rejected_by_filter.values())
    assert by_filter == sorted(by_filter, reverse=True)


def test_acceptance_has_every_level_and_no_rate_before_anything_is_decided() -> None:
    result = names.acceptance({names.INSTRUCTIONS_GENERATED: 8.0, "rejected.odd.f": 2.0})
    assert list(result) == [*names.LEVELS, "odd"]
    assert all(result[level].rate is None for level in names.LEVELS)
    assert result["odd"].rejected == 2.0 and result["odd"].rate == 0.0


def test_request_stages_come_in_pipeline_order_then_unknown_ones_sorted() -> None:
    counters = {
        names.failed("zeta"): 1,
        names.requests(names.GENERATE_INSTANCES): 1,
        names.requests(names.GENERATE_INSTRUCTIONS): 1,
        names.failed("alpha"): 1,
        names.TASKS_ACCEPTED: 1,
    }
    assert names.request_stages(counters) == [
        names.GENERATE_INSTRUCTIONS,
        names.GENERATE_INSTANCES,
        "alpha",
        "zeta",
    ]


def test_known_refuses_names_outside_the_families() -> None:
    assert names.known(names.requests(names.IDENTIFY_CLASSIFICATION))
    assert names.known(names.rejected("task", "request_refused"))
    assert not names.known("requests.identify_clasification")
    assert not names.known("rejected.nonsense.blacklist")
    assert not names.known("tasks.acepted")


async def test_counters_taken_for_a_commit_that_fails_ride_along_with_the_next_one(
    tmp_path: Path,
) -> None:
    buffer = CounterBuffer()
    db = StoreCalls(buffer)
    buffer.count(names.TASKS_ACCEPTED)
    buffer.count(names.rejected("task", "no_valid_instances"), 2)

    def full_disk(counters: TakenCounters) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with Store(tmp_path / "run") as store:
        with pytest.raises(sqlite3.OperationalError):
            await db(full_disk, buffer.take())
        buffer.count(names.TASKS_ACCEPTED)
        await db(store.add_counters, buffer.take())
        written = store.counters()
    expected = {names.TASKS_ACCEPTED: 2, names.rejected("task", "no_valid_instances"): 2}
    assert written == expected == buffer.totals
    assert buffer.take() == {}


async def test_a_decision_whose_commit_never_happens_is_never_counted(tmp_path: Path) -> None:
    buffer = CounterBuffer()
    db = StoreCalls(buffer)
    buffer.count(names.requests(names.GENERATE_INSTANCES))
    accepted = {names.TASKS_ACCEPTED: 1, names.INSTANCES_ACCEPTED: 3}

    def full_disk(counters: TakenCounters) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with Store(tmp_path / "run") as store:
        with pytest.raises(sqlite3.OperationalError):
            await db(full_disk, buffer.take(accepted))
        await db(store.add_counters, buffer.take())
        written = store.counters()
    # The request happened and is counted; the task it was for was never accepted.
    assert written == {names.requests(names.GENERATE_INSTANCES): 1}
    assert buffer.totals[names.TASKS_ACCEPTED] == 0


async def test_an_interrupted_run_counts_exactly_the_decisions_its_checkpoint_holds(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    await interrupted_run(provider, out)
    with Store(out, read_only=True) as store:
        written = store.counters()
        by_status = store.count_by_status()
        instruction_rejections = store.db.execute(
            "SELECT COUNT(*) FROM rejections WHERE level = 'instruction'"
        ).fetchone()[0]
    lines = (out / "tasks.jsonl").read_text().splitlines()
    assert written.get(names.TASKS_ACCEPTED, 0) == by_status["accepted"] == len(lines)
    assert written.get(names.INSTRUCTIONS_ACCEPTED, 0) == sum(by_status.values())
    rejected = names.rejections(written)
    assert sum(n for (level, _), n in rejected.items() if level == "instruction") == (
        instruction_rejections
    )


async def interrupted_run(provider: SimulatorHandle, out: Path) -> None:
    """A run cut off mid-way: candidates and tasks are still under way when it stops."""
    config = make_config(provider, out, target=40)
    async with RecordingClient(build_client(config), stop_after=40) as client:
        with anyio.CancelScope() as scope:
            client.scope = scope
            await run(config, client=client)


async def test_every_counter_a_run_writes_is_a_name_the_counters_module_owns(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    await run(make_config(provider, out, target=12))
    await run(make_config(provider, out, target=16))  # a resume: ledger reuse counted too
    with Store(out, read_only=True) as store:
        written = store.counters()
    assert written and [name for name in written if not names.known(name)] == []


async def test_status_and_stats_show_the_same_acceptance_for_the_same_run(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    await interrupted_run(provider, out)
    with Store(out, read_only=True) as store:
        counters = store.counters()  # this session's counters: the run had no other
    snapshot: dict[str, Any] = {"run_dir": str(out), "counters": counters}
    async with monitor(lambda: snapshot) as (url, session):
        code, text = await fetch(session, f"{url}/status")
    assert code == 200
    shown = json.loads(text)["acceptance"]
    printed = await anyio.run_process(
        [sys.executable, "-m", "selfinstruct_async", "stats", "--json", str(out)]
    )
    computed = json.loads(printed.stdout)["acceptance"]
    assert shown["instruction"]["rate"] is not None
    for level in names.LEVELS:
        assert shown[level]["rate"] == pytest.approx(computed[level]["acceptance_rate"]), level
        assert shown[level]["accepted"] == computed[level]["accepted"], level

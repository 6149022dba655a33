"""``selfinstruct run --mode batch``: the whole bootstrap through the simulator's Batch API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint import batches_table as table
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.cli import main, make_parser
from selfinstruct_async.client.batch import BatchClient
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.prompts import build_instruction_prompt
from selfinstruct_async.run.backends import batch_workers, build_client
from selfinstruct_async.run.batch_replay import demonstrations_in
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.batch_api import BATCH
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

PRICES = {"prompt_price": 0.15, "cached_prompt_price": 0.075, "completion_price": 0.6}


def batch_config(
    handle: SimulatorHandle, out: Path, api: str = "completions", **run: Any
) -> Config:
    return load_config(
        overrides={
            "run": {"out": str(out), "target": 8, "mode": "batch", **run},
            "batch": {"poll_seconds": 0.02, "quiet_seconds": 0.05},
            "endpoint": {"base_url": handle.base_url, "model": "sim", "api": api, **PRICES},
        }
    )


@pytest.mark.parametrize("api", ["completions", "chat"])
async def test_a_batch_mode_run_reaches_its_target_through_the_batch_api_at_half_price(
    make_simulator: MakeSimulator, tmp_path: Path, api: str
) -> None:
    handle = await make_simulator(responder=None, batch_seconds=0.05)
    out = tmp_path / "run"
    summary = await run(batch_config(handle, out, api))
    seen = handle.app[BATCH].audit()
    assert summary.accepted == 8
    # Every answer the provider gave went through a batch, each bought once.
    assert handle.stats.ok == sum(seen["answered"].values()) > 0
    assert seen["submitted_twice"] == [] and seen["answered_twice"] == []
    assert set(seen["statuses"]) == {"completed"}
    counters = summary.counters
    assert counters[names.BATCHES_SUBMITTED] == seen["batches"] >= 3  # the rounds' stages
    assert counters[names.BATCH_REQUESTS_ANSWERED] == handle.stats.ok
    with Store(out, read_only=True) as store:
        usage = store.get_meta("usage")["stages"]
    cost = sum(s["cost_usd"] for s in usage.values())
    prompt = sum(s["prompt_tokens"] for s in usage.values())
    cached = sum(s["cached_prompt_tokens"] for s in usage.values())
    completion = sum(s["completion_tokens"] for s in usage.values())
    full = ((prompt - cached) * 0.15 + cached * 0.075 + completion * 0.6) / 1e6
    assert cost == pytest.approx(full / 2)
    assert sum(s["batch_requests"] for s in usage.values()) == sum(
        s["requests"] for s in usage.values()
    )


async def test_later_batches_carry_the_survivors_of_earlier_rounds(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=None, batch_seconds=0.05)
    out = tmp_path / "run"
    await run(batch_config(handle, out, target=12))
    with Store(out, read_only=True) as store:
        stages = [
            {row[0] for row in store.db.execute(
                "SELECT DISTINCT stage FROM batch_requests WHERE local_id = ?", (local,)
            )}
            for (local,) in store.db.execute("SELECT local_id FROM batches ORDER BY seq")
        ]  # fmt: skip
    # The first round holds generation prompts (no task exists yet to ask instances for);
    # classification and instance requests of its survivors come in later batches.
    assert names.GENERATE_INSTRUCTIONS in stages[0]
    assert names.GENERATE_INSTANCES not in stages[0]
    later = set().union(*stages[1:])
    assert {names.IDENTIFY_CLASSIFICATION, names.GENERATE_INSTANCES} <= later


async def test_a_resumed_batch_run_reuses_the_ledger_and_buys_nothing_twice(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=None, batch_seconds=0.05)
    out = tmp_path / "run"
    await run(batch_config(handle, out, target=5))
    first = handle.app[BATCH].audit()
    summary = await run(batch_config(handle, out, target=10))
    seen = handle.app[BATCH].audit()
    assert summary.accepted == 10 and seen["batches"] >= first["batches"]
    # The first session's overshoot (answers to its pending tasks) came from the ledger.
    assert names.ledger_reused_total(summary.counters) > 0
    assert seen["submitted_twice"] == [] and seen["answered_twice"] == []
    assert summary.counters.get(names.BATCH_BOUGHT_TWICE, 0) == 0


def test_batch_mode_needs_exactly_one_endpoint(tmp_path: Path) -> None:
    none = load_config(overrides={"run": {"out": str(tmp_path), "mode": "batch"}})
    with pytest.raises(ConfigError, match="batch: needs exactly one endpoint"):
        build_client(none)
    two = Config(
        run=none.run,
        endpoints=(
            load_config(overrides={"endpoint": {"base_url": "http://a/v1", "model": "m"}}).endpoints
            + load_config(
                overrides={"endpoint": {"base_url": "http://b/v1", "model": "m"}}
            ).endpoints
        ),
    )
    with pytest.raises(ConfigError, match="got 2"):
        build_client(two)
    one = load_config(
        overrides={"run": {"mode": "batch"}, "endpoint": {"base_url": "http://a/v1", "model": "m"}}
    )
    assert isinstance(build_client(one), BatchClient)


def test_batch_mode_lets_a_rounds_worth_of_requests_wait_at_once() -> None:
    config = load_config(
        overrides={"run": {"mode": "batch"}, "batch": {"round_size": 50, "stage_requests": 900}}
    )
    sized = batch_workers(config)
    assert sized.generation.workers == 50
    assert sized.classification.workers == sized.instances.workers == 900
    streaming = load_config()
    assert batch_workers(streaming) == streaming


def test_the_mode_is_a_flag_a_toml_setting_and_stream_by_default(tmp_path: Path) -> None:
    assert load_config().run.mode == "stream"
    toml = tmp_path / "c.toml"
    toml.write_text('[run]\nmode = "batch"\n[batch]\nround_size = 7\n')
    from_file = load_config(toml)
    assert from_file.run.mode == "batch" and from_file.batch.round_size == 7
    args = make_parser().parse_args(["run", "--mode", "batch"])
    assert args.mode == "batch"
    with pytest.raises(SystemExit):
        make_parser().parse_args(["run", "--mode", "sideways"])
    with pytest.raises(ConfigError, match=r"run\.mode"):
        load_config(overrides={"run": {"mode": "sideways"}})


def test_replayed_prompts_give_back_their_demonstrations() -> None:
    demonstrations = ["Sort these numbers.", "Name a capital city: France", "Translate to Greek"]
    prompt = build_instruction_prompt(demonstrations)
    # The numbered list in order, a colon inside an item kept: the same `known` list the
    # generation stage gave the parser for this prompt.
    assert demonstrations_in(prompt.text) == [
        "Sort these numbers.",
        "Name a capital city: France",
        "Translate to Greek",
    ]


async def test_a_run_whose_batches_expire_and_fail_lines_still_reaches_its_target(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(
        responder=None, batch_seconds=0.2, batch_window=0.15, batch_error_rate=0.05, seed=2
    )
    out = tmp_path / "run"
    summary = await run(batch_config(handle, out, target=8, retry_failed_after=0))
    seen = handle.app[BATCH].audit()
    assert summary.accepted == 8
    assert "expired" in seen["statuses"]
    # Partial results were kept; only what came back unanswered went out again.
    assert seen["answered_twice"] == [] and seen["needless_resubmissions"] == []
    assert summary.counters[names.BATCH_RESUBMITTED] > 0
    assert summary.counters[names.BATCH_REQUESTS_UNFINISHED] > 0


async def test_a_streaming_resume_warns_of_batches_still_open(
    make_simulator: MakeSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await make_simulator(responder=None)
    out = tmp_path / "run"
    with Store(out) as store:
        table.record_batch(store.db, "left-000001", 1, "/v1/completions", [], 0)
    config = batch_config(handle, out, target=1, mode="stream")
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        await run(config)
    assert "1 batches of an earlier batch-mode session are still open" in caplog.text


def test_status_lists_the_batches_a_resume_will_wait_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rows = [(f"k{i}", "generate_instructions", "{}", "{}", 1) for i in range(3)]
    with Store(out) as store:
        table.record_batch(store.db, "left-000001", 1, "/v1/completions", rows, 10)
        table.record_batch(store.db, "left-000002", 2, "/v1/completions", rows[:1], 10)
        table.set_uploaded(store.db, "left-000002", "file-9")
        table.set_submitted(store.db, "left-000002", "batch_77", "in_progress")
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "open batches: 2 (4 requests)" in text
    assert "left-000001  (not created)  prepared  3 requests" in text
    assert "left-000002  batch_77  in_progress  1 requests" in text
    assert main(["status", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [b["batch_id"] for b in report["open_batches"]] == [None, "batch_77"]

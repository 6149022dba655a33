"""Which session made a run's tasks (issue 18, item 6).

A resume with other seeds, another model or another API is refused before any request
unless ``--allow-mixed``; every session's configuration (no secrets) and provenance is kept
in the checkpoint and shown by ``status``; a schema version 1 checkpoint is upgraded in
place and resumes. Real processes: the CLI in a subprocess against the simulator.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.schema import SCHEMA_VERSION
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.checkpoint.tasks_file import task_line
from selfinstruct_async.config import Config, EndpointConfig, RunConfig
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.run.sessions import begin_session
from selfinstruct_async.seeds import DEFAULT_SEEDS
from selfinstruct_async.simulator.process import served
from tests.test_faults import (
    accept,
    assert_one_line_error,
    jsonl_ids,
    selfinstruct,
)
from tests.test_run_dir_faults import cli_run, committed


def sessions(out: Path) -> list[dict[str, Any]]:
    with Store(out, read_only=True) as store:
        return store.sessions()


def test_a_resume_with_another_model_or_api_is_refused_before_any_request(
    tmp_path: Path, base_url: str
) -> None:
    out = tmp_path / "run"
    first = selfinstruct(*cli_run(out, base_url, "--model", "a"))
    assert first.returncode == 0, first.stderr[-2000:]
    config = (out / "config.json").read_text()
    answered = served(base_url)
    was = (f"{out} was generated with model 'a' (api completions) and seeds {DEFAULT_SEEDS} "
           "(sha256 ")  # fmt: skip
    for flags, asks in (
        (["--model", "b"], "this session asks for model 'b'; "),
        (["--model", "a", "--api", "chat"], "this session asks for api chat; "),
        (["--model", "b", "--api", "chat"], "this session asks for model 'b' and api chat; "),
    ):
        result = selfinstruct(*cli_run(out, base_url, *flags, target=10))
        assert_one_line_error(result, was)
        assert (
            asks + "pass --allow-mixed to add to it anyway, or use another --out" in result.stderr
        )
    assert served(base_url) == answered  # refused before any request
    assert (out / "config.json").read_text() == config
    assert len(sessions(out)) == 1


def test_a_resume_with_other_seeds_is_refused_but_the_same_seeds_elsewhere_are_not(
    tmp_path: Path, base_url: str
) -> None:
    out = tmp_path / "run"
    first = selfinstruct(*cli_run(out, base_url, "--model", "sim"))
    assert first.returncode == 0, first.stderr[-2000:]
    same = tmp_path / "copy.jsonl"
    shutil.copyfile(DEFAULT_SEEDS, same)
    lines = DEFAULT_SEEDS.read_text().splitlines(keepends=True)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(lines[:-1]))
    refused = selfinstruct(*cli_run(out, base_url, "--model", "sim", "--seeds", str(other)))
    assert_one_line_error(refused, f"this session asks for seeds {other} (sha256 ")
    assert "pass --allow-mixed" in refused.stderr
    resumed = selfinstruct(*cli_run(out, base_url, "--model", "sim", "--seeds", str(same),
                                    target=7))  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [s["provenance"]["seeds"] for s in sessions(out)] == [str(DEFAULT_SEEDS), str(same)]


def test_allow_mixed_adds_to_the_run_and_the_history_keeps_every_session(
    tmp_path: Path, base_url: str
) -> None:
    out = tmp_path / "run"
    first = selfinstruct(*cli_run(out, base_url, "--model", "a", target=4))
    assert first.returncode == 0, first.stderr[-2000:]
    mixed = selfinstruct(*cli_run(out, base_url, "--model", "b", "--allow-mixed", target=8))
    assert mixed.returncode == 0, mixed.stderr[-2000:]
    assert "adding tasks made with model 'b'" in mixed.stderr
    history = sessions(out)
    assert [s["provenance"]["endpoints"][0]["model"] for s in history] == ["a", "b"]
    assert [s["config"]["endpoints"][0]["model"] for s in history] == ["a", "b"]
    assert history[1]["accepted_before"] == history[0]["tasks_added"] >= 4
    assert sum(s["tasks_added"] for s in history) == len(committed(out))
    assert json.loads((out / "config.json").read_text())["endpoints"][0]["model"] == "b"
    assert all(len(s["provenance"]["seeds_sha256"]) == 64 for s in history)
    shown = selfinstruct("status", str(out), "--json")
    assert json.loads(shown.stdout)["sessions"] == history
    text = selfinstruct("status", str(out)).stdout
    assert "session 1 from" in text and "model 'a'" in text and "model 'b'" in text


def test_a_session_that_made_nothing_does_not_bind_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def config(model: str) -> Config:
        endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", model=model)
        return Config(run=RunConfig(out=str(out)), endpoints=(endpoint,))

    with Store(out) as store:
        begin_session(store, config("misspelt"), DEFAULT_SEEDS)  # failed before any task
        begin_session(store, config("right"), DEFAULT_SEEDS)
        accept(store, 0)
        with pytest.raises(ConfigError, match="was generated with model 'right'"):
            begin_session(store, config("third"), DEFAULT_SEEDS)
        assert len(store.sessions()) == 2


def test_credentials_in_base_url_stay_out_of_the_sessions_and_config_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = EndpointConfig(base_url="http://user:hunter2-secret@127.0.0.1:9/v1", model="m")
    with Store(out) as store:
        begin_session(store, Config(run=RunConfig(out=str(out)), endpoints=(endpoint,)),
                      DEFAULT_SEEDS)  # fmt: skip
        recorded = json.dumps(store.sessions())
    assert "hunter2" not in recorded and "http://127.0.0.1:9/v1" in recorded


# Version 1's schema, exactly as selfinstruct-async wrote it before sessions were recorded.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instructions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instruction TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    is_classification INTEGER,
    instances TEXT,
    request_no INTEGER,
    created REAL NOT NULL,
    finished REAL,
    accept_no INTEGER UNIQUE
);
CREATE INDEX IF NOT EXISTS instructions_status ON instructions (status, seq);
CREATE TABLE IF NOT EXISTS rejections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    level TEXT NOT NULL,
    filter TEXT NOT NULL,
    reason TEXT NOT NULL,
    text TEXT NOT NULL,
    task_id TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_task ON rejections (task_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    request_no INTEGER PRIMARY KEY,
    items TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0
);
"""


def make_v1_run(out: Path, base_url: str, model: str, tasks: int = 3) -> list[str]:
    """A run directory as version 1 left it: checkpoint, tasks.jsonl and config.json."""
    from selfinstruct_async.records import Instance, Task

    out.mkdir(parents=True)
    db = sqlite3.connect(out / "checkpoint.sqlite")
    db.executescript(SCHEMA_V1)
    db.execute("PRAGMA journal_mode=WAL")
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("schema_version", "1"), ("next_request_no", "1000")])  # fmt: skip
    lines = []
    for n in range(tasks):
        task = Task(f"si-{n}-0", f"Describe a quiet morning in town number {n}.", False,
                    (Instance("", f"The bakery opened its shutters, town {n}."),))  # fmt: skip
        db.execute(
            "INSERT INTO instructions (id, instruction, status, is_classification, instances, "
            "request_no, created, finished, accept_no) VALUES (?, ?, 'accepted', 0, ?, ?, 1, 2, ?)",
            (task.id, task.instruction, json.dumps([asdict(task.instances[0])]), n, n + 1),
        )  # fmt: skip
        lines.append(task_line(task) + "\n")
    db.commit()
    db.close()
    (out / "tasks.jsonl").write_text("".join(lines))
    config = Config(run=RunConfig(out=str(out)),
                    endpoints=(EndpointConfig(base_url=base_url, model=model),))  # fmt: skip
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    return [f"si-{n}-0" for n in range(tasks)]


def test_a_version_1_checkpoint_is_upgraded_in_place_and_resumes(
    tmp_path: Path, base_url: str
) -> None:
    out = tmp_path / "run"
    old_ids = make_v1_run(out, base_url, model="sim")
    status = selfinstruct("status", str(out), "--json")  # read-only: nothing upgraded
    assert status.returncode == 0, status.stderr[-2000:]
    assert json.loads(status.stdout)["tasks"]["accepted"] == 3
    resumed = selfinstruct(*cli_run(out, base_url, "--model", "sim", target=6))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ids = [t.id for t in committed(out)]
    assert ids[:3] == old_ids and len(ids) >= 6
    assert sorted(jsonl_ids(out)) == sorted(ids)
    db = sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    db.close()
    history = sessions(out)
    assert history[0]["provenance"]["recorded_from"] == "config.json"
    assert history[0]["tasks_added"] == 3
    # What made the version 1 tasks binds the run like any recorded session.
    refused = selfinstruct(*cli_run(out, base_url, "--model", "b", target=9))
    assert_one_line_error(refused, "was generated with model 'sim'")

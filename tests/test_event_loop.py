"""``run.event_loop``: the CLI's run on uvloop (the ``fast`` extra), or a clear error without it."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from selfinstruct_async import cli
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.simulator.process import simulator_process
from tests.test_signals import command, forever_run, wait_for_line, wait_until_requests_in_flight

ROOT = Path(__file__).resolve().parent.parent


UVLOOP = {"SELFINSTRUCT_RUN_EVENT_LOOP": "uvloop"}


def test_the_stdlib_loop_needs_no_backend_options() -> None:
    assert cli.loop_options("asyncio") == {}


def test_uvloop_without_the_package_is_an_error_naming_the_setting_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "uvloop" else real_find_spec(name, *a),
    )
    with pytest.raises(ConfigError, match=r"run\.event_loop.*selfinstruct-async\[fast\]"):
        cli.loop_options("uvloop")
    monkeypatch.setenv("SELFINSTRUCT_RUN_EVENT_LOOP", "uvloop")
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert cli.main([*argv, "--target", "1"]) != 0
    assert "run.event_loop" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_a_run_on_uvloop_reaches_its_target_on_the_uvloop_loop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    out = tmp_path / "run"
    with simulator_process() as base_url:
        done = subprocess.run(
            command(out, base_url, 6), capture_output=True, text=True,
            env={**os.environ, **UVLOOP}, cwd=ROOT, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "event loop: uvloop" in done.stderr  # read off the running loop, not the setting
    tasks = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == 6 and all(task["instances"] for task in tasks)


@pytest.mark.slow
def test_sigterm_on_uvloop_drains_and_a_resume_reaches_the_target(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    out = tmp_path / "run"
    with (
        simulator_process("--latency", "0.05") as base_url,
        forever_run(out, base_url, UVLOOP) as process,
    ):
        wait_for_line(process, "event loop: uvloop")  # the loop runs: signals are handled
        wait_until_requests_in_flight(process)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
        assert process.returncode == 0, rest[-2000:]
        assert "SIGTERM" in rest
        stopped_at = len((out / "tasks.jsonl").read_text().splitlines())
        done = subprocess.run(
            command(out, base_url, stopped_at + 3), capture_output=True, text=True,
            env={**os.environ, **UVLOOP}, cwd=ROOT, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert len(ids) == stopped_at + 3 == len(set(ids))

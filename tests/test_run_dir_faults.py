"""The run directory under a hostile week (issue 18, items 2, 5 and 8; 6 is test_sessions.py).

* ``tasks.jsonl`` edited between runs (a blank line, a ``jq -c`` rewrite, lines added by
  hand, a repeated line) is reconciled with the checkpoint by task id on reopen: every
  committed task exactly once, other lines kept with a warning, ``export`` in step;
* ``export``, ``dedup`` and ``report`` refuse to write over a run directory's own files
  (or over dedup's input), however the path is spelt;
* a full disk (a real tmpfs), ``.lock`` being a directory, a read-only destination and
  ``--classification-only`` without classification seeds each end in one line.

Real files, real processes: the CLI in a subprocess against the simulator in its own
process, real tmpfs and read-only bind mounts in a private mount namespace.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.errors import CheckpointError, ConfigError
from selfinstruct_async.outputs.export import ExportOptions, export_run
from selfinstruct_async.seeds import DEFAULT_SEEDS
from tests.test_faults import (
    ROOT,
    assert_one_line_error,
    env,
    jsonl_ids,
    make_run_dir,
    needs_mount,
    on_read_only_fs,
    selfinstruct,
    snapshot_files,
)


def cli_run(out: Path, base_url: str, *extra: str, target: int = 5) -> list[str]:
    return ["run", "--out", str(out), "--base-url", base_url, "--target", str(target),
            "--no-progress", *extra]  # fmt: skip


def committed(out: Path) -> list[Any]:
    with Store(out, read_only=True) as store:
        return store.accepted_tasks()


def export_rows(out: Path, dest: Path) -> int:
    return export_run(out, dest, ExportOptions("hf-jsonl")).rows


# --------------------------------------------------------------- item 2: tasks.jsonl edited


def compact(text: str) -> str:
    """What ``jq -c . tasks.jsonl`` writes: the same objects without spaces."""
    return "".join(
        json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False) + "\n"
        for line in text.splitlines()
    )


FOREIGN_TASK = json.dumps(
    {"id": "mine-1", "instruction": "Written by hand.", "is_classification": False,
     "instances": [{"input": "", "output": "kept"}]}
)  # fmt: skip

# name: (edit of the file's text, the repair warning expected on reopen or None)
EDITS: dict[str, tuple[Callable[[str], str], str | None]] = {
    "blank line": (lambda text: text + "\n", "removed 1 blank line (line 11)"),
    "jq -c rewrite": (compact, None),
    "hand-written line": (
        lambda text: text + "remember to check task 3\n",
        "1 line that is not a task (line 11, kept)",
    ),
    "hand-written task": (
        lambda text: text + FOREIGN_TASK + "\n",
        "1 line not in the checkpoint (line 11, kept)",
    ),
    "repeated line": (
        lambda text: text + text.splitlines(keepends=True)[3],
        "removed 1 duplicate line of committed tasks (line 11)",
    ),
    "what the old repair left": (
        lambda text: compact(text) + text,
        "removed 10 duplicate lines of committed tasks (lines 11, 12, 13, 14, 15 and 5 more)",
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_tasks_jsonl_keeps_every_committed_task_exactly_once_on_reopen(
    tmp_path: Path, edit: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = make_run_dir(tmp_path / "run", tasks=10)
    tasks = committed(out)
    path = out / "tasks.jsonl"
    change, warning = EDITS[edit]
    path.write_text(change(path.read_text()))
    edited = path.read_text()
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        Store(out).close()
    repaired = path.read_text()
    ids = Counter(jsonl_ids(out))
    assert all(ids[t.id] == 1 for t in tasks), ids
    if warning is None:
        assert repaired == edited and not caplog.records
    else:
        assert f"tasks.jsonl: {warning}" in caplog.text
    for kept in ("remember to check task 3", FOREIGN_TASK):  # the user's lines stay
        assert repaired.count(kept) == edited.count(kept)
    foreign = 1 if edit == "hand-written task" else 0
    assert export_rows(out, tmp_path / "x.jsonl") == sum(len(t.instances) for t in tasks) + foreign
    Store(out).close()  # a second reopen finds nothing more to do
    assert path.read_text() == repaired


def test_the_repair_says_what_it_found_and_appends_only_what_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = make_run_dir(tmp_path / "run", tasks=10)
    path = out / "tasks.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:7]) + "\n" + FOREIGN_TASK + "\n")
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        Store(out).close()
    assert caplog.messages == [
        f"{path}: removed 1 blank line (line 8), 1 line not in the checkpoint (line 9, kept), "
        "appended 3 committed tasks that were missing"
    ]
    assert jsonl_ids(out) == [f"t{n}" for n in range(7)] + ["mine-1", "t7", "t8", "t9"]


def test_a_last_task_line_without_its_newline_is_ended_not_dropped(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=4)
    path = out / "tasks.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    Store(out).close()
    assert jsonl_ids(out) == ["t0", "t1", "t2", "t3"]
    assert path.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize("edit", ["blank line", "jq -c rewrite", "what the old repair left"])
def test_a_resume_after_editing_tasks_jsonl_writes_no_duplicate(
    tmp_path: Path, base_url: str, edit: str
) -> None:
    out = tmp_path / "run"
    first = selfinstruct(*cli_run(out, base_url, "--model", "sim", target=10))
    assert first.returncode == 0, first.stderr[-2000:]
    path = out / "tasks.jsonl"
    path.write_text(EDITS[edit][0](path.read_text()))
    resumed = selfinstruct(*cli_run(out, base_url, "--model", "sim", target=12))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    tasks = committed(out)
    assert len(tasks) >= 12
    ids = jsonl_ids(out)
    assert "<torn>" not in ids and len(ids) == len(set(ids))
    assert sorted(ids) == sorted(t.id for t in tasks)
    exported = selfinstruct("export", str(out), "--format", "hf-jsonl", "--out",
                            str(tmp_path / "train.jsonl"))  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(t.instances) for t in tasks)
    assert len({r["id"] for r in rows}) == len(rows)


def test_export_skips_blank_foreign_and_repeated_lines_naming_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5)
    tasks = committed(out)
    path = out / "tasks.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # Edited behind the run's back, and not reopened since: export must cope on its own.
    path.write_text("".join(lines) + "\n" + "notes\n" + compact(lines[1]))
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        result = export_run(out, tmp_path / "a.jsonl", ExportOptions("hf-jsonl"))
    assert result.rows == sum(len(t.instances) for t in tasks)
    assert result.tasks_read == 5
    assert f"{path}:6: blank line; line skipped" in caplog.messages
    assert any(m.startswith(f"{path}:7: invalid JSON") for m in caplog.messages)
    assert f"{path}:8: task 't1' again (an earlier line has it); line skipped" in caplog.messages


# --------------------------------------------------------------- item 5: outputs over the run

RUN_FILE_NAMES = ["checkpoint.sqlite", "checkpoint.sqlite-wal", "checkpoint.sqlite-shm",
                  "tasks.jsonl", "config.json", "summary.json", ".lock"]  # fmt: skip


@pytest.mark.parametrize("name", RUN_FILE_NAMES)
def test_export_refuses_every_file_of_a_run_directory(tmp_path: Path, name: str) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    before = snapshot_files(out)
    message = f"--out {out / name} is a file of the run directory {out}; write the export elsewhere"
    with pytest.raises(ConfigError) as raised:
        export_run(out, out / name, ExportOptions("alpaca"))
    assert str(raised.value) == message
    assert snapshot_files(out) == before


def test_export_over_the_checkpoint_is_one_line_and_destroys_nothing(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    before = snapshot_files(out)
    result = selfinstruct("export", str(out), "--format", "alpaca", "--out",
                          str(out / "checkpoint.sqlite"))  # fmt: skip
    assert_one_line_error(
        result,
        f"selfinstruct: error: --out {out}/checkpoint.sqlite is a file of the run directory "
        f"{out}; write the export elsewhere",
    )
    assert snapshot_files(out) == before
    assert [t.id for t in committed(out)] == ["t0", "t1", "t2"]


def test_symlinks_dot_dot_and_other_run_directories_do_not_get_around_the_rule(
    tmp_path: Path,
) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    other = make_run_dir(tmp_path / "other", tasks=2)
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    (tmp_path / "alias.jsonl").symlink_to(out / "tasks.jsonl")
    before = {d: snapshot_files(d) for d in (out, other)}
    for dest in (
        tmp_path / "link" / "tasks.jsonl",
        tmp_path / "alias.jsonl",
        out / ".." / "run" / "checkpoint.sqlite",
        other / "tasks.jsonl",
    ):
        with pytest.raises(ConfigError, match="is a file of the run directory"):
            export_run(out, dest, ExportOptions("alpaca"))
    assert {d: snapshot_files(d) for d in (out, other)} == before
    # A tasks.jsonl with no checkpoint beside it belongs to no run: writing it is fine.
    (tmp_path / "plain").mkdir()
    assert export_run(out, tmp_path / "plain" / "tasks.jsonl", ExportOptions("alpaca")).rows == 3


def test_dedup_refuses_a_run_file_and_its_own_input(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    before = snapshot_files(out)
    tasks = str(out / "tasks.jsonl")
    result = selfinstruct("dedup", tasks, "--out", tasks)
    assert_one_line_error(
        result, f"--out {tasks} is a file of the run directory {out}; write the result elsewhere"
    )
    assert snapshot_files(out) == before
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"instruction": "Say hello."}\n{"instruction": "Say hello!"}\n')
    result = selfinstruct("dedup", str(mine), "--out", str(tmp_path / "." / "mine.jsonl"))
    assert_one_line_error(result, f"is the input file {mine}; write the result to another file")
    assert mine.read_text().count("instruction") == 2


def test_report_refuses_a_run_file_and_may_sit_beside_the_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = make_run_dir(tmp_path / "run", tasks=3)
    before = snapshot_files(out)
    result = selfinstruct("report", str(out), "--out", str(out / "checkpoint.sqlite"))
    assert_one_line_error(result, "is a file of the run directory")
    result = selfinstruct("report", str(out), "--out", str(out / "tasks.jsonl"))
    assert_one_line_error(result, "write the report elsewhere")
    result = selfinstruct("report", str(out), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "report.html").is_file()
    assert snapshot_files(out) == before


# --------------------------------------------------------------- item 8: one line, not a traceback


def _can_mount_tmpfs() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
         "-o", "size=64k", "tmpfs", "/mnt"],
        capture_output=True, text=True,
    )  # fmt: skip
    return None if probe.returncode == 0 else f"cannot mount a tmpfs: {probe.stderr.strip()}"


needs_tmpfs = pytest.mark.skipif((why := _can_mount_tmpfs()) is not None, reason=why or "")

# Runs in a private mount namespace: a tmpfs of SIZE at MOUNT, `selfinstruct run` into it
# while it is full (twice: the run, then a resume), then again once it has room.
TMPFS_CHILD = textwrap.dedent(
    """
    import json, sqlite3, subprocess, sys
    from pathlib import Path

    mount, size, base_url = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    out = mount / "run"

    def attempt(target):
        done = subprocess.run(
            [sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out), "--base-url",
             base_url, "--model", "sim", "--target", str(target), "--no-progress"],
            capture_output=True, text=True, timeout=300,
        )
        files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        return {"returncode": done.returncode, "stderr": done.stderr, "files": files}

    tries = [attempt(200), attempt(200)]
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
    tries.append(attempt(30))
    lines = (out / "tasks.jsonl").read_text().splitlines()
    db = sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True)
    ids = [r[0] for r in db.execute("SELECT id FROM instructions WHERE status = 'accepted'")]
    print(json.dumps({"tries": tries, "jsonl": [json.loads(l)["id"] for l in lines],
                      "committed": ids}))
    """
)


@needs_tmpfs
@pytest.mark.parametrize("size", ["64k", "200k", "500k"])
def test_a_full_disk_is_one_line_on_every_try_and_leaves_no_tmp_files(
    tmp_path: Path, base_url: str, size: str
) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    child = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", TMPFS_CHILD,
         str(mount), size, base_url],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.splitlines()[-1])
    *full, roomy = found["tries"]
    for attempt in full:
        result = subprocess.CompletedProcess([], attempt["returncode"], "", attempt["stderr"])
        # Whichever write hits the limit first (checkpoint, tasks.jsonl, config.json...).
        assert_one_line_error(result, "selfinstruct: error: ")
        assert "disk is full" in result.stderr or "No space left" in result.stderr, result.stderr
        assert not [name for name in attempt["files"] if name.endswith(".tmp")], attempt["files"]
    assert roomy["returncode"] == 0, roomy["stderr"][-2000:]
    assert not [name for name in roomy["files"] if name.endswith(".tmp")]
    assert len(found["jsonl"]) == len(set(found["jsonl"])) >= 30
    assert sorted(found["jsonl"]) == sorted(found["committed"])


def test_a_lock_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=2)
    (out / ".lock").unlink()
    (out / ".lock").mkdir()
    before = snapshot_files(out)
    with pytest.raises(CheckpointError, match=r"\.lock: cannot open the run's lock file"):
        Store(out)
    result = selfinstruct("run", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1",
                          "--model", "sim", "--target", "5")  # fmt: skip
    assert_one_line_error(result, f"{out}/.lock: cannot open the run's lock file (Is a directory)")
    assert snapshot_files(out) == before


@needs_mount
def test_export_to_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    dest = tmp_path / "archive"
    dest.mkdir()
    result = on_read_only_fs(dest, "export", str(out), "--format", "alpaca", "--out",
                             str(dest / "a.json"))  # fmt: skip
    assert_one_line_error(result, f"{dest}/a.json: cannot write the export (Read-only file system)")
    assert list(dest.iterdir()) == []


@needs_mount
def test_report_to_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = make_run_dir(tmp_path / "run", tasks=3)
    dest = tmp_path / "archive"
    dest.mkdir()
    result = on_read_only_fs(dest, "report", str(out), "--out", str(dest / "report"))
    assert_one_line_error(result, f"{dest}/report: cannot write the report (Read-only file system)")
    assert list(dest.iterdir()) == []


def test_classification_only_without_classification_seeds_is_refused_before_the_run_dir(
    tmp_path: Path,
) -> None:
    seeds = tmp_path / "seeds.jsonl"
    with open(DEFAULT_SEEDS, encoding="utf-8") as f:
        plain = [line for line in f if '"is_classification": false' in line][:12]
    seeds.write_text("".join(plain))
    out = tmp_path / "run"
    result = selfinstruct("run", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1",
                          "--model", "sim", "--seeds", str(seeds),
                          "--classification-only")  # fmt: skip
    assert_one_line_error(
        result,
        f"generation.classification_only: the seeds in {seeds} hold no classification task",
    )
    assert not out.exists()


def test_write_json_atomic_failure_is_a_checkpoint_error_and_leaves_no_tmp(tmp_path: Path) -> None:
    from selfinstruct_async.run.runner import _write_json_atomic

    blocked = tmp_path / "config.json"
    blocked.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(CheckpointError, match=r"config\.json: cannot write"):
        _write_json_atomic(blocked, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]

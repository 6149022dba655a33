"""Faults outside the API: unwritable or missing directories, a full disk, foreign or corrupt
checkpoints, a second process. Each must end in a clear message with existing data intact.

Real files, real permissions, real processes: read-only file systems are real read-only bind
mounts in a private mount namespace (we run as root, and ``chmod`` does not stop root),
immutable files use ``chattr +i``, a full disk is a real ``RLIMIT_FSIZE`` (``EFBIG``) in a
child process or SQLite's own ``max_page_count`` (``SQLITE_FULL``). Tests that need a
capability the machine lacks skip with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.schema import SCHEMA_VERSION
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, PendingTask, Task
from selfinstruct_async.simulator.process import simulator_process

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9/v1"  # the checkpoint is opened before any request


def env() -> dict[str, str]:
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environ.pop("OPENAI_API_KEY", None)
    # Until the similarity plugin lands, a run cannot load it; these faults do not involve it.
    if importlib.util.find_spec("selfinstruct_plugins.similarity") is None:
        environ["SELFINSTRUCT_PLUGINS_DISABLED"] = "similarity"
    return environ


def selfinstruct(
    *args: str, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfinstruct_async", *args],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=timeout, **kwargs,
    )  # fmt: skip


def run_args(out: Path, base_url: str = UNREACHABLE, target: int = 5) -> list[str]:
    return ["run", "--out", str(out), "--base-url", base_url, "--model", "sim",
            "--target", str(target)]  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("selfinstruct: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def accept(store: Store, n: int, size: int = 50) -> Task:
    task = Task(f"t{n}", f"Instruction number {n}", n % 2 == 0, (Instance("in", "x" * size),))
    store.add_pending(PendingTask(task.id, task.instruction), request_no=n)
    store.finish_task(task.id, task, [], {"tasks.accepted": 1})
    return task


def make_run_dir(path: Path, tasks: int = 5, size: int = 50) -> Path:
    with Store(path) as store:
        for n in range(tasks):
            accept(store, n, size)
    return path


def snapshot_files(path: Path) -> dict[str, bytes]:
    """Bytes of the files a user cares about (the lock and SQLite's -shm are scratch)."""
    return {
        p.name: p.read_bytes()
        for p in sorted(path.iterdir())
        if p.name in {"checkpoint.sqlite", "tasks.jsonl", "config.json", "summary.json"}
    }


def jsonl_ids(path: Path) -> list[str]:
    """Ids in tasks.jsonl; a line that does not parse counts as ``"<torn>"``."""
    ids = []
    for line in (path / "tasks.jsonl").read_bytes().splitlines():
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            ids.append("<torn>")
    return ids


def assert_consistent(path: Path, expected_ids: list[str]) -> None:
    """Every committed task exactly once in both the checkpoint and tasks.jsonl, in order."""
    with Store(path) as store:  # opening repairs tasks.jsonl
        committed = [t.id for t in store.accepted_tasks()]
    lines = [json.loads(line)["id"] for line in (path / "tasks.jsonl").read_text().splitlines()]
    assert committed == expected_ids
    assert lines == expected_ids


# --------------------------------------------------------------- read-only or missing output


def _can_mount_privately() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp"],
        capture_output=True, text=True,
    )  # fmt: skip
    return None if probe.returncode == 0 else f"cannot mount read-only: {probe.stderr.strip()}"


needs_mount = pytest.mark.skipif(
    (reason := _can_mount_privately()) is not None, reason=reason or ""
)


def on_read_only_fs(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``selfinstruct ARGS`` with ``directory`` a read-only mount, in a private namespace."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         str(directory), sys.executable, "-m", "selfinstruct_async", *args],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120,
    )  # fmt: skip


@needs_mount
def test_run_on_a_read_only_file_system_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run")
    before = snapshot_files(out)
    result = on_read_only_fs(out, *run_args(out))
    assert_one_line_error(result, f"{out}: run directory is not writable")
    assert snapshot_files(out) == before


@needs_mount
def test_new_run_directory_under_a_read_only_parent_fails_clearly(tmp_path: Path) -> None:
    parent = tmp_path / "archive"
    parent.mkdir()
    result = on_read_only_fs(parent, *run_args(parent / "run"))
    assert_one_line_error(result, "cannot create run directory (Read-only file system)")
    assert list(parent.iterdir()) == []


@needs_mount
def test_status_reads_a_run_directory_on_a_read_only_file_system(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    result = on_read_only_fs(out, "status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"]["accepted"] == 3


def test_run_directory_inside_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a directory\n")
    result = selfinstruct(*run_args(blocker / "run"))
    assert_one_line_error(result, "cannot create run directory (Not a directory)")
    assert blocker.read_text() == "not a directory\n"


def test_run_directory_that_is_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("keep me\n")
    with pytest.raises(CheckpointError, match="cannot create run directory"):
        Store(blocker)
    assert blocker.read_text() == "keep me\n"


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "run"
    with Store(out) as store:
        accept(store, 0)
    assert_consistent(out, ["t0"])


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: even root cannot write, create or delete there."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_immutable_run_directory_is_refused_and_left_intact(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run")
    before = snapshot_files(out)
    with immutable(out), pytest.raises(CheckpointError, match="run directory is not writable"):
        Store(out)
    assert snapshot_files(out) == before


def test_unwritable_tasks_jsonl_is_a_checkpoint_error_naming_the_file(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run")
    before = snapshot_files(out)
    with immutable(out / "tasks.jsonl"), pytest.raises(CheckpointError, match=r"tasks\.jsonl"):
        Store(out)
    assert snapshot_files(out) == before


# --------------------------------------------------------------- disk full

# Runs in a child: RLIMIT_FSIZE and an ignored SIGXFSZ make writes past the limit fail with
# EFBIG, as on a full disk, without touching the test process. Prints what happened as JSON.
FILE_SIZE_LIMIT_CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from pathlib import Path
    from selfinstruct_async.records import Instance, PendingTask, Task
    from selfinstruct_async.checkpoint.store import Store

    out, which, slack = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = Store(out)
    if which == "jsonl":
        # Empty the WAL so only tasks.jsonl is near the limit; the commit itself fits.
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        limit = (out / "tasks.jsonl").stat().st_size + slack
    else:
        limit = os.path.getsize(out / "checkpoint.sqlite-wal") + slack
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    attempted = []
    try:
        for n in range(5, 500):
            attempted.append(f"t{n}")
            task = Task(f"t{n}", f"Instruction number {n}", False, (Instance("in", "y" * 3000),))
            store.add_pending(PendingTask(task.id, task.instruction), request_no=n)
            store.finish_task(task.id, task, [], {"tasks.accepted": 1})
        result = {"error": None}
    except BaseException as error:
        result = {"error": type(error).__name__, "message": str(error)}
    result["attempted"] = attempted
    print(json.dumps(result))
    """
)


def write_with_file_size_limit(out: Path, which: str, slack: int) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT_CHILD, str(out), which, str(slack)],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    result: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    assert result["error"] is not None, "the file size limit was never reached"
    return result


def committed_ids(out: Path) -> list[str]:
    db = sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id FROM instructions WHERE status = 'accepted' ORDER BY seq")
        return [r[0] for r in rows]
    finally:
        db.close()


def test_tasks_jsonl_hitting_a_full_disk_is_repaired_on_reopen(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5, size=20_000)
    result = write_with_file_size_limit(out, "jsonl", slack=100)
    # The task was committed to SQLite before its line hit the limit.
    assert result["attempted"] == ["t5"]
    assert committed_ids(out)[-1] == "t5"
    assert "t5" not in jsonl_ids(out)
    assert_consistent(out, [f"t{n}" for n in range(6)])


def test_tasks_jsonl_hitting_a_full_disk_is_a_checkpoint_error(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5, size=20_000)
    result = write_with_file_size_limit(out, "jsonl", slack=100)
    assert result["error"] == "CheckpointError", result
    assert "tasks.jsonl" in result["message"] and "File too large" in result["message"]
    # A failed append leaves no torn line behind it: later appends cannot bury one.
    for line in (out / "tasks.jsonl").read_bytes().splitlines():
        json.loads(line)


def test_checkpoint_hitting_a_full_disk_keeps_every_earlier_commit(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5)
    result = write_with_file_size_limit(out, "wal", slack=64 * 1024)
    expected = [f"t{n}" for n in range(5)] + result["attempted"][:-1]
    assert len(expected) > 5  # some commits fitted before the limit
    assert_consistent(out, expected)


def test_checkpoint_hitting_a_full_disk_is_a_checkpoint_error(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5)
    result = write_with_file_size_limit(out, "wal", slack=64 * 1024)
    assert result["error"] == "CheckpointError", result
    assert "checkpoint.sqlite" in result["message"]


def fill_sqlite(out: Path) -> tuple[list[str], BaseException]:
    """Commit until SQLite reports SQLITE_FULL (``max_page_count``); return what committed."""
    store = Store(out)
    try:
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages + 2}")
        done = [t.id for t in store.accepted_tasks()]
        try:
            for n in range(len(done), 1000):
                accept(store, n, size=2000)
                done.append(f"t{n}")
        except Exception as error:
            return done, error
        raise AssertionError("max_page_count was never reached")
    finally:
        store.close()


def test_sqlite_full_keeps_every_earlier_commit_exactly_once(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    done, _ = fill_sqlite(out)
    assert len(done) >= 3
    assert_consistent(out, done)
    with Store(out) as store:  # and the run goes on once there is room again
        accept(store, 999)
    assert_consistent(out, [*done, "t999"])


def test_sqlite_full_is_a_checkpoint_error_saying_the_disk_is_full(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=3)
    _, error = fill_sqlite(out)
    assert isinstance(error, CheckpointError)
    assert "database or disk is full" in str(error)


# A whole `selfinstruct run` against the simulator under a file size limit: whatever write
# hits the limit first, the command must end with one clear line and resume cleanly.
@pytest.fixture(scope="module")
def disk_full_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("diskfull") / "run"

    def limit_file_size() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))

    with simulator_process() as base_url:
        first = selfinstruct(*run_args(out, base_url, target=5))
        assert first.returncode == 0, first.stderr[-2000:]
        full = selfinstruct(*run_args(out, base_url, target=400), preexec_fn=limit_file_size)
        resumed = selfinstruct(*run_args(out, base_url, target=30))
    yield {
        "full": full,
        "resumed": resumed,
        "jsonl": jsonl_ids(out),
        "committed": committed_ids(out),
    }


def test_a_run_stopped_by_a_full_disk_resumes_without_duplicates(
    disk_full_run: dict[str, Any],
) -> None:
    full, resumed = disk_full_run["full"], disk_full_run["resumed"]
    jsonl, committed = disk_full_run["jsonl"], disk_full_run["committed"]
    assert full.returncode != 0, "the file size limit was never reached"
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(committed) >= 30
    assert "<torn>" not in jsonl
    assert len(jsonl) == len(set(jsonl))
    assert sorted(jsonl) == sorted(committed)


def test_a_run_stopped_by_a_full_disk_says_so_in_one_line(disk_full_run: dict[str, Any]) -> None:
    assert_one_line_error(disk_full_run["full"], "checkpoint")


# --------------------------------------------------------------- schema versions


@pytest.mark.parametrize(("version", "which"), [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
def test_checkpoint_from_another_schema_version_is_refused_by_run_and_status(
    tmp_path: Path, version: int, which: str
) -> None:
    out = make_run_dir(tmp_path / "run")
    with Store(out) as store:
        store.set_meta("schema_version", version)
    before = snapshot_files(out)
    message = f"checkpoint schema version {version} is from {'a' if which == 'newer' else 'an'}"
    assert_one_line_error(selfinstruct(*run_args(out)), f"{message} {which} selfinstruct-async")
    assert_one_line_error(selfinstruct("status", str(out)), message)
    assert snapshot_files(out) == before


# --------------------------------------------------------------- a second live process


def test_a_second_run_on_a_directory_in_use_exits_1_and_leaves_the_first_running(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    with simulator_process() as base_url:
        first_run = selfinstruct(*run_args(out, base_url, target=3))
        assert first_run.returncode == 0, first_run.stderr[-2000:]
        forever = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct_async", *run_args(out, base_url, target=0)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT,
        )  # fmt: skip
        try:
            assert forever.stderr is not None
            # It logs "resuming" once it holds the lock and has read the checkpoint.
            for line in forever.stderr:
                if "resuming" in line:
                    break
            else:
                pytest.fail(f"the first run ended early: exit {forever.wait()}")
            second = selfinstruct(*run_args(out, base_url, target=0))
            assert_one_line_error(second, "used by another running selfinstruct process")
            assert (out / ".lock").read_text() == str(forever.pid)
            assert forever.poll() is None  # the first run is untouched
            forever.send_signal(signal.SIGTERM)
            summary, rest = forever.communicate(timeout=60)
        finally:
            if forever.poll() is None:
                forever.kill()
                forever.wait()
    assert forever.returncode == 0, rest[-2000:]
    assert summary.startswith("stopped by SIGTERM"), summary
    ids = jsonl_ids(out)
    assert len(ids) >= 3 and "<torn>" not in ids


# --------------------------------------------------------------- corrupt checkpoints


def _garbage_header(data: bytes) -> bytes:
    return os.urandom(100) + data[100:]


def _garbage_pages(data: bytes) -> bytes:
    return data[:4096] + bytes(range(256)) * ((len(data) - 4096) // 256 + 1)


def _truncated_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _truncated_header(data: bytes) -> bytes:
    return data[:50]


@pytest.mark.parametrize(
    "corrupt", [_garbage_header, _garbage_pages, _truncated_half, _truncated_header]
)
def test_corrupt_checkpoint_is_refused_and_left_as_it_was(tmp_path: Path, corrupt: Any) -> None:
    out = make_run_dir(tmp_path / "run", tasks=20, size=3000)
    db = out / "checkpoint.sqlite"
    db.write_bytes(corrupt(db.read_bytes()))
    before = snapshot_files(out)
    for read_only in (False, True):
        with pytest.raises(CheckpointError, match=r"checkpoint\.sqlite: not a usable checkpoint"):
            Store(out, read_only=read_only)
    assert snapshot_files(out) == before


def test_corrupt_checkpoint_stops_run_and_status_with_one_line(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=20, size=3000)
    db = out / "checkpoint.sqlite"
    db.write_bytes(_truncated_half(db.read_bytes()))
    before = snapshot_files(out)
    assert_one_line_error(selfinstruct(*run_args(out)), "not a usable checkpoint")
    assert_one_line_error(selfinstruct("status", str(out)), "not a usable checkpoint")
    assert snapshot_files(out) == before


def test_garbage_in_the_write_ahead_log_is_ignored_and_commits_survive(tmp_path: Path) -> None:
    out = make_run_dir(tmp_path / "run", tasks=4)
    (out / "checkpoint.sqlite-wal").write_bytes(os.urandom(20_000))
    assert_consistent(out, ["t0", "t1", "t2", "t3"])


@pytest.mark.parametrize("lost", ["emptied", "deleted"])
def test_lost_checkpoint_beside_existing_tasks_is_refused(tmp_path: Path, lost: str) -> None:
    out = make_run_dir(tmp_path / "run", tasks=5)
    db = out / "checkpoint.sqlite"
    if lost == "emptied":
        db.write_bytes(b"")
    else:
        db.unlink()
    jsonl = (out / "tasks.jsonl").read_bytes()
    with pytest.raises(CheckpointError, match=r"tasks\.jsonl"):
        Store(out)
    assert (out / "tasks.jsonl").read_bytes() == jsonl
    assert not db.exists() or db.stat().st_size == 0


# --------------------------------------------------------------- crash repair and task order


def finish_out_of_order(out: Path) -> None:
    """Tasks finish in another order than they entered the checkpoint (concurrent workers)."""
    with Store(out) as store:
        for n in range(3):
            store.add_pending(PendingTask(f"t{n}", f"Instruction {n}"), request_no=n)
        for n in (0, 2, 1):
            task = Task(f"t{n}", f"Instruction {n}", False, (Instance("a", "b"),))
            store.finish_task(task.id, task, [], {"tasks.accepted": 1})


def test_reopening_after_out_of_order_acceptance_duplicates_nothing(tmp_path: Path) -> None:
    finish_out_of_order(tmp_path)
    assert jsonl_ids(tmp_path) == ["t0", "t2", "t1"]
    with Store(tmp_path):
        pass
    assert jsonl_ids(tmp_path) == ["t0", "t2", "t1"]


def test_a_lost_last_line_is_rewritten_even_when_tasks_finished_out_of_order(
    tmp_path: Path,
) -> None:
    finish_out_of_order(tmp_path)
    path = tmp_path / "tasks.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 5])  # kill -9 inside t1's line
    with Store(tmp_path) as store:
        assert [t.id for t in store.accepted_tasks()] == ["t0", "t2", "t1"]
    assert jsonl_ids(tmp_path) == ["t0", "t2", "t1"]


# --------------------------------------------------------------- the exception tree


def _error_classes(path: Path, known: set[str]) -> list[str]:
    """Classes in ``path`` deriving (directly) from one of the ``known`` error classes."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if bases & known:
                found.append(node.name)
    return found


def test_every_error_the_package_raises_on_purpose_is_in_the_tree_in_errors_py() -> None:
    from selfinstruct_async import errors

    tree = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.SelfInstructError)
    }
    assert {"OutputError", "ExportError", "StatsError", "ReportError"} <= tree
    assert {"DedupInputError", "EmptyTokensError"} <= tree
    drawn = errors.__doc__ or ""
    assert drawn.startswith("Every exception") and "\nSelfInstructError\n" in drawn
    assert [
        name for name in sorted(tree - {"SelfInstructError"}) if f"── {name} " not in drawn
    ] == []
    sources = [*(ROOT / "selfinstruct_async").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    elsewhere = {
        str(path.relative_to(ROOT)): names
        for path in sources
        if path.name != "errors.py" or path.parent.name != "selfinstruct_async"
        if (names := _error_classes(path, tree))
    }
    assert elsewhere == {}

"""``tasks.jsonl`` has one owner, :mod:`selfinstruct_async.checkpoint.tasks_file` (issue 13.3).

The line the store writes is the line export, stats and report read; a line that is not a
task comes back as a typed :class:`BadTaskLine` naming file, line and field; the fast
identity used by the repair on open accepts exactly the lines the parser accepts; the
reader skips what is not a task and says so; the writer's repair keeps every committed task
once. And nothing in ``checkpoint/`` imports from ``outputs/`` (the data flows the other
way). Real files throughout; the store is the real :class:`Store`.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest

from selfinstruct_async.checkpoint import tasks_file
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.checkpoint.tasks_file import (
    BadTaskLine,
    TasksReader,
    TasksWriter,
    parse_task_line,
    task_identity,
    task_line,
)
from selfinstruct_async.errors import CheckpointError
from selfinstruct_async.records import Instance, Task
from tests.test_faults import accept
from tests.test_stats import make_tasks

PACKAGE = Path(tasks_file.__file__).resolve().parents[1]

ODD_TASKS = [
    Task("t-0", "Translate to French: \u00ab\u00a0bonjour\u00a0\u00bb", False, ()),
    Task("t-1", "\u5199\u4e00\u9996\u8bd7", True, (Instance("", "\u8bd7"),)),
    Task("t-2", 'Quote "this"\nand a newline', False, (Instance("a\tb", "c\\d"),) * 2),
]

# (line, the field or problem its BadTaskLine names)
BAD_LINES = [
    (b"{not json\n", "invalid JSON"),
    (b"[1, 2]\n", "expected a JSON object, got list"),
    (b'{"id": "x", "instruction": "i", "is_classification": false}\n',
     "field 'instances': missing"),
    (b'{"id": 7, "instruction": "i", "is_classification": false, "instances": []}\n',
     "field 'id': expected str, got int"),
    (b'{"id": "x", "instruction": "i", "is_classification": 1, "instances": []}\n',
     "field 'is_classification': expected bool, got int"),
    (b'{"id": "x", "instruction": "i", "is_classification": true, "instances": ["a"]}\n',
     "field 'instances[0]': expected an object"),
    (b'{"id": "x", "instruction": "i", "is_classification": true, '
     b'"instances": [{"input": "", "output": "o"}, {"input": ""}]}\n',
     "field 'instances[1].output': missing"),
    (b'\xff\xfe{"id": 1}\n', "invalid JSON"),
]  # fmt: skip


@pytest.mark.parametrize("task", [*ODD_TASKS, *make_tasks(20, seed=4)], ids=lambda t: t.id)
def test_a_written_line_parses_back_to_the_same_task(task: Task) -> None:
    raw = (task_line(task) + "\n").encode("utf-8")
    assert b"\n" not in raw[:-1]  # one task, one line, whatever its text holds
    assert parse_task_line(raw, "tasks.jsonl", 3) == task
    assert task_identity(json.loads(raw)) is not None


@pytest.mark.parametrize(("raw", "problem"), BAD_LINES)
def test_a_line_that_is_not_a_task_is_a_typed_failure_naming_file_line_and_field(
    raw: bytes, problem: str
) -> None:
    bad = parse_task_line(raw, "run/tasks.jsonl", 12)
    assert isinstance(bad, BadTaskLine)
    assert (bad.path, bad.line) == ("run/tasks.jsonl", 12)
    assert str(bad).startswith("run/tasks.jsonl:12: ")
    assert problem in bad.problem


@pytest.mark.parametrize("raw", [raw for raw, _ in BAD_LINES[1:-1]])
def test_the_repair_on_open_and_the_readers_agree_on_what_is_a_task(raw: bytes) -> None:
    # The scan behind the repair uses task_identity; readers use parse_task_line.
    assert task_identity(json.loads(raw)) is None


def test_identity_ignores_spacing_and_key_order_but_not_content() -> None:
    task = make_tasks(1, seed=9)[0]
    line = json.loads(task_line(task))
    reordered = json.loads(json.dumps(dict(reversed(list(line.items()))), separators=(",", ":")))
    assert task_identity(reordered) == task_identity(line)
    changed = {**line, "instruction": line["instruction"] + "!"}
    assert task_identity(changed) != task_identity(line)


def test_the_reader_gets_exactly_what_the_store_wrote(tmp_path: Path) -> None:
    with Store(tmp_path / "run") as store:
        written = [accept(store, n) for n in range(7)]
    reader = TasksReader.in_run(tmp_path / "run")
    assert list(reader) == written
    assert (reader.skipped, reader.torn_tail, reader.notes("tasks.jsonl")) == (0, False, [])


def test_the_reader_skips_blank_foreign_and_repeated_lines_naming_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = make_tasks(3, seed=2)
    lines = [task_line(t) for t in tasks]
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        f"{lines[0]}\n\n{BAD_LINES[2][0].decode()}{lines[1]}\n{lines[0]}\n{lines[2]}\n"
        '{"id": "half',
        encoding="utf-8",
    )
    reader = TasksReader(path)
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        assert list(reader) == tasks
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"{path}:2: blank line; line skipped",
        f"{path}:3: field 'instances': missing; line skipped",
        f"{path}:5: task {tasks[0].id!r} again (an earlier line has it); line skipped",
    ]
    assert reader.torn_tail and reader.skipped == 3
    assert reader.notes("tasks.jsonl") == [
        "tasks.jsonl: ignored an incomplete last line (a run is still writing)",
        "tasks.jsonl: skipped 3 lines that are not tasks or repeat one (see the warnings)",
    ]


def test_a_directory_without_tasks_jsonl_is_a_checkpoint_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such run directory"):
        TasksReader.in_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: no tasks\.jsonl here"):
        TasksReader.in_run(tmp_path / "empty")


def test_reconcile_keeps_each_committed_task_once_and_every_other_line(tmp_path: Path) -> None:
    tasks = make_tasks(5, seed=6)
    by_id = {t.id: t for t in tasks}
    path = tmp_path / "tasks.jsonl"
    # Task 0 twice, task 2 missing, a note by hand, a blank line and a torn tail.
    text = [task_line(tasks[0]), task_line(tasks[1]), "", "my note", task_line(tasks[0])]
    text += [task_line(tasks[3]), task_line(tasks[4])]
    path.write_text("\n".join(text) + '\n{"id": "tor', encoding="utf-8")
    committed = {t.id: n for n, t in enumerate(tasks, start=1)}
    asked: list[list[str]] = []

    def load(ids: list[str]) -> list[Task]:
        asked.append(ids)
        return [by_id[i] for i in ids]

    done = TasksWriter(path).reconcile(committed, load)
    assert asked == [[tasks[2].id]]
    assert "removed 1 blank line (line 3)" in done
    assert "1 line that is not a task (line 4, kept)" in done
    assert "removed 1 duplicate line of committed tasks (line 5)" in done
    assert "appended 1 committed task that was missing" in done
    got = path.read_text(encoding="utf-8").splitlines()
    assert got == [*(task_line(t) for t in (tasks[0], tasks[1])), "my note",
                   *(task_line(t) for t in (tasks[3], tasks[4], tasks[2]))]  # fmt: skip
    again = TasksWriter(path).reconcile(committed, load)
    assert again == "1 line that is not a task (line 3, kept)"
    assert len(asked) == 1  # nothing missing the second time


def _imports(path: Path) -> list[str]:
    """The modules ``path`` imports, relative ones resolved against the package."""
    package = ["selfinstruct_async", *path.parent.relative_to(PACKAGE).parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_nothing_in_checkpoint_imports_from_outputs() -> None:
    modules = sorted((PACKAGE / "checkpoint").glob("*.py"))
    assert modules, PACKAGE
    wrong = {
        p.name: name
        for p in modules
        for name in _imports(p)
        if name.startswith("selfinstruct_async.outputs")
    }
    assert wrong == {}

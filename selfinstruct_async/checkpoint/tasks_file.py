"""``tasks.jsonl``: its line format, reading it back, and keeping it in step with the checkpoint.

Everything that writes, parses or repairs a line of a run's ``tasks.jsonl`` is here:

* the line format: :func:`task_line` writes one task (the README documents it) and
  :func:`parse_task_line` reads one back as a :class:`~selfinstruct_async.records.Task`,
  or as a :class:`BadTaskLine` naming file, line and field; :func:`task_identity` applies
  the same rules without building records, for scanning a whole file quickly;
* :class:`TasksReader`: what ``export``, ``stats`` and ``report`` read. It streams the
  tasks of a file another process may be appending to, skipping (with a warning naming
  the line) blank lines, lines that are not tasks and repeats of a task id;
* :class:`TasksWriter`: what the checkpoint writes. It appends accepted tasks and, when
  the store opens, reconciles the file with the checkpoint by task id (the checkpoint is
  the source of truth; see :meth:`TasksWriter.reconcile`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..records import Instance, Task
from .run_files import TASKS

# Skipped lines are named one by one up to this many per read, then only counted.
MAX_SKIP_WARNINGS = 10
# Line numbers named in a repair warning, per kind; the rest are counted.
_SHOWN_LINES = 5

log = logging.getLogger("selfinstruct_async.checkpoint.tasks_file")


# ---------------------------------------------------------------- the line format


# ``json.dumps(..., ensure_ascii=False)`` builds an encoder per call; this one is reused.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def instances_json(instances: Iterable[Instance]) -> str:
    """A task's instances as a JSON array: the checkpoint's column and the line's field."""
    return _encode([i.to_json() for i in instances])


def task_line(task: Task, instances: str | None = None) -> str:
    """The ``tasks.jsonl`` form of a task (documented in the README), without its newline.

    Exactly ``json.dumps`` of the object ``{"id", "instruction", "is_classification",
    "instances"}`` with ``ensure_ascii=False``; ``instances``, when given, is
    :func:`instances_json` of the task's instances, already made for the checkpoint.
    """
    if instances is None:
        instances = instances_json(task.instances)
    flag = task.is_classification
    label = "true" if flag is True else "false" if flag is False else _encode(flag)
    return (
        f'{{"id": {_encode(task.id)}, "instruction": {_encode(task.instruction)}, '
        f'"is_classification": {label}, "instances": {instances}}}'
    )


@dataclass(frozen=True)
class BadTaskLine:
    """A line of ``tasks.jsonl`` that is not a task; ``str()`` is ``file:line: problem``."""

    path: str
    line: int
    problem: str  # "invalid JSON (...)", "field 'instances[0].output': missing"...

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


class _NotATask(Exception):
    """Internal: why a line is not a task (becomes a :class:`BadTaskLine`)."""


def _field(obj: dict[str, Any], key: str, kind: type, name: str = "") -> Any:
    if key not in obj:
        raise _NotATask(f"field '{name or key}': missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _NotATask(
            f"field '{name or key}': expected {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _task_from(obj: Any) -> Task:
    if not isinstance(obj, dict):
        raise _NotATask(f"expected a JSON object, got {type(obj).__name__}")
    instances = []
    for i, item in enumerate(_field(obj, "instances", list)):
        if not isinstance(item, dict):
            raise _NotATask(f"field 'instances[{i}]': expected an object")
        instances.append(
            Instance(
                input=_field(item, "input", str, f"instances[{i}].input"),
                output=_field(item, "output", str, f"instances[{i}].output"),
            )
        )
    return Task(
        id=_field(obj, "id", str),
        instruction=_field(obj, "instruction", str),
        is_classification=_field(obj, "is_classification", bool),
        instances=tuple(instances),
    )


def parse_task_line(raw: bytes, path: str, number: int) -> Task | BadTaskLine:
    """One ``tasks.jsonl`` line (``number`` counts from 1) as a task, or why it is not one."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return BadTaskLine(path, number, f"invalid JSON ({e})")
    try:
        return _task_from(obj)
    except _NotATask as e:
        return BadTaskLine(path, number, str(e))


def task_identity(obj: Any) -> tuple[str, int] | None:
    """The id and a content hash of a parsed line :func:`parse_task_line` accepts, else None.

    The same rules without building records, for scanning a whole file quickly; two lines
    with equal hashes hold the same task whatever their key order or spacing.
    """
    if not isinstance(obj, dict):
        return None
    task_id, instruction = obj.get("id"), obj.get("instruction")
    instances, is_classification = obj.get("instances"), obj.get("is_classification")
    if not (
        isinstance(task_id, str)
        and isinstance(instruction, str)
        and isinstance(is_classification, bool)
        and isinstance(instances, list)
    ):
        return None
    pairs = []
    for item in instances:
        if not isinstance(item, dict):
            return None
        given, output = item.get("input"), item.get("output")
        if not (isinstance(given, str) and isinstance(output, str)):
            return None
        pairs.append((given, output))
    return task_id, hash((task_id, instruction, is_classification, tuple(pairs)))


_DECODER = json.JSONDecoder()


def _line_identity(raw: bytes) -> tuple[str, int] | None:
    try:
        # The decoder itself: json.loads would sniff the encoding of every line first.
        return task_identity(_DECODER.decode(raw.decode("utf-8")))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


# ---------------------------------------------------------------- reading (output commands)


def skipped_note(path: Path | str, skipped: int) -> str:
    """The note for lines of ``tasks.jsonl`` a reader left out (each named in a warning)."""
    if skipped == 1:
        return f"{path}: skipped 1 line that is not a task or repeats one (named in a warning)"
    return f"{path}: skipped {skipped} lines that are not tasks or repeat one (see the warnings)"


@dataclass
class TasksReader:
    """Streams the tasks of a ``tasks.jsonl`` another process may be appending to.

    Reading stops at the size the file had when :meth:`__iter__` began (a line that was
    being written then is read only if it had been finished), and an unterminated last
    line is skipped and remembered in :attr:`torn_tail`. A line that is not a task
    (blank, not JSON, a missing or mistyped field) or repeats the id of a task already
    read is skipped with a warning naming the file and line, and counted in
    :attr:`skipped`: the checkpoint, not this file, is the source of truth, and a
    resumed run re-appends any committed task such a line stood for.
    """

    path: Path
    torn_tail: bool = False
    lines_read: int = 0
    size: int = 0
    skipped: int = 0

    @classmethod
    def in_run(cls, run_dir: Path) -> TasksReader:
        """The reader of ``RUN_DIR/tasks.jsonl``; :class:`CheckpointError` when there is none."""
        path = run_dir / TASKS
        if not run_dir.is_dir():
            raise CheckpointError(f"{run_dir}: no such run directory")
        if not path.is_file():
            raise CheckpointError(
                f"{run_dir}: no tasks.jsonl here (not a run directory, or no task finished yet)"
            )
        return cls(path)

    def __iter__(self) -> Iterator[Task]:
        self.torn_tail = False
        self.lines_read = self.skipped = 0
        seen: set[str] = set()
        try:
            with open(self.path, "rb") as f:
                self.size = os.fstat(f.fileno()).st_size
                number = position = 0
                while position < self.size:
                    raw = f.readline()
                    position += len(raw)
                    number += 1
                    if not raw.endswith(b"\n"):
                        self.torn_tail = True
                        break
                    self.lines_read = number
                    task = self._task(raw, number, seen)
                    if task is not None:
                        yield task
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read ({e.strerror or e})") from None
        if self.skipped > MAX_SKIP_WARNINGS:
            log.warning("%s: skipped %d lines in all", self.path, self.skipped)

    def _task(self, raw: bytes, number: int, seen: set[str]) -> Task | None:
        """The task on this line, or None (with a warning) when the line is to be skipped."""
        if not raw.strip():
            why = f"{self.path}:{number}: blank line"
        else:
            task = parse_task_line(raw, str(self.path), number)
            if isinstance(task, BadTaskLine):
                why = str(task)
            elif task.id not in seen:
                seen.add(task.id)
                return task
            else:
                why = f"{self.path}:{number}: task {task.id!r} again (an earlier line has it)"
        self.skipped += 1
        if self.skipped <= MAX_SKIP_WARNINGS:
            log.warning("%s; line skipped", why)
        return None

    def notes(self, shown_as: Path | str) -> list[str]:
        """What the last read left out, for the command's notes (``shown_as`` names the file)."""
        notes = []
        if self.torn_tail:
            notes.append(f"{shown_as}: ignored an incomplete last line (a run is still writing)")
        if self.skipped:
            notes.append(skipped_note(shown_as, self.skipped))
        return notes


# ---------------------------------------------------------------- reconciling (the checkpoint)


def _count(numbers: list[int], one: str, many: str) -> str:
    return f"{len(numbers)} {one if len(numbers) == 1 else many}"


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN_LINES])
    more = f" and {len(numbers) - _SHOWN_LINES} more" if len(numbers) > _SHOWN_LINES else ""
    return f"{'line' if len(numbers) == 1 else 'lines'} {shown}{more}"


@dataclass
class TasksFileScan:
    """What one pass over ``tasks.jsonl`` found; line numbers start at 1."""

    ids: dict[str, int] = field(default_factory=dict)  # committed id -> hash of its first line
    blank: list[int] = field(default_factory=list)  # carry nothing: removed
    foreign: list[int] = field(default_factory=list)  # not a task at all
    unknown: list[int] = field(default_factory=list)  # a task the checkpoint has not accepted
    duplicates: list[int] = field(default_factory=list)  # an earlier line has this task: removed
    conflicting: list[int] = field(default_factory=list)  # an id again, other content: kept
    complete_size: int = 0  # bytes up to the end of the last line kept
    torn: int = 0  # bytes of an unterminated last line that is not a task: dropped
    unterminated: bool = False  # the last line is a whole task without its newline

    @classmethod
    def of(cls, path: Path, committed: Collection[str]) -> TasksFileScan:
        """Classify every line of ``path`` against the ids of the committed tasks."""
        scan = cls()
        if not path.exists():
            return scan
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                found = _line_identity(raw) if raw.strip() else None
                if not raw.endswith(b"\n"):
                    if found is None:  # a write cut short by a crash (or a stray fragment)
                        scan.torn = len(raw)
                        break
                    scan.unterminated = True
                scan.complete_size += len(raw)
                scan._classify(number, raw, found, committed)
        return scan

    def _classify(
        self, number: int, raw: bytes, found: tuple[str, int] | None, committed: Collection[str]
    ) -> None:
        if not raw.strip():
            self.blank.append(number)
        elif found is None:
            self.foreign.append(number)
        elif found[0] not in committed:
            self.unknown.append(number)
        elif found[0] not in self.ids:
            self.ids[found[0]] = found[1]
        elif self.ids[found[0]] == found[1]:
            self.duplicates.append(number)
        else:
            self.conflicting.append(number)

    def describe(self, appended: int, *, missing_file: bool) -> str:
        """What was found and done, for the warning; empty when the file was in order."""
        if missing_file:
            return f"the file was missing; wrote the {appended} committed tasks" if appended else ""
        parts = []
        if self.torn:
            parts.append(f"dropped an incomplete last line ({self.torn} bytes)")
        if self.unterminated:
            parts.append("ended the last line, which had no newline")
        if self.blank:
            what = _count(self.blank, "blank line", "blank lines")
            parts.append(f"removed {what} ({_lines(self.blank)})")
        kept = (
            (self.unknown, "line not in the checkpoint", "lines not in the checkpoint"),
            (self.foreign, "line that is not a task", "lines that are not tasks"),
            (
                self.conflicting,
                "line repeating a task id with other content",
                "lines repeating a task id with other content",
            ),
        )
        for numbers, one, many in kept:
            if numbers:
                parts.append(f"{_count(numbers, one, many)} ({_lines(numbers)}, kept)")
        if self.duplicates:
            what = _count(self.duplicates, "duplicate line", "duplicate lines")
            parts.append(f"removed {what} of committed tasks ({_lines(self.duplicates)})")
        if appended:
            tasks = "task that was" if appended == 1 else "tasks that were"
            parts.append(f"appended {appended} committed {tasks} missing")
        return ", ".join(parts)


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _rewrite_without(path: Path, scan: TasksFileScan) -> None:
    """Replace ``path`` by a copy without its blank and duplicate lines (and torn tail)."""
    target = path.resolve()
    drop = set(scan.duplicates) | set(scan.blank)
    tmp = target.with_name(f".{target.name}.repair.tmp")
    try:
        with open(target, "rb") as src, open(tmp, "wb") as dst:
            os.fchmod(dst.fileno(), stat.S_IMODE(os.fstat(src.fileno()).st_mode))
            for number, raw in enumerate(src, start=1):
                if number in drop:
                    continue
                if not raw.endswith(b"\n"):
                    if scan.torn:
                        break
                    raw += b"\n"
                dst.write(raw)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_directory(target.parent)


class TasksWriter:
    """The checkpoint's side of ``tasks.jsonl``: appends accepted tasks, repairs on open.

    SQLite is the source of truth: a task is committed there first and appended here
    second, so after a crash the file can only lag behind, and :meth:`reconcile` catches
    it up. Not thread-safe, like the store that owns it.

    ``sync=False`` (the store's ``durability = "process"``) leaves the flush to disk to
    the OS: a killed process loses nothing it wrote, and after a power loss the
    checkpoint repairs the file when the store next opens.
    """

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self.sync = sync

    def append(self, tasks: Iterable[Task]) -> None:
        """Append these tasks' lines, durable on return; :class:`CheckpointError` if not."""
        self.append_lines(task_line(t) for t in tasks)

    def append_lines(self, lines: Iterable[str]) -> None:
        """Append lines made by :func:`task_line`, as :meth:`append` does."""
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            # Unbuffered, so that after a failed write no buffer is flushed again on close.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    if self.sync:
                        os.fsync(fd)
                except OSError:
                    # Drop the partial line now: a later successful append would bury it
                    # mid-file, a damaged line the repair on open could only keep and warn of.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
        except OSError as e:
            raise CheckpointError(
                f"{self.path}: cannot append ({e.strerror or e}); the task is committed "
                "in the checkpoint and is written here when the run resumes"
            ) from None

    def reconcile(
        self, committed: Mapping[str, int], load: Callable[[list[str]], Iterable[Task]]
    ) -> str:
        """Make the file hold every committed task exactly once; log and return what was done.

        ``committed`` maps the id of every accepted task to its acceptance number (the
        order missing tasks are appended in); ``load`` fetches tasks by id. Reconciled by
        id, not by position, whatever has been done to the file since (blank lines,
        another JSON spacing, lines added by hand): a torn last line is dropped, blank
        lines and lines repeating a committed task are removed, every line that is not a
        committed task is kept (and warned about), and the committed tasks the file lacks
        are appended. ``OSError`` when the file cannot be written.
        """
        existed = self.path.exists()
        if existed:
            # Fail now, not after paying for the first task, if the file cannot be appended to.
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
        scan = TasksFileScan.of(self.path, committed.keys())
        if scan.duplicates or scan.blank:
            _rewrite_without(self.path, scan)
        elif scan.torn:
            with open(self.path, "rb+") as f:
                f.truncate(scan.complete_size)
                os.fsync(f.fileno())
        elif scan.unterminated:
            self.append_lines([""])
        missing = sorted(committed.keys() - scan.ids.keys(), key=committed.__getitem__)
        if missing:
            self.append(load(missing))
        repaired = scan.describe(len(missing), missing_file=not existed)
        if repaired:
            log.warning("%s: %s", self.path, repaired)
        return repaired

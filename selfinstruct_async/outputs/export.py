"""``selfinstruct export``: stream a run's ``tasks.jsonl`` into the files trainers read.

Formats (one row per instance; ``docs/exports.md`` has examples):

* ``alpaca``: a JSON list of ``{"instruction", "input", "output"}``;
* ``openai-chat``: JSONL of ``{"messages": [user, assistant]}``;
* ``prompt-completion``: JSONL of ``{"prompt", "completion"}`` with several encoding
  templates, picked per instance from a hash of its content (as the paper varies them);
* ``hf-jsonl``: JSONL with flat, always-present, consistently typed columns, the shape
  ``datasets.load_dataset("json", data_files=...)`` reads.

Memory stays bounded whatever the size of the run, apart from the set of task ids read
(tens of bytes per task). Rows are streamed from ``tasks.jsonl`` (complete lines only, up
to the size the file had when the export started, so a daemon appending to it is
harmless). Lines that are not tasks (blank, hand-written, damaged) and repeats of a task id
already read are skipped with a warning naming the file and line. ``--dedup`` and
``--shuffle-seed`` need more than one row at a time; they hash-partition the rows into
temporary bucket files next to the output and process one bucket at a time:

* shuffling sorts by a keyed hash of the row's content (BLAKE2b keyed with the seed). The
  bucket of a row is the top of that key's range, so emitting buckets in order, each sorted
  in memory, is a global sort by key. The order is stable: the same rows and seed give the
  same file, and rows added later by a growing run slot in without reordering earlier ones;
* deduplicating without shuffling partitions by the content hash, keeps the first
  occurrence of each row in its bucket, and merges the buckets back by original position.

The validation split (``--split``) is decided by another hash of the row's content, so a
row keeps its side when the run grows and exact duplicates never straddle the split.
Outputs are written to temporary files in the destination directory and renamed into place;
an output that is one of a run directory's own files is refused (:mod:`.run_files`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import heapq
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..checkpoint.run_files import refuse_run_file
from ..errors import SelfInstructError
from ..records import Instance, Task

FORMATS = ("alpaca", "openai-chat", "prompt-completion", "hf-jsonl")
# Rows of one bucket are held in memory together: about this many bytes of tasks.jsonl
# (Python objects take several times that: about 60 MiB peak at 8 MiB).
DEFAULT_BUCKET_BYTES = 8 << 20
_SPLIT_KEY = b"selfinstruct-split"
# Skipped lines are named one by one up to this many per read, then only counted.
MAX_SKIP_WARNINGS = 10

log = logging.getLogger("selfinstruct_async.outputs.export")


class ExportError(SelfInstructError):
    """A run directory cannot be exported, or an option is out of range."""


# ---------------------------------------------------------------- reading tasks.jsonl


@dataclass
class TaskFile:
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
    def in_run(cls, run_dir: Path) -> TaskFile:
        path = run_dir / "tasks.jsonl"
        if not run_dir.is_dir():
            raise ExportError(f"{run_dir}: no such run directory")
        if not path.is_file():
            raise ExportError(
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
            raise ExportError(f"{self.path}: cannot read ({e.strerror or e})") from None
        if self.skipped > MAX_SKIP_WARNINGS:
            log.warning("%s: skipped %d lines in all", self.path, self.skipped)

    def _task(self, raw: bytes, number: int, seen: set[str]) -> Task | None:
        """The task on this line, or None (with a warning) when the line is to be skipped."""
        if not raw.strip():
            why = f"{self.path}:{number}: blank line"
        else:
            try:
                task = parse_task_line(raw, str(self.path), number)
            except ExportError as e:
                why = str(e)
            else:
                if task.id not in seen:
                    seen.add(task.id)
                    return task
                why = f"{self.path}:{number}: task {task.id!r} again (an earlier line has it)"
        self.skipped += 1
        if self.skipped <= MAX_SKIP_WARNINGS:
            log.warning("%s; line skipped", why)
        return None


def task_identity(obj: Any) -> tuple[str, int] | None:
    """The id and a content hash of a parsed line that :func:`parse_task_line` accepts, else None.

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


def skipped_note(path: Path | str, skipped: int) -> str:
    """The note for lines of ``tasks.jsonl`` a reader left out (each named in a warning)."""
    if skipped == 1:
        return f"{path}: skipped 1 line that is not a task or repeats one (named in a warning)"
    return f"{path}: skipped {skipped} lines that are not tasks or repeat one (see the warnings)"


def _field(obj: dict[str, Any], key: str, kind: type, where: str, name: str = "") -> Any:
    if key not in obj:
        raise ExportError(f"{where}: field '{name or key}': missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ExportError(
            f"{where}: field '{name or key}': expected {kind.__name__}, got {type(value).__name__}"
        )
    return value


def parse_task_line(raw: bytes, path: str, number: int) -> Task:
    """One ``tasks.jsonl`` line as a :class:`Task`; errors name the file, line and field."""
    where = f"{path}:{number}"
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{where}: invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ExportError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    instances = []
    for i, item in enumerate(_field(obj, "instances", list, where)):
        if not isinstance(item, dict):
            raise ExportError(f"{where}: field 'instances[{i}]': expected an object")
        instances.append(
            Instance(
                input=_field(item, "input", str, where, f"instances[{i}].input"),
                output=_field(item, "output", str, where, f"instances[{i}].output"),
            )
        )
    return Task(
        id=_field(obj, "id", str, where),
        instruction=_field(obj, "instruction", str, where),
        is_classification=_field(obj, "is_classification", bool, where),
        instances=tuple(instances),
    )


# ---------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Row:
    """One exported example: an instance of a task, with where it came from."""

    instruction: str
    input: str
    output: str
    task_id: str
    instance: int
    is_classification: bool
    source: str  # "generated" or "seed"

    def digest(self) -> bytes:
        """Identity of the example's content (what ``--dedup`` compares), 16 bytes."""
        data = json.dumps([self.instruction, self.input, self.output], ensure_ascii=False)
        return hashlib.blake2b(data.encode("utf-8"), digest_size=16).digest()

    def to_list(self) -> list[Any]:
        return [
            self.instruction,
            self.input,
            self.output,
            self.task_id,
            self.instance,
            self.is_classification,
            self.source,
        ]

    @classmethod
    def from_list(cls, items: list[Any]) -> Row:
        return cls(*items)


def task_rows(
    tasks: Iterable[Task], source: str, max_instances: int | None = None
) -> Iterator[Row]:
    """Each task's instances (the first ``max_instances`` of them) as rows."""
    for task in tasks:
        instances = task.instances if max_instances is None else task.instances[:max_instances]
        for i, inst in enumerate(instances):
            yield Row(
                task.instruction,
                inst.input,
                inst.output,
                task.id,
                i,
                task.is_classification,
                source,
            )


def in_validation(digest: bytes, fraction: float) -> bool:
    """Whether a row with this content digest belongs to the validation split."""
    h = hashlib.blake2b(digest, key=_SPLIT_KEY, digest_size=8).digest()
    return int.from_bytes(h, "big") < fraction * 2.0**64


# ---------------------------------------------------------------- formats

# (with input, without input); every prompt ends in a label and a colon, and the completion
# is a space and the output, the layout of the paper's GPT-3 fine-tuning files.
PROMPT_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("Task: {instruction}\nInput: {input}\nOutput:", "Task: {instruction}\nOutput:"),
    ("{instruction}\n\n{input}\n\nAnswer:", "{instruction}\n\nAnswer:"),
    (
        "Instruction: {instruction}\n\nGiven:\n{input}\n\nResponse:",
        "Instruction: {instruction}\n\nResponse:",
    ),
    ("{input}\n\nWith the text above in mind: {instruction}\nResult:", "{instruction}\nResult:"),
    (
        "Below is a request and the material it refers to.\nRequest: {instruction}\n"
        "Material: {input}\nReply:",
        "Below is a request.\nRequest: {instruction}\nReply:",
    ),
)


def prompt_template(row: Row) -> int:
    """Which :data:`PROMPT_TEMPLATES` entry encodes ``row``: fixed by its content."""
    return int.from_bytes(row.digest()[:4], "big") % len(PROMPT_TEMPLATES)


def user_message(row: Row) -> str:
    return f"{row.instruction}\n\n{row.input}" if row.input else row.instruction


def format_row(fmt: str, row: Row) -> dict[str, Any]:
    """The JSON object of ``row`` in format ``fmt``."""
    if fmt == "alpaca":
        return {"instruction": row.instruction, "input": row.input, "output": row.output}
    if fmt == "openai-chat":
        return {
            "messages": [
                {"role": "user", "content": user_message(row)},
                {"role": "assistant", "content": row.output},
            ]
        }
    if fmt == "prompt-completion":
        with_input, without = PROMPT_TEMPLATES[prompt_template(row)]
        template = with_input if row.input else without
        prompt = template.format(instruction=row.instruction, input=row.input)
        return {"prompt": prompt, "completion": " " + row.output}
    if fmt == "hf-jsonl":
        return {
            "id": f"{row.task_id}#{row.instance}",
            "task_id": row.task_id,
            "instance": row.instance,
            "source": row.source,
            "is_classification": row.is_classification,
            "instruction": row.instruction,
            "input": row.input,
            "output": row.output,
        }
    raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


class _Writer:
    """Writes rows of one format to a temporary file, renamed over ``path`` on commit."""

    def __init__(self, fmt: str, path: Path) -> None:
        self.fmt = fmt
        self.path = path
        self.rows = 0
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path(".")
        )
        self.tmp = Path(tmp)
        os.fchmod(fd, new_file_mode())
        self.file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        if fmt == "alpaca":
            self.file.write("[")

    def write(self, row: Row) -> None:
        text = json.dumps(format_row(self.fmt, row), ensure_ascii=False)
        if self.fmt == "alpaca":
            self.file.write(("\n  " if self.rows == 0 else ",\n  ") + text)
        else:
            self.file.write(text + "\n")
        self.rows += 1

    def finish(self) -> None:
        if self.fmt == "alpaca":
            self.file.write("\n]\n" if self.rows else "]\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def new_file_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp's 0600 is for secrets, not datasets)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def validation_path(out: Path) -> Path:
    """The validation sibling of ``out``: ``train.jsonl`` -> ``train.validation.jsonl``."""
    return out.with_name(f"{out.stem}.validation{out.suffix}")


# ---------------------------------------------------------------- ordering


def _buckets_for(total_bytes: int, bucket_bytes: int) -> int:
    return max(1, min(4096, -(-total_bytes // max(1, bucket_bytes))))


def _entry(pos: int, key: int, digest: bytes, row: Row) -> str:
    return json.dumps([pos, key, digest.hex(), row.to_list()], ensure_ascii=False) + "\n"


def _read_entries(path: Path) -> Iterator[tuple[int, int, str, Row]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            pos, key, digest, items = json.loads(line)
            yield pos, key, digest, Row.from_list(items)


def _partition(
    rows: Iterable[Row], tmp: Path, buckets: int, key_of: Callable[[bytes], int], bits: int
) -> list[Path]:
    paths = [tmp / f"bucket-{i:04d}" for i in range(buckets)]
    files = [open(p, "w", encoding="utf-8") for p in paths]  # noqa: SIM115 - closed below
    try:
        for pos, row in enumerate(rows):
            digest = row.digest()
            key = key_of(digest)
            files[(key * buckets) >> bits].write(_entry(pos, key, digest, row))
    finally:
        for f in files:
            f.close()
    return paths


def shuffled(
    rows: Iterable[Row], seed: int, tmp: Path, buckets: int, *, dedup: bool = False
) -> Iterator[Row]:
    """Rows sorted by a seed-keyed hash of their content, one bucket in memory at a time."""
    seed_key = hashlib.blake2b(str(seed).encode(), digest_size=32).digest()

    def key_of(digest: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(digest, key=seed_key, digest_size=8).digest(), "big")

    for path in _partition(rows, tmp, buckets, key_of, 64):
        entries = sorted(_read_entries(path), key=lambda e: (e[1], e[0]))
        path.unlink()
        seen: set[str] = set()
        for _pos, _key, digest, row in entries:
            if dedup:
                if digest in seen:
                    continue
                seen.add(digest)
            yield row


def deduplicated(rows: Iterable[Row], tmp: Path, buckets: int) -> Iterator[Row]:
    """Rows in their original order without exact repeats, one bucket in memory at a time."""
    parts = _partition(rows, tmp, buckets, lambda d: int.from_bytes(d, "big"), 128)
    kept: list[Path] = []
    for path in parts:
        seen: set[str] = set()
        out = path.with_name(path.name + ".kept")
        with open(out, "w", encoding="utf-8") as f:
            for pos, key, digest, row in _read_entries(path):
                if digest not in seen:
                    seen.add(digest)
                    f.write(_entry(pos, key, bytes.fromhex(digest), row))
        path.unlink()
        kept.append(out)
    for _pos, _key, _digest, row in heapq.merge(*(_read_entries(p) for p in kept)):
        yield row


# ---------------------------------------------------------------- the export


@dataclass
class ExportOptions:
    """What to export and how; mirrors the command's flags."""

    fmt: str
    include_seeds: bool = False
    seeds_path: Path | None = None
    max_instances: int | None = None
    dedup: bool = False
    shuffle_seed: int | None = None
    split: float | None = None
    bucket_bytes: int = DEFAULT_BUCKET_BYTES


@dataclass
class ExportResult:
    """What an export wrote."""

    out: Path
    rows: int
    validation_out: Path | None = None
    validation_rows: int = 0
    tasks_read: int = 0
    seed_tasks: int = 0
    rows_before_dedup: int = 0
    torn_tail: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates_dropped(self) -> int:
        return self.rows_before_dedup - self.rows - self.validation_rows


def _check(options: ExportOptions) -> None:
    if options.fmt not in FORMATS:
        raise ExportError(f"unknown format {options.fmt!r}; choose one of {', '.join(FORMATS)}")
    if options.max_instances is not None and options.max_instances < 1:
        raise ExportError(f"--max-instances: must be >= 1, got {options.max_instances}")
    if options.split is not None and not 0.0 < options.split < 1.0:
        raise ExportError(f"--split: must be between 0 and 1 (exclusive), got {options.split}")


def export_run(run_dir: Path, out: Path, options: ExportOptions) -> ExportResult:
    """Export ``run_dir``'s tasks to ``out`` (and its validation sibling with a split)."""
    _check(options)
    refuse_run_file(out, what="the export")
    if options.split is not None:
        refuse_run_file(validation_path(out), what="the export")
    task_file = TaskFile.in_run(run_dir)
    if not out.parent.is_dir():
        raise ExportError(f"{out}: directory {out.parent} does not exist")
    seeds: list[Task] = []
    if options.include_seeds:
        from ..seeds import DEFAULT_SEEDS, load_seed_tasks

        seeds = [
            Task(s.id, s.instruction, s.is_classification, s.instances)
            for s in load_seed_tasks(options.seeds_path or DEFAULT_SEEDS)
        ]
    result = ExportResult(out=out, rows=0, seed_tasks=len(seeds))
    counted = 0

    def counting(rows: Iterable[Row]) -> Iterator[Row]:
        nonlocal counted
        for row in rows:
            counted += 1
            yield row

    tasks_seen = 0

    def tasks() -> Iterator[Task]:
        nonlocal tasks_seen
        for task in task_file:
            tasks_seen += 1
            yield task

    rows: Iterable[Row] = counting(
        _chain(
            task_rows(seeds, "seed", options.max_instances),
            task_rows(tasks(), "generated", options.max_instances),
        )
    )
    size_hint = task_file.path.stat().st_size + len(seeds) * 512
    try:
        writers = _write_rows(rows, out, options, size_hint)
    except OSError as e:
        # A read-only or full destination: one line naming the output, nothing half-written.
        raise ExportError(f"{out}: cannot write the export ({e.strerror or e})") from None
    result.rows = writers[0].rows
    if options.split is not None:
        result.validation_out = writers[1].path
        result.validation_rows = writers[1].rows
    result.tasks_read = tasks_seen
    result.rows_before_dedup = counted
    result.torn_tail = task_file.torn_tail
    if task_file.torn_tail:
        result.notes.append(
            f"{task_file.path}: ignored an incomplete last line (a run is still writing)"
        )
    if task_file.skipped:
        result.notes.append(skipped_note(task_file.path, task_file.skipped))
    return result


def _write_rows(
    rows: Iterable[Row], out: Path, options: ExportOptions, size_hint: int
) -> list[_Writer]:
    """Write ``rows`` through temporary files renamed into place; all or nothing."""
    writers: list[_Writer] = []
    try:
        writers.append(_Writer(options.fmt, out))
        if options.split is not None:
            writers.append(_Writer(options.fmt, validation_path(out)))
        with tempfile.TemporaryDirectory(prefix=".selfinstruct-export-", dir=out.parent) as tmp:
            buckets = _buckets_for(size_hint, options.bucket_bytes)
            if options.shuffle_seed is not None:
                rows = shuffled(rows, options.shuffle_seed, Path(tmp), buckets, dedup=options.dedup)
            elif options.dedup:
                rows = deduplicated(rows, Path(tmp), buckets)
            for row in rows:
                if options.split is not None and in_validation(row.digest(), options.split):
                    writers[1].write(row)
                else:
                    writers[0].write(row)
        for w in writers:
            w.finish()
        for w in reversed(writers):
            w.commit()
    except BaseException:
        for w in writers:
            w.discard()
        raise
    return writers


def _chain(*parts: Iterable[Row]) -> Iterator[Row]:
    for part in parts:
        yield from part


# ---------------------------------------------------------------- command line


def _run(args: argparse.Namespace) -> int:
    options = ExportOptions(
        fmt=args.format,
        include_seeds=args.include_seeds or args.seeds is not None,
        seeds_path=args.seeds,
        max_instances=args.max_instances,
        dedup=args.dedup,
        shuffle_seed=args.shuffle_seed,
        split=args.split,
    )
    result = export_run(Path(args.run_dir), Path(args.out), options)
    for note in result.notes:
        print(f"selfinstruct: note: {note}", file=sys.stderr)
    line = f"{result.out}: {result.rows} rows ({options.fmt}) from {result.tasks_read} tasks"
    if result.seed_tasks:
        line += f" and {result.seed_tasks} seed tasks"
    print(line)
    if result.validation_out is not None:
        print(f"{result.validation_out}: {result.validation_rows} validation rows")
    if options.dedup:
        print(f"dropped {result.duplicates_dropped} exact duplicate rows")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``selfinstruct export``."""
    p = subparsers.add_parser(
        "export",
        help="write a run's tasks in a training format (safe while it runs)",
        description="Stream RUN_DIR/tasks.jsonl into a training file; see docs/exports.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument(
        "--include-seeds", action="store_true", help="also export the seed tasks (first)"
    )
    p.add_argument("--seeds", type=Path, metavar="FILE", help="seed file (implies --include-seeds)")
    p.add_argument("--max-instances", type=int, metavar="K", help="at most K instances per task")
    p.add_argument("--dedup", action="store_true", help="drop exact duplicate rows")
    p.add_argument("--shuffle-seed", type=int, metavar="N", help="stable shuffle with seed N")
    p.add_argument(
        "--split",
        type=float,
        metavar="FRACTION",
        help="put this share of rows in a sibling FILE-stem.validation file",
    )
    p.set_defaults(func=_run)

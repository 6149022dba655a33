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
already read are skipped with a warning naming the file and line (the reader is
:class:`~selfinstruct_async.checkpoint.tasks_file.TasksReader`, shared with ``stats`` and
``report``). ``--dedup`` and ``--shuffle-seed`` need more than one row at a time; they
hash-partition the rows into temporary bucket files next to the output and process one
bucket at a time (:mod:`.export_rows`):

* shuffling sorts by a keyed hash of the row's content (BLAKE2b keyed with the seed). The
  bucket of a row is the top of that key's range, so emitting buckets in order, each sorted
  in memory, is a global sort by key. The order is stable: the same rows and seed give the
  same file, and rows added later by a growing run slot in without reordering earlier ones;
* deduplicating without shuffling partitions by the content hash, keeps the first
  occurrence of each row in its bucket, and merges the buckets back by original position.

The validation split (``--split``) is decided by another hash of the row's content, so a
row keeps its side when the run grows and exact duplicates never straddle the split.
Outputs are written to temporary files in the destination directory and renamed into place;
an output that is one of a run directory's own files is refused
(:mod:`selfinstruct_async.checkpoint.run_files`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..checkpoint.run_files import refuse_run_file
from ..checkpoint.tasks_file import TasksReader
from ..errors import ExportError
from ..records import Task
from .atomic_files import temporary_beside
from .export_rows import Row, buckets_for, deduplicated, in_validation, shuffled, task_rows

FORMATS = ("alpaca", "openai-chat", "prompt-completion", "hf-jsonl")
# Rows of one bucket are held in memory together: about this many bytes of tasks.jsonl
# (Python objects take several times that: about 60 MiB peak at 8 MiB).
DEFAULT_BUCKET_BYTES = 8 << 20


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
        fd, self.tmp = temporary_beside(path)
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


def validation_path(out: Path) -> Path:
    """The validation sibling of ``out``: ``train.jsonl`` -> ``train.validation.jsonl``."""
    return out.with_name(f"{out.stem}.validation{out.suffix}")


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


def _seed_tasks(options: ExportOptions) -> list[Task]:
    """The seed tasks ``--include-seeds`` exports first (none without it)."""
    if not options.include_seeds:
        return []
    from ..seeds import DEFAULT_SEEDS, load_seed_tasks

    return [
        Task(s.id, s.instruction, s.is_classification, s.instances)
        for s in load_seed_tasks(options.seeds_path or DEFAULT_SEEDS)
    ]


def export_run(run_dir: Path, out: Path, options: ExportOptions) -> ExportResult:
    """Export ``run_dir``'s tasks to ``out`` (and its validation sibling with a split)."""
    _check(options)
    refuse_run_file(out, what="the export")
    if options.split is not None:
        refuse_run_file(validation_path(out), what="the export")
    task_file = TasksReader.in_run(run_dir)
    if not out.parent.is_dir():
        raise ExportError(f"{out}: directory {out.parent} does not exist")
    seeds = _seed_tasks(options)
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
    result.notes.extend(task_file.notes(task_file.path))
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
            buckets = buckets_for(size_hint, options.bucket_bytes)
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

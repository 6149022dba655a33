"""``selfinstruct dedup``: the ROUGE-L similarity filter over an existing dataset.

In input order, a record is kept when no record kept before it has a ROUGE-L F-measure
above the threshold with it (the pipeline's rule, rouge-score's scores bit for bit). Kept
records are written unchanged, in the input's format: JSONL with an ``instruction`` field,
Alpaca JSON (one list of objects with ``instruction``), or plain text, one instruction per
line (blank lines are not records and are dropped). The output is written to a temporary file
in the same directory and renamed over ``--out``, so a failed run leaves nothing half-written.
``--out`` may be neither the input file itself nor one of a run directory's own files
(:mod:`selfinstruct_async.checkpoint.run_files`): either would lose the only copy of the
data. The flags are checked by the same rule as the filter's ``[filters.rouge_similarity]``
settings (:class:`~selfinstruct_async.similarity.SimilaritySettings`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ..checkpoint.run_files import refuse_run_file, refuse_same_file
from ..errors import DedupInputError, EmptyTokensError
from ..similarity import SimilarityIndex, SimilaritySettings, tokenizer_names
from ..similarity.settings import ON_EMPTY_CHOICES, check_threshold
from .atomic_files import replacing

Format = Literal["jsonl", "json", "text"]


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: its instruction and its exact text in the output format."""

    instruction: str
    raw: Any  # the JSONL line or text line (str), or the Alpaca object (dict)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """What ``deduplicate_file`` did."""

    format: Format
    kept: int
    dropped: int
    seconds: float


def detect_format(text: str) -> Format:
    """JSON when the file is one JSON array, JSONL when lines are objects, else text."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    return "text"


def instruction_field(obj: object) -> str:
    """The ``instruction`` string of a record read from JSON (``dedup``, ``filter``);
    ``ValueError`` saying what is wrong with it, for the caller to name file and line."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "instruction" not in obj:
        raise ValueError("field 'instruction': missing")
    value = obj["instruction"]
    if not isinstance(value, str):
        raise ValueError(f"field 'instruction': expected a string, got {type(value).__name__}")
    return value


def _instruction(obj: object, path: str, line: int | None) -> str:
    try:
        return instruction_field(obj)
    except ValueError as error:
        raise DedupInputError(path, line, str(error)) from None


def read_records(path: str | os.PathLike[str]) -> tuple[Format, list[Record]]:
    """Parse the input file; raises :class:`DedupInputError` naming file and line."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as error:
        raise DedupInputError(name, None, f"not UTF-8 text ({error})") from error
    except OSError as error:
        raise DedupInputError(name, None, error.strerror or str(error)) from error
    fmt = detect_format(text)
    records: list[Record] = []
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DedupInputError(name, error.lineno, f"invalid JSON: {error.msg}") from error
        if not isinstance(data, list):
            raise DedupInputError(name, 1, "expected a JSON list of objects")
        for position, obj in enumerate(data):
            try:
                records.append(Record(_instruction(obj, name, None), obj))
            except DedupInputError as error:
                raise DedupInputError(name, None, f"item {position}: {error.problem}") from None
        return fmt, records
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        content = line.rstrip("\r\n")
        if not content.strip():
            continue
        if fmt == "jsonl":
            try:
                obj = json.loads(content)
            except json.JSONDecodeError as error:
                raise DedupInputError(
                    name, number, f"invalid JSON at column {error.colno}: {error.msg}"
                ) from error
            records.append(Record(_instruction(obj, name, number), line))
        else:
            records.append(Record(content, line))
    return fmt, records


def deduplicate(
    records: list[Record],
    index: SimilarityIndex,
    on_drop: Callable[[Record, Record, float], None] | None = None,
) -> list[Record]:
    """Keep, in order, each record no earlier kept record scores above the threshold with."""
    kept: list[Record] = []
    for record in records:
        hit = index.first_above(record.instruction)
        if hit is None:
            index.add(record.instruction)
            kept.append(record)
        elif on_drop is not None:
            on_drop(record, kept[hit[0]], hit[1])
    return kept


def _write(out: IO[str], fmt: Format, kept: list[Record]) -> None:
    if fmt == "json":
        json.dump([r.raw for r in kept], out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    for record in kept:
        line = record.raw
        out.write(line if line.endswith("\n") else line + "\n")


def write_atomically(path: str | os.PathLike[str], fmt: Format, kept: list[Record]) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename it over ``path``."""
    with replacing(path, newline="") as out:
        _write(out, fmt, kept)


def deduplicate_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    threshold: float = 0.7,
    tokenizer: str = "rouge",
    on_empty: str = "error",
) -> DedupResult:
    """Read ``source``, drop near-duplicates, write the kept records to ``out``.

    The settings are checked (``ValueError``) before anything is read or written.
    """
    start = time.perf_counter()
    settings = SimilaritySettings(threshold, tokenizer, on_empty)
    refuse_run_file(Path(out), what="the result")
    refuse_same_file(Path(out), Path(source), what="the result")
    fmt, records = read_records(source)
    index = SimilarityIndex.from_settings(settings)
    kept = deduplicate(records, index)
    write_atomically(out, fmt, kept)
    return DedupResult(fmt, len(kept), len(records) - len(kept), time.perf_counter() - start)


def _iter_lines(result: DedupResult, source: str, out: str) -> Iterator[str]:
    total = result.kept + result.dropped
    yield (
        f"{source} ({result.format}, {total} records): kept {result.kept}, dropped "
        f"{result.dropped} in {result.seconds:.2f} s -> {out}"
    )


def run(args: argparse.Namespace) -> int:
    """The ``dedup`` sub-command; returns the exit status."""
    try:
        result = deduplicate_file(
            args.input, args.out, args.threshold, args.tokenizer, args.on_empty
        )
    except (DedupInputError, EmptyTokensError, OSError) as error:
        print(f"selfinstruct dedup: error: {error}", file=sys.stderr)
        return 2
    for line in _iter_lines(result, args.input, args.out):
        print(line)
    return 0


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    try:
        return check_threshold(number, key="")  # argparse names the flag
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dedup IN --out OUT [--threshold 0.7] [--tokenizer NAME]``."""
    parser = subparsers.add_parser(
        "dedup",
        help="drop near-duplicate instructions (ROUGE-L) from a dataset",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("input", metavar="IN", help="JSONL, Alpaca JSON or text lines")
    parser.add_argument("--out", required=True, metavar="OUT", help="where to write kept records")
    parser.add_argument(
        "--threshold", type=_threshold, default=0.7, help="drop above this ROUGE-L F (0.7)"
    )
    parser.add_argument(
        "--tokenizer",
        choices=tokenizer_names(),
        default="rouge",
        help="'rouge' (rouge-score's, ASCII only) or 'unicode' (any script)",
    )
    parser.add_argument(
        "--on-empty",
        choices=ON_EMPTY_CHOICES,
        default="error",
        help="when over 20%% of recent records have no tokens (default: error)",
    )
    parser.set_defaults(func=run)

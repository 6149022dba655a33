"""The rows of an export, one per instance, and the two orders that need the whole set.

A :class:`Row` is one exported example with where it came from. ``--dedup`` and
``--shuffle-seed`` need more than one row at a time, so :func:`shuffled` and
:func:`deduplicated` hash-partition the rows into temporary bucket files and process one
bucket at a time (see :mod:`.export` for why both orders are stable and exact); the
validation split is decided per row by :func:`in_validation`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Task

_SPLIT_KEY = b"selfinstruct-split"


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


# ---------------------------------------------------------------- ordering


def buckets_for(total_bytes: int, bucket_bytes: int) -> int:
    """How many buckets hold ``total_bytes`` of rows at about ``bucket_bytes`` each."""
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

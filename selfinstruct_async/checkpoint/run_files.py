"""The files a run directory is made of, and the guard that keeps outputs off them.

``export``, ``dedup`` and ``report`` write where ``--out`` says. Pointed at a run
directory's own files they would replace the checkpoint or the dataset the next resume
appends to, so every command that writes an output asks :func:`refuse_run_file` first.
A directory is a run directory when it holds ``checkpoint.sqlite``; paths are compared
after resolving symlinks and ``..``, so no spelling of the path gets around the rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

CHECKPOINT = "checkpoint.sqlite"
TASKS = "tasks.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
LOCK = ".lock"
# Everything a run owns: SQLite's write-ahead log and shared memory belong to the checkpoint.
RUN_FILES = frozenset(
    {CHECKPOINT, f"{CHECKPOINT}-wal", f"{CHECKPOINT}-shm", TASKS, CONFIG, SUMMARY, LOCK}
)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def run_dir_owning(path: Path) -> Path | None:
    """The run directory whose own file ``path`` is (after symlinks and ``..``), else None."""
    target = _resolved(path)
    if target.name in RUN_FILES and (target.parent / CHECKPOINT).is_file():
        return target.parent
    return None


def refuse_run_file(path: Path, *, flag: str = "--out", what: str = "the output") -> None:
    """Raise :class:`ConfigError` when writing ``path`` would replace a file of a run directory."""
    run_dir = run_dir_owning(path)
    if run_dir is None:
        return
    # Name the directory the way the user wrote it when that is the same place.
    shown = path.parent if _resolved(path.parent) == run_dir else run_dir
    raise ConfigError(
        f"{flag} {path} is a file of the run directory {shown}; write {what} elsewhere"
    )


def refuse_same_file(
    out: Path, source: Path, *, flag: str = "--out", what: str = "the output"
) -> None:
    """Raise :class:`ConfigError` when ``out`` is ``source`` itself (a link or another spelling)."""
    same = _resolved(out) == _resolved(source)
    if not same and out.exists() and source.exists():
        same = os.path.samefile(out, source)  # hard links
    if same:
        raise ConfigError(f"{flag} {out} is the input file {source}; write {what} to another file")

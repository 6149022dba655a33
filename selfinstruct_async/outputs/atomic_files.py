"""Writing an output file whole or not at all: a temporary file beside it, renamed over it.

``dedup``, ``filter``, ``report`` and ``export`` never leave a half-written file where the
user asked for one, nor destroy the old one before the new one is complete: they write to
a temporary file in the same directory, flush it to disk, and rename it over the target.
New files get the mode ``open()`` would give them (:func:`new_file_mode`), not
``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def new_file_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp's 0600 is for secrets, not datasets)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new temporary file in ``path``'s directory (descriptor, path), with the usual mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, Path(tmp)


@contextlib.contextmanager
def replacing(
    path: str | os.PathLike[str], *, binary: bool = False, newline: str | None = "\n"
) -> Iterator[IO[Any]]:
    """A file to write ``path``'s new content to: renamed over ``path`` (after an fsync)
    when the block ends, removed when it raises, so ``path`` is never half-written.

    Text (UTF-8, lines ending in ``newline``) unless ``binary``.
    """
    target = Path(path)
    fd, tmp = temporary_beside(target)
    try:
        if binary:
            out: IO[Any] = os.fdopen(fd, "wb")
        else:
            out = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

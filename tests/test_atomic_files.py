"""Output files are written whole or not at all, with the mode ``open()`` would give them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from selfinstruct_async.outputs.atomic_files import new_file_mode, replacing
from selfinstruct_async.outputs.dedup import deduplicate_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), replacing(target) as out:
        out.write("half of the new con")
        raise RuntimeError("disk went away")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_finished_write_replaces_the_file_with_the_mode_open_would_give(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.txt"
    old_umask = os.umask(0o027)
    try:
        with replacing(target, newline="") as out:
            out.write("a\r\nb\n")
        with replacing(tmp_path / "out.bin", binary=True) as raw:
            raw.write(b"\x00\x01")
        expected = new_file_mode()
    finally:
        os.umask(old_umask)
    assert expected == 0o640
    assert target.read_bytes() == b"a\r\nb\n"  # newline="" writes line ends as given
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01"
    assert _mode(target) == _mode(tmp_path / "out.bin") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "out.txt"]


def test_dedup_output_is_readable_like_any_dataset_not_private(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Write a poem.\nSummarize the text.\n", encoding="utf-8")
    old_umask = os.umask(0o022)
    try:
        deduplicate_file(source, tmp_path / "kept.txt")
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "kept.txt") == 0o644
    assert (tmp_path / "kept.txt").read_text(encoding="utf-8").splitlines() == [
        "Write a poem.",
        "Summarize the text.",
    ]

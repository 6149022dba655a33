"""The progress display: plain lines when not a terminal, rich rows on one, same figures."""

from __future__ import annotations

import copy
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import anyio
import pytest
from rich.console import Console

from selfinstruct_async import counters as names
from selfinstruct_async.observe.monitor import Sample, summarize
from selfinstruct_async.observe.progress import format_duration, plain_line, show_progress
from tests.test_monitor import STARTED, snapshot

pytestmark = pytest.mark.anyio


class Snapshots:
    """Hands out the given snapshots in order, then cancels the display (the test's stop)."""

    def __init__(self, snapshots: list[dict[str, Any]], scope: anyio.CancelScope) -> None:
        self.snapshots = snapshots
        self.scope = scope
        self.taken = 0

    def __call__(self) -> dict[str, Any]:
        if self.taken == len(self.snapshots) - 1:
            self.scope.cancel()  # the display stops at its next checkpoint, after rendering
        status = copy.deepcopy(self.snapshots[min(self.taken, len(self.snapshots) - 1)])
        self.taken += 1
        return status


async def display(snapshots: list[dict[str, Any]], **kwargs: Any) -> int:
    """Run the display over ``snapshots``; return how many it took."""
    with anyio.CancelScope() as scope:
        source = Snapshots(snapshots, scope)
        await show_progress(source, interval=0, **kwargs)
    return source.taken


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_plain_mode_writes_one_line_per_refresh_with_the_numbers() -> None:
    first = snapshot()
    second = snapshot(accepted=55, in_flight=3)
    second["counters"][names.rejected("instruction", "blacklist")] = 45
    out = NotATerminal()
    assert await display([first, second], stream=out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "accepted 40/100" in lines[0]
    assert "accepted 55/100" in lines[1] and "in flight 3" in lines[1]
    assert "generated 200" in lines[0] and "classified 58" in lines[0]
    assert "instances 170" in lines[0] and "pending 7" in lines[0]
    # 140 + 20 + 4 rejected at the three levels; then 15 more blacklisted instructions.
    assert "rejected 164 (instruction 140, instance 20, task 4)" in lines[0]
    assert "rejected 179 (instruction 155, instance 20, task 4)" in lines[1]


async def test_plain_mode_is_chosen_on_a_terminal_when_forced() -> None:
    out = Terminal()
    await display([snapshot()], stream=out, force_plain=True)
    assert out.getvalue().startswith("accepted 40/100 | ")


async def test_rich_mode_shows_rows_per_stage_with_counts_and_target() -> None:
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=120, color_system=None)
    await display([snapshot(), snapshot(accepted=46)], console=console)
    text = file.getvalue()
    assert "\x1b[" in text  # drawn as a live terminal display, not plain lines
    final = text[text.rfind("accepted 46/100") :]
    rows = {line.split()[0]: line.split()[1:] for line in final.splitlines() if line.strip()}
    assert rows["generate_instructions"] == ["20", "200"]
    assert rows["filter_instructions"] == ["200", "60", "140"]
    assert rows["identify_classification"] == ["50", "58"]
    assert rows["generate_instances"] == ["45", "170"]
    assert rows["filter_instances"] == ["44", "40", "4"]
    assert "instances accepted 150, rejected 20" in final
    assert "rejected 164" in final


async def test_a_terminal_stream_gets_the_rich_display() -> None:
    out = Terminal()
    await display([snapshot()], stream=out)
    assert "filter_instructions" in out.getvalue()
    assert " | " not in out.getvalue()


def test_plain_line_shows_rates_and_eta_once_measured() -> None:
    history = [Sample(STARTED + 100, 65, 14000, 40), Sample(STARTED + 130, 95, 20000, 46)]
    line = plain_line(summarize(snapshot(accepted=46), history))
    assert "rpm 60" in line and "tpm 12000" in line
    assert f"eta {format_duration(54 / 0.2)}" in line and "eta 4m30s" in line


def test_plain_line_without_target_or_rates_says_unlimited_and_unknown() -> None:
    line = plain_line(summarize(snapshot(target=0, stopping=True)))
    assert "accepted 40/unlimited" in line
    assert "rpm ?" in line and "eta ?" in line and line.endswith("stopping")


def test_durations_are_short_and_readable() -> None:
    assert [format_duration(s) for s in (None, 7, 245, 3720)] == ["?", "7s", "4m05s", "1h02m"]


@pytest.fixture
def dead_pipe() -> Iterator[TextIO]:
    """A pipe whose reader left: `selfinstruct run ... 2>&1 >out | head -1` after one line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", encoding="utf-8") as stream:
        yield stream


@pytest.fixture
def closed_terminal() -> Iterator[TextIO]:
    """A terminal whose window closed (or whose ssh session dropped): writes fail with EIO."""
    controller, terminal = os.openpty()
    os.close(controller)
    with open(terminal, "w", encoding="utf-8") as stream:
        yield stream


async def test_plain_lines_to_a_pipe_whose_reader_left_end_the_display_not_the_run(
    dead_pipe: TextIO,
) -> None:
    # Returns (instead of raising EPIPE into the run's task group) at the first failure.
    snapshots = [snapshot(), snapshot(accepted=41), snapshot(accepted=42)]
    assert await display(snapshots, stream=dead_pipe) == 1
    # Pointed at /dev/null, so the interpreter's flush at exit does not complain either.
    assert os.fstat(dead_pipe.fileno()).st_rdev == os.stat(os.devnull).st_rdev


async def test_a_closed_terminal_ends_the_rich_display_and_restores_the_std_streams(
    closed_terminal: TextIO,
) -> None:
    before = (sys.stdout, sys.stderr)
    console = Console(file=closed_terminal, force_terminal=True, width=100)
    assert await display([snapshot(), snapshot(accepted=41)], console=console) == 1
    assert (sys.stdout, sys.stderr) == before  # the live display's redirection undone
    assert console.file is closed_terminal  # the caller's console is given its file back

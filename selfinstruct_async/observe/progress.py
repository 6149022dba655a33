"""Progress of a running generation on the terminal: rich rows on a TTY, plain lines otherwise.

Both forms show the same :func:`selfinstruct_async.observe.monitor.summarize` figures: tasks per
stage, accepted against the target, requests and tokens per minute, rejections, ETA.
The display only reads status snapshots; it refreshes every ``interval`` seconds until
cancelled. It never stops a run: when its stream fails (the reader of a pipe went away,
the terminal closed), the display ends quietly and the run goes on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TextIO, cast

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .. import counters as names
from .logs import silence_broken_stream
from .monitor import RateHistory, summarize

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _rate(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def _target(summary: Mapping[str, Any]) -> str:
    return str(summary["target"]) if summary["target"] > 0 else "unlimited"


def _rejected_total(summary: Mapping[str, Any]) -> int:
    return int(sum(info["rejected"] for info in summary["acceptance"].values()))


def plain_line(summary: Mapping[str, Any]) -> str:
    """One log line with every figure of the display."""
    stages = summary["stages"]
    acceptance = summary["acceptance"]
    rates = summary["rates"]
    rejected = ", ".join(
        f"{level} {int(info['rejected'])}" for level, info in acceptance.items() if info["rejected"]
    )
    parts = [
        f"accepted {summary['accepted']}/{_target(summary)}",
        f"generated {int(stages[names.GENERATE_INSTRUCTIONS]['items'])}",
        f"filtered {int(stages[names.FILTER_INSTRUCTIONS]['items'])}",
        f"classified {int(stages[names.IDENTIFY_CLASSIFICATION]['items'])}",
        f"instances {int(stages[names.GENERATE_INSTANCES]['items'])}",
        f"pending {summary['pending']}",
        f"in flight {summary['in_flight']}",
        f"rpm {_rate(rates['requests_per_minute'])}",
        f"tpm {_rate(rates['tokens_per_minute'])}",
        f"rejected {_rejected_total(summary)}" + (f" ({rejected})" if rejected else ""),
        f"eta {format_duration(summary['eta_seconds'])}",
    ]
    if summary["stopping"]:
        parts.append("stopping")
    return " | ".join(parts)


def render(summary: Mapping[str, Any]) -> Group:
    """The rich form: a bar towards the target, one row per stage, then rates and ETA."""
    stages = summary["stages"]
    acceptance = summary["acceptance"]
    rates = summary["rates"]
    target = summary["target"]
    header = Text.assemble(
        ("accepted ", "bold"),
        (f"{summary['accepted']}/{_target(summary)}", "bold green"),
        f"   eta {format_duration(summary['eta_seconds'])}",
        ("   stopping" if summary["stopping"] else "", "bold yellow"),
    )
    bar = ProgressBar(
        total=float(max(target, 1)), completed=float(min(summary["accepted"], target))
    )
    table = Table(box=None, pad_edge=False)
    table.add_column("stage")
    table.add_column("requests", justify="right")
    table.add_column("items", justify="right")
    table.add_column("accepted", justify="right")
    table.add_column("rejected", justify="right")
    # The filter stages, with the level whose rejections they show.
    levels = {names.FILTER_INSTRUCTIONS: "instruction", names.FILTER_INSTANCES: "task"}
    for name, info in stages.items():
        level = levels.get(name)
        table.add_row(
            name,
            str(int(info["requests"])) if "requests" in info else "",
            str(int(info["items"])),
            str(int(info["accepted"])) if "accepted" in info else "",
            str(int(acceptance[level]["rejected"])) if level else "",
        )
    instance = acceptance["instance"]
    footer = Text(
        f"instances accepted {int(instance['accepted'])}, rejected {int(instance['rejected'])}"
        f"   pending {summary['pending']}   in flight {summary['in_flight']}"
        f"   rpm {_rate(rates['requests_per_minute'])}   tpm {_rate(rates['tokens_per_minute'])}"
        f"   rejected {_rejected_total(summary)}"
    )
    parts: list[Any] = [header]
    if target > 0:
        parts.append(bar)
    parts += [table, footer]
    return Group(*parts)


async def show_progress(
    status: StatusFn,
    *,
    interval: float = 5.0,
    stream: TextIO | None = None,
    force_plain: bool = False,
    console: Console | None = None,
) -> None:
    """Show progress until cancelled: rich on a terminal, a plain line per ``interval`` else.

    ``stream`` defaults to standard error. ``console`` forces the rich form on that console
    (tests render to a ``Console(file=StringIO(), force_terminal=True)``).
    """
    out = _Guarded(stream if stream is not None else sys.stderr)
    history = RateHistory()
    rich = console is not None or (not force_plain and out.isatty())
    if not rich:
        while not out.failed:
            snapshot = status()
            history.observe(snapshot)
            out.write(plain_line(summarize(snapshot, history, window=history.window)) + "\n")
            out.flush()
            if not out.failed:
                await anyio.sleep(interval)
        return
    if console is None:
        console = Console(file=out.stream)
    # Rich writes through a guard too, so that its state stays consistent when the stream
    # fails; the caller's console gets its own file back at the end.
    original = console.file
    guard = _Guarded(cast(TextIO, original))
    console.file = cast(TextIO, guard)

    def current() -> Group:
        snapshot = status()
        history.observe(snapshot)
        return render(summarize(snapshot, history, window=history.window))

    # No auto-refresh thread: the loop below is the only writer, at its own refresh rate.
    live = Live(current(), console=console, auto_refresh=False, transient=False)
    try:
        live.start(refresh=True)
        while not guard.failed:
            await anyio.sleep(interval)
            live.update(current(), refresh=True)
    finally:
        live.stop()  # synchronous: restores the cursor even when cancelled
        console.file = original


class _Guarded:
    """A text stream that goes quiet at its first failure instead of raising into the run.

    OSError: EPIPE from a pipe whose reader left, EIO from a closed terminal, ENOSPC...;
    ValueError: the stream object was closed. The failed stream is pointed at /dev/null
    (:func:`silence_broken_stream`), so that nothing complains about it at exit either.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failed: BaseException | None = None

    def write(self, text: str) -> int:
        self._guard(partial(self.stream.write, text))
        return len(text)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def _guard(self, operation: Callable[[], object]) -> None:
        if self.failed is not None:
            return
        try:
            operation()
        except BlockingIOError:
            pass  # a non-blocking stream that is full for now: lose this refresh only
        except (OSError, ValueError) as error:
            self.failed = error
            silence_broken_stream(self.stream)
            log.debug("progress display stopped: its stream failed (%s)", error)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding... of the stream
        return getattr(self.stream, name)

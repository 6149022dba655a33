"""``selfinstruct filter``: the run's instruction filter chain over a file of instructions.

For plugin authors and for anyone tuning filter settings: see what each filter says about
instructions of your own, without a model or a run directory. The chain is built exactly
as ``selfinstruct run`` builds it (installed plugins, ``plugins.disabled``,
``[filters.<name>]`` settings, ``filters.on_error``), from the same ``--config`` file and
``SELFINSTRUCT_*`` variables. Lines are judged in file order and each accepted line joins
the pool, so the similarity filter compares a line with the seeds (``--seeds``, as for
``run``; the classification seeds only in a classification-only configuration) and with
every earlier accepted line, as the pipeline does with the instructions it accepts.

The input is JSONL (objects with a string ``instruction`` field, so seed files and task
records work) or plain text, one instruction per line with surrounding whitespace ignored.
Blank lines are not instructions and are skipped. ``--format auto`` goes by the file's
extension (``.jsonl``, ``.ndjson``, ``.txt``), else by its first non-blank line (JSONL when
it starts with ``{``). Each instruction gets one JSON line in ``--out``: its line number,
the instruction, ``accepted``, and the rejecting ``filter`` and its ``reason`` (``null``
when accepted). ``--out`` is written to a temporary file beside it and renamed into place,
so a failure leaves no half-written file; it may be neither the input itself nor one of a
run directory's own files.

Exit status: 0 done; 2 the input cannot be read (the message names ``IN:line`` and the
field) or ``--only``/``--disable`` names no instruction filter; 1 any other error
(configuration, seeds, plugins, the output refused or not writable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio

from .checkpoint.run_files import refuse_run_file, refuse_same_file
from .config import PRESETS, Config, load_config
from .errors import FilterInputError, UnknownFilterError
from .filters import FilterChain
from .outputs.atomic_files import replacing
from .outputs.dedup import instruction_field
from .plugins import Plugins, make_plugin_manager
from .seeds import load_seed_tasks, resolve_seeds

Format = Literal["jsonl", "text"]
FORMAT_CHOICES = ("auto", "jsonl", "text")
EXIT_OK, EXIT_BAD_INPUT = 0, 2
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Line:
    """One instruction of the input and the line it is on (1-based)."""

    number: int
    instruction: str


@dataclass(frozen=True, slots=True)
class LineVerdict:
    """What the chain said about one line; ``filter`` is None when it was accepted."""

    line: int
    instruction: str
    filter: str | None = None
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.filter is None

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "instruction": self.instruction,
            "accepted": self.accepted,
            "filter": self.filter,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FilterFileResult:
    """What ``filter_file`` did; ``rejected_by_filter`` has every filter run, in order."""

    source: str
    out: str
    format: Format
    seeds: str
    seed_instructions: int
    instructions: int
    accepted: int
    rejected_by_filter: Mapping[str, int]
    seconds: float

    @property
    def rejected(self) -> int:
        return self.instructions - self.accepted

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.source,
            "out": self.out,
            "format": self.format,
            "seeds": self.seeds,
            "seed_instructions": self.seed_instructions,
            "instructions": self.instructions,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "filters": list(self.rejected_by_filter),
            "rejected_by_filter": dict(self.rejected_by_filter),
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        out = [
            f"{self.source} ({self.format}, {self.instructions} instructions): "
            f"{self.accepted} accepted, {self.rejected} rejected -> {self.out}",
            f"compared with {self.seed_instructions} seed instructions from {self.seeds}",
            "rejected by filter, in chain order:",
        ]
        width = max((len(name) for name in self.rejected_by_filter), default=0)
        out += [f"  {name:<{width}}  {n:>8d}" for name, n in self.rejected_by_filter.items()]
        return out


# ---------------------------------------------------------------- reading


def _decoded_lines(path: str) -> list[tuple[int, str]]:
    """The file's lines (1-based, without line endings); a byte that is not UTF-8 names
    its line, since a line number is what the user needs to fix it."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FilterInputError(path, None, error.strerror or str(error)) from error
    lines: list[tuple[int, str]] = []
    # Split on \n only: str.splitlines also breaks at U+2028 and friends, and the numbers
    # would no longer match what an editor shows.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as error:
            raise FilterInputError(
                path,
                number,
                f"not UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})",
            ) from None
        if number == 1:
            text = text.removeprefix(_BOM)
        lines.append((number, text))
    return lines


def _detect(path: str, lines: Sequence[tuple[int, str]]) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".txt":
        return "text"
    first = next((text.lstrip() for _, text in lines if text.strip()), "")
    return "jsonl" if first.startswith("{") else "text"


def _instruction(path: str, number: int, text: str) -> str:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise FilterInputError(
            path, number, f"invalid JSON at column {error.colno}: {error.msg}"
        ) from None
    try:
        return instruction_field(obj)
    except ValueError as error:
        raise FilterInputError(path, number, str(error)) from None


def read_instructions(path: str | os.PathLike[str], fmt: str = "auto") -> tuple[Format, list[Line]]:
    """The instructions of ``path`` in file order; raises :class:`FilterInputError`."""
    name = os.fspath(path)
    lines = _decoded_lines(name)
    chosen: Format = "jsonl" if fmt == "jsonl" else "text"
    if fmt == "auto":
        chosen = _detect(name, lines)
    found: list[Line] = []
    for number, text in lines:
        if not text.strip():
            continue
        if chosen == "jsonl":
            found.append(Line(number, _instruction(name, number, text)))
        else:
            found.append(Line(number, text.strip()))
    return chosen, found


# ---------------------------------------------------------------- the chain


def build_chain(config: Config) -> tuple[FilterChain, Plugins]:
    """The instruction filter chain ``selfinstruct run`` would use with ``config``."""
    plugins = Plugins(make_plugin_manager(config.plugins.disabled))
    chain = plugins.build_filter_chain(
        config.filters.settings,
        config.filters.on_error,
        allow_unfiltered=config.filters.allow_unfiltered,
    )
    return chain, plugins


def _split_names(values: Iterable[str] | None) -> list[str]:
    """``--only a,b --only c`` -> ``[a, b, c]``."""
    return [n.strip() for value in values or () for n in value.split(",") if n.strip()]


def select_filters(
    chain: FilterChain,
    plugins: Plugins,
    only: Sequence[str] = (),
    disable: Sequence[str] = (),
) -> FilterChain:
    """The instruction filters of ``chain`` named by ``only`` (all when empty), minus
    ``disable``; a name that is no instruction filter raises :class:`UnknownFilterError`."""
    present = [f.name for f in chain.instruction_filters]
    for flag, names in (("--only", only), ("--disable", disable)):
        for name in names:
            if name not in present:
                raise UnknownFilterError(_unknown(flag, name, present, plugins))
    kept = [
        f
        for f in chain.instruction_filters
        if (not only or f.name in only) and f.name not in disable
    ]
    return FilterChain(kept, (), on_error=chain.on_error)


def _unknown(flag: str, name: str, present: Sequence[str], plugins: Plugins) -> str:
    known = ", ".join(present) or "none"
    instance_filters = {c.name for c in plugins.instance_filter_classes()}
    if name in instance_filters:
        return (
            f"{flag} {name!r} is an instance filter; this command runs the instruction "
            f"filters: {known}"
        )
    if name in getattr(plugins.pm, "disabled_filters", frozenset()):
        return f"{flag} {name!r} is left out by plugins.disabled; instruction filters: {known}"
    return f"{flag} {name!r} is not an instruction filter; instruction filters: {known}"


async def judge(
    chain: FilterChain, lines: Sequence[Line], pool: Iterable[str] = ()
) -> list[LineVerdict]:
    """Each line's verdict, in order; ``pool`` (the seeds) and every accepted line are
    remembered by the chain before the next line is checked."""
    for instruction in pool:
        chain.remember(instruction)
    verdicts: list[LineVerdict] = []
    for line in lines:
        rejection = await chain.check_instruction(line.instruction)
        if rejection is None:
            chain.remember(line.instruction)
            verdicts.append(LineVerdict(line.number, line.instruction))
        else:
            verdicts.append(
                LineVerdict(line.number, line.instruction, rejection.filter, rejection.reason)
            )
    return verdicts


# ---------------------------------------------------------------- writing


def write_verdicts(path: str | os.PathLike[str], verdicts: Iterable[LineVerdict]) -> None:
    """One JSON line per verdict, to a temporary file beside ``path`` renamed over it."""
    with replacing(path) as out:
        for verdict in verdicts:
            out.write(json.dumps(verdict.to_json(), ensure_ascii=False) + "\n")


def filter_file(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: Config,
    *,
    only: Sequence[str] = (),
    disable: Sequence[str] = (),
    fmt: str = "auto",
) -> FilterFileResult:
    """Judge every instruction of ``source`` with ``config``'s chain; write ``out``.

    Everything that can be refused (the output path, the filter names, the input, the
    seeds) is refused before anything is written.
    """
    start = time.perf_counter()
    refuse_run_file(Path(out), what="the verdicts")
    refuse_same_file(Path(out), Path(source), what="the verdicts")
    chain, plugins = build_chain(config)
    chain = select_filters(chain, plugins, only, disable)
    chosen, lines = read_instructions(source, fmt)
    seeds_file = resolve_seeds(config.run.seeds)
    seeds = load_seed_tasks(seeds_file)
    # As the run does: a classification-only run compares with the classification seeds.
    classification_only = config.generation.classification_only
    pool = [s.instruction for s in seeds if s.is_classification or not classification_only]
    verdicts = anyio.run(partial(judge, chain, lines, pool))
    write_verdicts(out, verdicts)
    rejected = {f.name: 0 for f in chain.instruction_filters}
    for verdict in verdicts:
        if verdict.filter is not None:
            rejected[verdict.filter] = rejected.get(verdict.filter, 0) + 1
    return FilterFileResult(
        source=os.fspath(source),
        out=os.fspath(out),
        format=chosen,
        seeds=str(seeds_file),
        seed_instructions=len(pool),
        instructions=len(verdicts),
        accepted=sum(v.accepted for v in verdicts),
        rejected_by_filter=rejected,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------- command line


def _config(args: argparse.Namespace) -> Config:
    """``--config`` (or ``SELFINSTRUCT_CONFIG``), the environment and ``--seeds``, as ``run``."""
    path = args.config or (
        Path(os.environ["SELFINSTRUCT_CONFIG"]) if os.environ.get("SELFINSTRUCT_CONFIG") else None
    )
    overrides = {"run": {"seeds": args.seeds}} if args.seeds is not None else {}
    return load_config(path, environ=os.environ, overrides=overrides, preset=args.preset)


def run(args: argparse.Namespace) -> int:
    """The ``filter`` sub-command; returns the exit status."""
    config = _config(args)
    try:
        result = filter_file(
            args.input,
            args.out,
            config,
            only=_split_names(args.only),
            disable=_split_names(args.disable),
            fmt=args.format,
        )
    except (FilterInputError, UnknownFilterError) as error:
        print(f"selfinstruct filter: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in result.lines():
            print(line)
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``filter IN --out OUT [--only NAME] [--disable NAME] [--json]``."""
    parser = subparsers.add_parser(
        "filter",
        help="run the instruction filters over a file of instructions, one verdict per line",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("input", metavar="IN", help="JSONL with 'instruction', or text lines")
    parser.add_argument(
        "--out", required=True, metavar="OUT", help="JSONL of verdicts, one per instruction"
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file (as for run)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named preset (as for run)")
    parser.add_argument("--seeds", help="seed tasks JSONL to compare with (as for run)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this instruction filter (repeat, or NAME,NAME)",
    )
    parser.add_argument(
        "--disable",
        action="append",
        metavar="NAME",
        help="leave this instruction filter out (repeat, or NAME,NAME)",
    )
    parser.add_argument(
        "--format", choices=FORMAT_CHOICES, default="auto", help="input format (default: auto)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run)

"""Benchmark: this checkout's similarity index against another's, interleaved in one process.

    .venv/bin/python bench/candidate_checks.py --record calls.jsonl        # once, ~1 min
    git archive HEAD~1 | tar -x -C /tmp/old                                # the other code
    .venv/bin/python bench/similarity_ab.py calls.jsonl --against /tmp/old --reps 5

Replays of one recording (``bench/candidate_checks.py --record``) in two processes, one
per version, move by +-30% on this shared 2-core machine from one minute to the next,
more than the change being measured. Here both indexes live in one process: each is built
from the texts added before the first query (not timed), then the recorded calls are
replayed in blocks of 100, alternately on each index (old first on even blocks, new
first on odd ones), timing ``first_above`` and ``add`` in thread CPU time. Both versions
see the same load at nearly the same moments. Prints, per repetition and as the median of
``--reps``, microseconds per ``first_above`` and per ``add``, and fails (exit status 1) if
either version's verdict differs from the recording.

The other checkout's ``selfinstruct_async/similarity`` package is copied to a temporary
directory and imported as ``similarity_other`` (its one import from outside the package,
``..errors``, pointed at this checkout's), so only the similarity code differs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfinstruct_async import similarity as this_similarity  # noqa: E402

Call = tuple[str, str, bool]
_BLOCK = 100


def load_other(checkout: Path, scratch: Path) -> ModuleType:
    """The similarity package of another checkout, importable beside this one."""
    source = checkout / "selfinstruct_async" / "similarity"
    if not source.is_dir():
        raise SystemExit(f"{source}: no similarity package there")
    target = scratch / "similarity_other"
    shutil.copytree(source, target)
    for path in target.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("from ..errors import", "from selfinstruct_async.errors import"),
            encoding="utf-8",
        )
    sys.path.insert(0, str(scratch))
    return importlib.import_module("similarity_other")


def load_calls(path: Path) -> list[Call]:
    calls = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            if row["op"] != "modality":
                calls.append((str(row["op"]), str(row["text"]), bool(row["verdict"])))
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path}:{number}: not a recorded call ({e!r})") from None
    return calls


def _replay_block(index: Any, block: list[Call], spent: dict[str, float]) -> int:
    """Replay one block on one index; returns the verdicts different from the recording."""
    clock = time.thread_time
    wrong = 0
    k = 0
    while k < len(block):
        op = block[k][0]
        end = k
        while end < len(block) and block[end][0] == op:
            end += 1
        start = clock()
        if op == "add":
            for _, text, _ in block[k:end]:
                index.add(text)
        else:
            hits = [index.first_above(text) is not None for _, text, _ in block[k:end]]
        spent[op] += clock() - start
        if op != "add":
            wrong += sum(h != c[2] for h, c in zip(hits, block[k:end], strict=True))
        k = end
    return wrong


def run(calls: list[Call], packages: dict[str, ModuleType], reps: int) -> int:
    first = next((k for k, c in enumerate(calls) if c[0] == "query"), len(calls))
    rest = calls[first:]
    queries = sum(c[0] == "query" for c in rest)
    adds = len(rest) - queries
    per: dict[str, dict[str, list[float]]] = {n: {"query": [], "add": []} for n in packages}
    wrong = dict.fromkeys(packages, 0)
    names = list(packages)
    for rep in range(reps):
        indexes = {n: p.SimilarityIndex("rouge") for n, p in packages.items()}
        for index in indexes.values():
            index.extend(text for _, text, _ in calls[:first])
        spent = {n: {"query": 0.0, "add": 0.0} for n in packages}
        for b, start in enumerate(range(0, len(rest), _BLOCK)):
            for name in names if b % 2 == 0 else names[::-1]:
                block = rest[start : start + _BLOCK]
                wrong[name] += _replay_block(indexes[name], block, spent[name])
        for n in packages:
            per[n]["query"].append(spent[n]["query"] / max(queries, 1) * 1e6)
            per[n]["add"].append(spent[n]["add"] / max(adds, 1) * 1e6)
        print(
            f"  rep {rep}: "
            + "; ".join(
                f"{n}: first_above {per[n]['query'][-1]:.1f} us, add {per[n]['add'][-1]:.1f} us"
                for n in names
            ),
            flush=True,
        )
    medians = {n: {op: statistics.median(v) for op, v in per[n].items()} for n in names}
    old, new = medians[names[0]], medians[names[1]]
    print(
        f"median of {reps}: first_above {names[0]} {old['query']:.1f} us, {names[1]} "
        f"{new['query']:.1f} us ({100 * (new['query'] / old['query'] - 1):+.1f}%); add "
        f"{names[0]} {old['add']:.1f} us, {names[1]} {new['add']:.1f} us "
        f"({100 * (new['add'] / old['add'] - 1):+.1f}%); {queries} queries, {adds} adds a rep; "
        f"verdicts different from the recording: {wrong}"
    )
    return 1 if any(wrong.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("calls", type=Path, help="a file from candidate_checks.py --record")
    parser.add_argument("--against", type=Path, required=True, help="the other checkout")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    calls = load_calls(args.calls)
    with tempfile.TemporaryDirectory() as scratch:
        other = load_other(args.against, Path(scratch))
        packages = {"other": other, "this": this_similarity}
        return run(calls, packages, max(1, args.reps))


if __name__ == "__main__":
    raise SystemExit(main())

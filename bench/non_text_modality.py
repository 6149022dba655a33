"""Benchmark: precision and recall of the ``non_text_modality`` filter on labelled sets.

Run ``.venv/bin/python bench/non_text_modality.py`` (a second or two). It reads the labelled
development set ``tests/data/non_text_modality/dev.jsonl`` and, when present, the held-out
set ``heldout.jsonl`` next to it (written by someone who had not seen the filter). Each line
is ``{"instruction": ..., "needs_non_text": true|false, "why": ...}``; "positive" means the
task needs a non-text modality, so precision is the share of rejected instructions that
should have been rejected and recall the share of those that were. It prints the counts,
precision, recall and every disagreement with the filter's reason, then the filter's cost
per instruction. ``--set PATH`` scores another file of the same format; ``--only dev``
scores one set; ``--blind`` prints only the figures of the held-out set, not its
instructions, so that whoever tunes the filter does not learn the unseen cases. Last, how
much scanning the quick paths skip: the share of instructions that name no medium (no noun
scan) and the share of clause starts whose first word rules out every imperative.

Exit status 1 when precision or recall on any set is below ``--bar`` (default 0.9).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))

from selfinstruct_plugins import modality_quick
from selfinstruct_plugins.modality import NonTextModality, _clause_starts, _names_a_medium

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "non_text_modality"


@dataclass(frozen=True)
class Labelled:
    """One instruction with its label, and where it came from for error messages."""

    instruction: str
    needs_non_text: bool
    why: str
    where: str


@dataclass(frozen=True)
class Score:
    """The confusion counts of one set and the disagreements behind them."""

    tp: int
    fp: int
    fn: int
    tn: int
    false_positives: tuple[tuple[Labelled, str], ...]
    false_negatives: tuple[Labelled, ...]

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load(path: Path) -> list[Labelled]:
    """The labelled lines of ``path``; a bad line is an error naming file, line and field."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        instruction, label = data.get("instruction"), data.get("needs_non_text")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{where}: instruction: expected a non-empty string")
        if not isinstance(label, bool):
            raise ValueError(f"{where}: needs_non_text: expected true or false")
        why = data.get("why", "")
        rows.append(Labelled(instruction, label, why if isinstance(why, str) else "", where))
    return rows


def score(rows: list[Labelled], f: NonTextModality | None = None) -> Score:
    f = f or NonTextModality()
    tp = fp = fn = tn = 0
    fps: list[tuple[Labelled, str]] = []
    fns: list[Labelled] = []
    for row in rows:
        rejection = f.check(row.instruction)
        if rejection is not None and row.needs_non_text:
            tp += 1
        elif rejection is not None:
            fp += 1
            fps.append((row, rejection.reason))
        elif row.needs_non_text:
            fn += 1
            fns.append(row)
        else:
            tn += 1
    return Score(tp, fp, fn, tn, tuple(fps), tuple(fns))


def report(name: str, rows: list[Labelled], *, show_cases: bool = True) -> Score:
    s = score(rows)
    positives = sum(r.needs_non_text for r in rows)
    print(
        f"{name}: {len(rows)} instructions ({positives} need a non-text modality, "
        f"{len(rows) - positives} do not)\n"
        f"  tp {s.tp}  fp {s.fp}  fn {s.fn}  tn {s.tn}  "
        f"precision {s.precision:.3f}  recall {s.recall:.3f}"
    )
    if not show_cases:
        return s
    for row, reason in s.false_positives:
        print(f"  rejected, but text-only: {row.instruction!r} [{reason}] ({row.why})")
    for row in s.false_negatives:
        print(f"  let through, but needs:  {row.instruction!r} ({row.why})")
    return s


def cost(rows: list[Labelled], repeat: int = 20) -> float:
    """Microseconds per instruction, best of ``repeat`` passes."""
    f = NonTextModality()
    texts = [r.instruction for r in rows]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            f.check(text)
        best = min(best, time.perf_counter() - start)
    return best / len(texts) * 1e6


def skipped(rows: list[Labelled]) -> str:
    """How often the quick paths rule a scan out, as a line to print."""
    texts = [r.instruction for r in rows]
    no_noun = sum(not _names_a_medium(text.lower()) for text in texts)
    starts = ruled_out = 0
    for text in texts:
        lowered = text.lower()
        chore = not text.isascii() or modality_quick.household_named(
            modality_quick.letter_runs(lowered)
        )
        for start in _clause_starts(text):
            starts += 1
            word = modality_quick._TOKEN.match(lowered, start)
            ruled_out += (
                text.isascii()
                and not chore
                and not modality_quick._LEAD_ONCE.match(text, start)
                and not modality_quick._for_word(word.group() if word else "")
            )
    return (
        f"quick paths: {no_noun / len(texts):.0%} of instructions name no medium; "
        f"{ruled_out / max(starts, 1):.0%} of {starts} clause starts try no imperative"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, action="append", default=[], help="another JSONL")
    parser.add_argument("--bar", type=float, default=0.9)
    parser.add_argument("--only", action="append", default=[], help="score only this set")
    parser.add_argument("--blind", action="store_true", help="hide held-out instructions")
    args = parser.parse_args()
    sets = [("dev", DATA / "dev.jsonl")]
    heldout = DATA / "heldout.jsonl"
    if heldout.exists():
        sets.append(("heldout", heldout))
    else:
        print(f"(no {heldout}: held-out set not scored)")
    sets += [(str(p), p) for p in args.set]
    if args.only:
        sets = [(name, path) for name, path in sets if name in args.only]
    ok = True
    everything: list[Labelled] = []
    for name, path in sets:
        rows = load(path)
        everything += rows
        s = report(name, rows, show_cases=not (args.blind and name == "heldout"))
        ok = ok and s.precision >= args.bar and s.recall >= args.bar
    print(f"cost: {cost(everything):.1f} microseconds per instruction")
    print(skipped(everything))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

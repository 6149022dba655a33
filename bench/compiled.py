"""Does compiling the hot modules with mypyc make the pipeline cheaper? Part b, both ways.

    .venv/bin/python bench/compiled.py                  # 3 alternating pairs at 2,000 tasks
    .venv/bin/python bench/compiled.py --pairs 5 --tasks 3000

Compiling the request path, the stages, parsing, the ROUGE-L index and the store with mypyc
(mypy's compiler, the way black ships) was the lever left for issue 15's target 1 once
tuning the Python had flattened the profile. This measures it instead of guessing: the
package and plugins are copied into two temporary trees, :data:`MODULES` are compiled in
one of them, and ``bench/pipeline.py --pool 0`` (parts a, b and a2) runs on each tree in
turn, the order alternating from pair to pair so that a drift of the shared machine falls
on both. Printed per run and as medians: part b's requests per CPU-second and its ratio to
the bare loop on b's own requests (a2).

Left out of :data:`MODULES`: modules that define ``@runtime_checkable`` Protocols (mypyc
turns the class into one ``typing`` refuses to check against), and the two whose methods
``bench/pipeline.py`` wraps (``run/pipeline.py``, ``client/transport.py``).

Needs mypy (the ``dev`` extra) and a C compiler with the Python headers; without them it
says what is missing and exits with status 2. Nothing is compiled in the working tree, and
nothing is built for this CPU beyond the throwaway copy (mypyc passes no ``-march``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "selfinstruct_async.client.http"  # one of MODULES

MODULES = (
    "selfinstruct_async/parsing/instances.py",
    "selfinstruct_async/parsing/instructions.py",
    "selfinstruct_async/parsing/markup.py",
    "selfinstruct_async/similarity/index.py",
    "selfinstruct_async/similarity/buckets.py",
    "selfinstruct_async/client/request_json.py",
    "selfinstruct_async/client/openai_format.py",
    "selfinstruct_async/client/recording.py",
    "selfinstruct_async/client/http.py",
    "selfinstruct_async/run/pool.py",
    "selfinstruct_async/run/store_calls.py",
    "selfinstruct_async/checkpoint/transactions.py",
    "selfinstruct_async/checkpoint/store.py",
    "selfinstruct_async/stages/__init__.py",
    "selfinstruct_async/stages/classifier.py",
    "selfinstruct_async/stages/filter_instances.py",
    "selfinstruct_async/stages/filter_instructions.py",
    "selfinstruct_async/stages/generate_instances.py",
    "selfinstruct_async/stages/generate_instructions.py",
    "selfinstruct_async/stages/identify_classification.py",
)


@dataclass(frozen=True)
class Run:
    """Part b of one ``bench/pipeline.py`` run."""

    tree: str
    per_cpu: float  # part b's requests per CPU-second
    vs_a2: float  # that over the bare loop on b's own requests


def copy_tree(into: Path) -> Path:
    """The package, plugins and ``bench/pipeline.py`` under ``into``, as the checkout has them."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "build")
    for part in ("selfinstruct_async", "plugins"):
        shutil.copytree(ROOT / part, into / part, ignore=ignore)
    (into / "bench").mkdir()
    shutil.copy2(ROOT / "bench" / "pipeline.py", into / "bench" / "pipeline.py")
    return into


def compile_modules(tree: Path) -> None:
    """mypyc-compile :data:`MODULES` in place in ``tree``; exit 2 if it cannot."""
    if importlib.util.find_spec("mypyc") is None:
        sys.exit("bench/compiled.py needs mypy's mypyc: install the dev extra (.[dev])")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        sys.exit("bench/compiled.py needs a C compiler (cc, or $CC) and the Python headers")
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *MODULES], cwd=tree, capture_output=True, text=True
    )
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], file=sys.stderr)
        sys.exit(2)


def environment(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}"}


def check_compiled(tree: Path) -> None:
    """Fail unless :data:`PROBE` imports from ``tree`` as an extension module."""
    probe = f"import importlib.util as u; print(u.find_spec({PROBE!r}).origin)"
    origin = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tree,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not origin.endswith(".so") and not origin.endswith(".pyd"):
        sys.exit(f"the compiled tree imports {origin}, not an extension module")


def run_part_b(name: str, tree: Path, tasks: int) -> Run:
    """One ``bench/pipeline.py --pool 0`` run on ``tree``; part b's row."""
    done = subprocess.run(
        [sys.executable, str(tree / "bench" / "pipeline.py"), "--pool", "0", "--tasks", str(tasks)],
        cwd=tree,
        env=environment(tree),
        capture_output=True,
        text=True,
    )
    # Status 1 says a target of bench/pipeline.py failed, and its table is still printed.
    if done.returncode not in (0, 1) or "b pipeline" not in done.stdout:
        sys.exit(f"bench/pipeline.py failed on the {name} tree:\n{done.stderr[-4000:]}")
    # The row ends: req/CPU-s, vs a, vs a2, ms/cand.
    row = next(line for line in done.stdout.splitlines() if line.startswith("b pipeline"))
    fields = row.split()
    return Run(name, float(fields[-4].replace(",", "")), float(fields[-2]))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--pairs", type=int, default=3, help="runs of each tree, alternating")
    p.add_argument("--tasks", type=int, default=2000, help="part b's target")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {
            "interpreted": copy_tree(Path(tmp) / "interpreted"),
            "compiled": copy_tree(Path(tmp) / "compiled"),
        }
        print(f"compiling {len(MODULES)} modules with mypyc ...", flush=True)
        compile_modules(trees["compiled"])
        check_compiled(trees["compiled"])
        runs: list[Run] = []
        for pair in range(args.pairs):
            order = list(trees) if pair % 2 == 0 else list(reversed(trees))
            for name in order:
                run = run_part_b(name, trees[name], args.tasks)
                runs.append(run)
                figures = f"b {run.per_cpu:7,.0f} req/CPU-s  b/a2 {run.vs_a2:.2f}"
                print(f"pair {pair + 1}  {name:12s} {figures}", flush=True)
    print()
    print(f"{'tree':12s} {'b req/CPU-s median (range)':>30s} {'b/a2 median':>12s}")
    for name in trees:
        mine = [r for r in runs if r.tree == name]
        rates = [r.per_cpu for r in mine]
        print(
            f"{name:12s} {statistics.median(rates):>12,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
            f"{'':8s} {statistics.median(r.vs_a2 for r in mine):>12.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

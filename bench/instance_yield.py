"""Instances per task and class labels per classification task, from a real model run.

    .venv/bin/python bench/instance_yield.py [--backend embedded|llama-server] [--target 30]
    .venv/bin/python bench/instance_yield.py --stage [--backend ...] [--tasks 12]
    .venv/bin/python bench/instance_yield.py --report RUN_DIR [RUN_DIR ...]

Runs ``selfinstruct run`` with ``configs/local-demo.toml`` (SmolLM2-135M-Instruct) either on
the embedded backend or against ``python -m llama_cpp.server`` serving the same GGUF on
loopback, then reads the run's ``tasks.jsonl``. The paper's figure to compare with: 82,439
instances for 52,445 instructions (1.57 per task). Extra settings go through
``SELFINSTRUCT_<SECTION>_<KEY>`` variables, as for ``selfinstruct run``.

A small model answers "yes" to every classification question, so a whole run never shows
an input-first prompt. ``--stage`` measures stage 3 alone: held-out seed tasks of both
kinds (their true labels), each prompted, parsed, filtered by the instance filters and
capped as a run does, with the demonstrations a run would use (the held-out tasks are left
out of any seed-based sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Measure the tree this script is in (a checkout of another commit, say), not whatever
# copy of the package the interpreter has installed.
sys.path.insert(0, str(ROOT))
PAPER_INSTANCES_PER_TASK = 82_439 / 52_445


def report(run_dir: Path) -> dict[str, Any]:
    """Figures of one run directory's accepted tasks."""
    tasks = [
        json.loads(line)
        for line in (run_dir / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    counts = [len(t["instances"]) for t in tasks]
    labels = [
        len({i["output"].strip() for i in t["instances"]}) for t in tasks if t["is_classification"]
    ]
    return {
        "run": str(run_dir),
        "tasks": len(tasks),
        "instances": sum(counts),
        "instances_per_task": round(mean(counts), 2) if counts else 0.0,
        "tasks_with_2plus_instances": round(sum(c >= 2 for c in counts) / len(counts), 2)
        if counts
        else 0.0,
        "classification_tasks": len(labels),
        "labels_per_classification_task": round(mean(labels), 2) if labels else 0.0,
        "classification_tasks_with_2plus_labels": round(
            sum(n >= 2 for n in labels) / len(labels), 2
        )
        if labels
        else 0.0,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server() -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible server with the embedded model's GGUF."""
    from selfinstruct_async.client.local import default_model_path

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path())]
    command += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 1)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    ready = threading.Event()

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not ready.wait(timeout=300) or process.poll() is not None:
            raise SystemExit("llama_cpp.server did not start (is the 'server' extra installed?)")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.kill()
        process.wait(timeout=30)


def run_once(backend: str, target: int, out: Path, config: Path) -> float:
    command = [sys.executable, "-m", "selfinstruct_async", "run", "--config", str(config)]
    command += ["--out", str(out), "--target", str(target), "--no-progress"]
    started = time.perf_counter()
    if backend == "llama-server":
        with llama_server() as url:
            command += ["--base-url", url, "--model", "smollm2", "--api", "completions"]
            subprocess.run(command, check=True, cwd=ROOT)
    else:
        subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def held_out(tasks: int) -> tuple[list[Any], list[Any], list[Any]]:
    """``tasks`` classification and ``tasks`` other seed tasks, and the seeds left."""
    from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

    seeds = load_seed_tasks(DEFAULT_SEEDS)
    classification = [s for s in seeds if s.is_classification][::2][:tasks]
    generation = [s for s in seeds if not s.is_classification][::7][:tasks]
    held = {s.id for s in classification + generation}
    return classification, generation, [s for s in seeds if s.id not in held]


async def measure_stage(config: Any, tasks: int) -> dict[str, Any]:
    """Stage 3 and the instance filters over held-out seed tasks, as a run would do them."""
    import random as _random

    from selfinstruct_async.parsing import parse_instances
    from selfinstruct_async.plugins import Plugins, make_plugin_manager
    from selfinstruct_async.prompts import build_instance_prompt
    from selfinstruct_async.run.backends import build_client

    classification, generation, pool = held_out(tasks)
    cfg = config.instances
    if hasattr(cfg, "demonstrations_from"):
        from selfinstruct_async.demonstrations import load_instance_demonstrations
        from selfinstruct_async.seeds import DEFAULT_SEEDS

        pick: Any = load_instance_demonstrations(cfg, pool, DEFAULT_SEEDS).pick
    else:  # the code before issue 14: per-task samples of the seeds
        from selfinstruct_async.prompts import select_instance_demonstrations

        def pick(kind: bool, rng: _random.Random) -> Any:
            return select_instance_demonstrations(pool, kind, rng, cfg.demonstrations)

    chain = Plugins(make_plugin_manager()).build_filter_chain({}, "reject")
    figures: dict[str, Any] = {}
    client = build_client(config)
    try:
        for kind, group in (("classification", classification), ("generation", generation)):
            counts, labels, parsed_counts = [], [], []
            for task in group:
                is_clf = kind == "classification"
                demos = pick(is_clf, _random.Random(f"0:{task.id}"))
                prompt = build_instance_prompt(task.instruction, is_clf, demos)
                answer = await client.complete(prompt.request("generate_instances", cfg))
                parsed = parse_instances(answer.text, is_clf, answer.finish_reason, 50)
                if hasattr(chain, "check_instances"):
                    kept = list(
                        (await chain.check_instances(task.instruction, is_clf, parsed)).kept
                    )
                else:
                    from selfinstruct_async.filters import InstanceContext

                    kept = []
                    for index, instance in enumerate(parsed):
                        context = InstanceContext(task.instruction, is_clf, tuple(parsed), index)
                        if await chain.check_instance(instance, context) is None:
                            kept.append(instance)
                kept = kept[: cfg.max_instances]
                parsed_counts.append(len(parsed))
                counts.append(len(kept))
                labels.append(len({i.output.strip() for i in kept}))
            figures[kind] = {
                "tasks": len(group),
                "parsed_per_task": round(mean(parsed_counts), 2),
                "instances_per_task": round(mean(counts), 2),
                "tasks_with_none": sum(c == 0 for c in counts),
                "tasks_with_2plus": sum(c >= 2 for c in counts),
            }
            if kind == "classification":
                figures[kind]["labels_per_task"] = round(mean(labels), 2)
                figures[kind]["tasks_with_2plus_labels"] = sum(n >= 2 for n in labels)
    finally:
        await client.aclose()
    return figures


def stage_config(backend: str, config_path: Path, url: str | None) -> Any:
    from selfinstruct_async.config import load_config

    overrides: dict[str, dict[str, Any]] = {}
    if url:
        overrides["endpoint"] = {"base_url": url, "model": "smollm2", "api": "completions"}
    return load_config(config_path, environ=os.environ, overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "llama-server"], default="embedded")
    parser.add_argument("--target", type=int, default=30)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local-demo.toml")
    parser.add_argument("--out", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--report", type=Path, nargs="+", help="only report these run dirs")
    parser.add_argument("--stage", action="store_true", help="measure stage 3 alone")
    parser.add_argument("--tasks", type=int, default=12, help="--stage: tasks of each kind")
    args = parser.parse_args()
    if args.stage:
        import anyio

        started = time.perf_counter()
        if args.backend == "llama-server":
            with llama_server() as url:
                config = stage_config(args.backend, args.config, url)
                figures = anyio.run(measure_stage, config, args.tasks)
        else:
            config = stage_config(args.backend, args.config, None)
            figures = anyio.run(measure_stage, config, args.tasks)
        figures.update(backend=args.backend, seconds=round(time.perf_counter() - started, 1))
        print(json.dumps(figures))
        return
    if args.report:
        for run_dir in args.report:
            print(json.dumps(report(run_dir)))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="instance-yield-")) / "run"
    seconds = run_once(args.backend, args.target, out, args.config)
    figures = report(out)
    figures.update(backend=args.backend, seconds=round(seconds, 1))
    figures["paper_instances_per_task"] = round(PAPER_INSTANCES_PER_TASK, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

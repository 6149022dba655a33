"""Instances per task and class labels per classification task, from a real model run.

    .venv/bin/python bench/instance_yield.py [--backend embedded|llama-server] [--target 30]
    .venv/bin/python bench/instance_yield.py --report RUN_DIR [RUN_DIR ...]

Runs ``selfinstruct run`` with ``configs/local-demo.toml`` (SmolLM2-135M-Instruct) either on
the embedded backend or against ``python -m llama_cpp.server`` serving the same GGUF on
loopback, then reads the run's ``tasks.jsonl``. The paper's figure to compare with: 82,439
instances for 52,445 instructions (1.57 per task). Extra settings go through
``SELFINSTRUCT_<SECTION>_<KEY>`` variables, as for ``selfinstruct run``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "llama-server"], default="embedded")
    parser.add_argument("--target", type=int, default=30)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local-demo.toml")
    parser.add_argument("--out", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--report", type=Path, nargs="+", help="only report these run dirs")
    args = parser.parse_args()
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

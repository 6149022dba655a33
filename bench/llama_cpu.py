"""Speed of the installed llama.cpp build on the embedded model: prompt and generation.

    .venv/bin/python bench/llama_cpu.py [--runs 3]

Prints prompt-processing and generation tokens per second (median of the runs) and which
instruction sets the libraries use, so a portable build (scripts/build-llama.sh) can be
compared with a native one: install a native wheel into a directory with
``pip install --no-deps --target DIR WHEEL`` and run this with ``PYTHONPATH=DIR``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from selfinstruct_async.client.local import default_model_path

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank. "


def instruction_sets(lib_dir: Path) -> str:
    cpu = next(p for p in lib_dir.glob("libggml-cpu*.so*") if not p.is_symlink())
    code = subprocess.run(["objdump", "-d", str(cpu)], capture_output=True, text=True).stdout
    found = [name for name, marker in (("avx2", "%ymm"), ("avx512", "%zmm"), ("amx", "tileloadd"))
             if marker in code]  # fmt: skip
    return "+".join(found) or "sse"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    # Any: llama-cpp-python leaves reset() untyped and types create_completion() as maybe a
    # stream, which it is not without stream=True.
    model: Any = Llama(str(default_model_path()), n_ctx=2048, n_threads=args.threads, verbose=False)
    prompt_rates, generation_rates = [], []
    for run in range(args.runs):
        prompt = f"Run {run}. " + SENTENCE * 40 + "\nWrite a long story about the fox:"
        model.reset()
        started = time.perf_counter()
        first = model.create_completion(prompt, max_tokens=1, temperature=0.0)
        prompt_seconds = time.perf_counter() - started
        prompt_rates.append(first["usage"]["prompt_tokens"] / prompt_seconds)
        model.reset()
        started = time.perf_counter()
        out = model.create_completion(prompt, max_tokens=128, temperature=0.0, stop=[])
        total = time.perf_counter() - started
        generated = out["usage"]["completion_tokens"]
        generation_rates.append(generated / max(total - prompt_seconds, 1e-9))
    print(f"llama.cpp libraries: {lib_dir} ({instruction_sets(lib_dir)})")
    print(f"threads: {args.threads}, model: {default_model_path().name}")
    for label, rates in (("prompt processing", prompt_rates), ("generation", generation_rates)):
        median = statistics.median(rates)
        print(f"{label + ':':<19}{median:8.1f} tokens/s (median of {args.runs})")


if __name__ == "__main__":
    main()

"""The real model: SmolLM2-135M-Instruct in-process, and behind llama.cpp's own OpenAI server.

These tests need the ``local`` and ``server`` extras (``make test`` installs them); without
them they skip, saying what is missing.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.http import build_http_client
from selfinstruct_async.client.local import default_model_path
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.errors import ContextLengthExceeded
from selfinstruct_async.run.runner import run

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the 'local' extra)")

# A real model on 2 cores: minutes, not seconds, when the machine is busy.
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

SMALL = {
    "generation": {"max_tokens": 120, "workers": 1},
    "classification": {"workers": 1, "demonstrations": 8},
    "instances": {"max_tokens": 100, "workers": 1, "demonstrations": 2},
}


def tiny_config(out: Path, target: int, **extra: dict[str, Any]) -> Config:
    return load_config(
        overrides={"run": {"out": str(out), "target": target, "seed": 1}, **SMALL, **extra}
    )


def read_tasks(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]


@pytest.mark.anyio
async def test_embedded_model_runs_every_stage_and_filters_its_repetitions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Chat mode: the chat-tuned 135M model tends to repeat the list it was shown.
    summary = await run(tiny_config(out, target=2, local={"api": "chat"}))
    tasks = read_tasks(out)
    assert summary.accepted == 2 == len(tasks)
    assert all(task["instances"] for task in tasks)
    with Store(out, read_only=True) as store:
        counters = store.counters()
        usage = store.get_meta("usage")
    assert counters["requests.identify_classification"] >= 2
    assert counters["requests.generate_instances"] >= 2
    # A 135M model copies its demonstrations; the similarity filter is what stops that.
    assert counters.get("rejected.instruction.rouge_similarity", 0) >= 1
    assert usage["stages"]["generate_instructions"]["completion_tokens"] > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` on loopback with the same GGUF; always killed."""
    pytest.importorskip(
        "uvicorn", reason="llama.cpp's server is not installed (the 'server' extra)"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = threading.Event()
    log: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()  # the process ended: stop waiting, the check below reports it

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not ready.wait(timeout=180) or process.poll() is not None:
            pytest.fail("llama_cpp.server did not start:\n" + "".join(log[-20:]))
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["completions", "chat"])
async def test_pipeline_over_http_against_llama_cpp_server(
    llama_server: str, tmp_path: Path, api: str
) -> None:
    out = tmp_path / "run"
    config = tiny_config(
        out, target=1, endpoint={"base_url": llama_server, "model": "smollm2", "api": api}
    )
    summary = await run(config)
    assert summary.accepted == 1 == len(read_tasks(out))
    with Store(out, read_only=True) as store:
        usage = store.get_meta("usage")["stages"]
        ledger = store.db.execute("SELECT stage, completion FROM ledger").fetchall()
    # Usage accounting is what the server reported, answer by answer.
    for stage in ("generate_instructions", "identify_classification", "generate_instances"):
        reported = [json.loads(c)["usage"] for s, c in ledger if s == stage]
        assert reported, stage
        assert usage[stage]["prompt_tokens"] >= sum(u["prompt_tokens"] for u in reported)
        assert usage[stage]["completion_tokens"] >= sum(u["completion_tokens"] for u in reported)
        assert usage[stage]["requests"] >= len(reported)


@pytest.mark.anyio
async def test_a_prompt_longer_than_the_servers_context_is_refused_once_without_a_retry(
    llama_server: str,
) -> None:
    config = load_config(overrides={"endpoint": {"base_url": llama_server, "model": "smollm2"}})
    usage = UsageMeter()
    async with build_http_client(config.endpoints, usage) as client:
        huge = "word " * 4000  # far beyond the server's 2048-token context
        with pytest.raises(ContextLengthExceeded) as raised:
            await client.complete(CompletionRequest(stage="overflow", prompt=huge, max_tokens=8))
    # The server's own numbers say the prompt alone is too long: no smaller max_tokens helps.
    assert "maximum context length is 2048 tokens" in str(raised.value)
    assert usage.stage("overflow").retries == 0


# ---------------------------------------------------------------- issue 16: scores, formats


@pytest.mark.anyio
async def test_embedded_logprobs_rank_the_token_it_generates_first() -> None:
    from selfinstruct_async.client.local import LocalClient
    from selfinstruct_async.config import LocalConfig

    client = LocalClient(LocalConfig(), UsageMeter())
    try:
        prompt = "Task: Name the capital of France.\nAnswer:"
        answer = await client.complete(
            CompletionRequest(stage="s", prompt=prompt, max_tokens=1, logprobs=5)
        )
    finally:
        await client.aclose()
    [first] = answer.choices[0].top_logprobs
    assert len(first) == 5 and all(lp <= 0 for lp in first.values())
    # Greedy decoding picks the most likely token: the one the logprobs rank first.
    assert max(first, key=lambda token: first[token]) == answer.text


@pytest.mark.anyio
async def test_embedded_likelihood_scores_label_the_seeds_with_balanced_accuracy_0_8() -> None:
    from selfinstruct_async.classification_scoring import (
        LikelihoodPrompts,
        calibrate,
        likelihood_seed_scores,
    )
    from selfinstruct_async.client.local import LocalClient
    from selfinstruct_async.config import LocalConfig
    from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

    seeds = load_seed_tasks(DEFAULT_SEEDS)
    client = LocalClient(LocalConfig(), UsageMeter())
    try:
        prompts = LikelihoodPrompts.from_seeds(seeds, 8)
        scores = await likelihood_seed_scores(client, prompts, seeds)
    finally:
        await client.aclose()
    labels = [s.is_classification for s in seeds]
    calibration = calibrate(scores, labels, key="k", model="smollm2", method="likelihood")
    # Leave-one-out over the seeds; the model's parsed answer is "yes" to every task (0.5).
    assert calibration.balanced_accuracy >= 0.8
    assert 0.05 < calibration.yes_share < 0.4


@pytest.mark.anyio
async def test_embedded_run_scores_classification_and_reports_it(tmp_path: Path) -> None:
    from selfinstruct_async.classification_scoring import classifier_summary

    out = tmp_path / "run"
    summary = await run(tiny_config(out, target=2))
    assert summary.accepted == 2
    classifier = classifier_summary(out)
    assert classifier["method"] == "likelihood" and classifier["seeds"] == 175
    assert classifier["balanced_accuracy"] >= 0.8


def _matches_instance_format(text: str, is_classification: bool) -> bool:
    line = r"[^\n]+"
    more = r"(?:\n(?!Ex|In|Ou|Ta|Cl)[^\n]+)*"
    if is_classification:
        block = rf"Class label: {line}(?:\nInput: {line}{more})*"
    else:
        block = rf"Example \d\d?\nInput: {line}{more}\nOutput: {line}{more}"
    return re.fullmatch(rf"{block}(?:\n{block})*\n?\n?(?:Task:)?", text) is not None


@pytest.mark.anyio
@pytest.mark.parametrize("is_classification", [False, True])
async def test_embedded_answers_keep_the_instance_format_under_the_grammar(
    is_classification: bool,
) -> None:
    from selfinstruct_async.answer_formats import INPUT_FIRST, OUTPUT_FIRST
    from selfinstruct_async.client.local import LocalClient
    from selfinstruct_async.config import LocalConfig
    from selfinstruct_async.demonstrations import load_instance_demonstrations
    from selfinstruct_async.parsing import parse_instances
    from selfinstruct_async.prompts import build_instance_prompt
    from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

    config = load_config()
    seeds = load_seed_tasks(DEFAULT_SEEDS)
    demos = load_instance_demonstrations(config.instances, seeds, DEFAULT_SEEDS)
    task = next(s for s in seeds if s.is_classification == is_classification)
    prompt = build_instance_prompt(
        task.instruction, is_classification, demos.pick(is_classification, random.Random(0))
    )
    request = prompt.request("generate_instances", config.instances)
    fmt = OUTPUT_FIRST if is_classification else INPUT_FIRST
    client = LocalClient(LocalConfig(), UsageMeter())
    try:
        answer = await client.complete(replace(request, max_tokens=120, answer_format=fmt))
    finally:
        await client.aclose()
    text = answer.text
    if answer.finish_reason == "length":  # cut mid-line: judge the complete lines
        text = text.rsplit("\n", 1)[0]
    assert _matches_instance_format(text, is_classification), answer.text
    assert parse_instances(answer.text, is_classification, answer.finish_reason, 50)


@pytest.mark.anyio
async def test_llama_cpp_server_takes_the_grammar_and_returns_answer_logprobs(
    llama_server: str,
) -> None:
    from selfinstruct_async.answer_formats import YES_NO
    from selfinstruct_async.classification_scoring import answer_score

    config = load_config(
        overrides={
            "endpoint": {
                "base_url": llama_server,
                "model": "smollm2",
                "constrained_decoding": "llama.cpp",
            }
        }
    )
    prompt = "Task: Classify the review as positive or negative.\nIs the output a fixed label?"
    async with build_http_client(config.endpoints, UsageMeter()) as client:
        constrained = await client.complete(
            CompletionRequest(stage="s", prompt=prompt, max_tokens=8, answer_format=YES_NO)
        )
        scored = await client.complete(
            CompletionRequest(stage="s", prompt=prompt, max_tokens=1, logprobs=5)
        )
    assert constrained.text.strip() in ("Yes", "No")
    assert scored.choices[0].top_logprobs and len(scored.choices[0].top_logprobs[0]) >= 2
    assert answer_score(scored) is not None


@pytest.mark.anyio
async def test_echoed_prompt_logprobs_over_http_score_as_the_embedded_model_or_are_refused(
    llama_server: str,
) -> None:
    from selfinstruct_async.client.local import LocalClient
    from selfinstruct_async.client.prompt_scoring import (
        CompletionScorer,
        MisalignedPromptLogprobs,
    )
    from selfinstruct_async.config import LocalConfig

    prefix = "Below is a numbered list of classification tasks.\n1. Classify the tweet.\n2."
    texts = [" Decide whether the review is positive.\n", " Write a poem about rain.\n"]
    config = load_config(overrides={"endpoint": {"base_url": llama_server, "model": "smollm2"}})
    async with build_http_client(config.endpoints, UsageMeter()) as http:
        scorer = CompletionScorer(http.complete, workers=1)
        try:
            await scorer.check_alignment()
        except MisalignedPromptLogprobs:
            # llama-cpp-python 0.3.x: each prompt token gets the next position's logprob.
            # Confirm it is that, not our offsets: the echoed texts score far below the
            # embedded model's figures for the same GGUF.
            aligned = False
        else:
            aligned = True
        over_http = await scorer.score_texts(prefix, texts)
    local = LocalClient(LocalConfig(), UsageMeter())
    try:
        embedded = await local.score_texts(prefix, texts)
    finally:
        await local.aclose()
    assert [s.tokens for s in over_http] == [s.tokens for s in embedded]
    for a, b in zip(over_http, embedded, strict=True):
        if aligned:  # the same GGUF both ways: the same probabilities, up to rounding
            assert a.logprob == pytest.approx(b.logprob, abs=0.05 * b.tokens)
        else:
            assert a.logprob < b.logprob - 2.0 * b.tokens

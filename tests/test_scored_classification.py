"""Stage 2 scored in a whole run over HTTP to the simulated provider: by likelihood (a
backend that scores texts, like the embedded model), by answer logprobs, or parsed as text
when the backend gives no probabilities; calibrated once per model and checkpoint."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.classification_scoring import (
    LIKELIHOOD_HEADERS,
    META_KEY,
    classifier_summary,
)
from selfinstruct_async.client.prompt_scoring import ALIGNMENT_PROBE
from selfinstruct_async.client.protocol import (
    Choice,
    Completion,
    CompletionRequest,
    LLMClient,
    TextScore,
)
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.outputs.stats import compute_stats, render_text
from selfinstruct_async.prompts import DEFAULT_TEMPLATES as T
from selfinstruct_async.run.backends import build_client
from selfinstruct_async.run.runner import run
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

SEED_LABELS = {s.instruction: s.is_classification for s in load_seed_tasks(DEFAULT_SEEDS)}
# What the fake model "knows": the seeds' labels, and a keyword rule for new tasks.
_KEYWORDS = re.compile(r"\b(classify|categori[sz]e|sentiment|true or false|whether)\b", re.I)


def truth(instruction: str) -> bool:
    text = instruction.strip()
    return SEED_LABELS.get(text, _KEYWORDS.search(text) is not None)


def last_task(prompt: str) -> str:
    marker = f"{T.task_label}: "
    return prompt[prompt.rfind(marker) + len(marker) :].split("\n", 1)[0].strip()


@dataclass
class ScoringModel:
    """The simulator's answers over real HTTP, plus what a scoring backend adds.

    Its classification text is always " Yes", like a small model's; only its scores know.
    ``texts`` scores like the embedded model (``score_texts``); ``logprobs`` adds top
    logprobs to classification answers, like an endpoint that returns them.
    """

    inner: LLMClient
    model_path: Path
    logprobs: bool = False
    scored: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    async def complete(self, request: CompletionRequest) -> Completion:
        if T.classification_header not in request.prompt:
            return await self.inner.complete(request)
        tops: tuple[dict[str, float], ...] = ()
        if self.logprobs and request.logprobs:
            yes = 0.7 if truth(last_task(request.prompt)) else 0.3
            self.scored.append(last_task(request.prompt))
            tops = ({" Yes": math.log(yes), " No": math.log(1 - yes)},)
        return Completion((Choice(" Yes", "stop", tops),), model="fake")

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class TextScoringModel(ScoringModel):
    async def score_texts(self, prefix: str, texts: Sequence[str]) -> list[TextScore]:
        yes_list = prefix.startswith(LIKELIHOOD_HEADERS[0])
        self.prefixes.append(prefix)
        self.scored.extend(t.strip() for t in texts)
        return [TextScore(-4.0 if truth(t) != yes_list else -2.0, 4) for t in texts]


def make_config(
    handle: SimulatorHandle,
    out: Path,
    target: int,
    allow_mixed: bool = False,
    **classification: Any,
) -> Config:
    return load_config(
        overrides={
            "run": {"out": str(out), "target": target, "allow_mixed": allow_mixed},
            "endpoint": {"base_url": handle.base_url, "model": "sim"},
            "classification": classification,
        }
    )


def tasks(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]


@pytest.fixture
async def provider(make_simulator: MakeSimulator) -> SimulatorHandle:
    return await make_simulator(responder=None)


async def test_likelihood_scores_label_tasks_and_calibrate_once_per_model(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    model_file = tmp_path / "model-a.gguf"
    model_file.write_bytes(b"a" * 10)
    out = tmp_path / "run"
    config = make_config(provider, out, target=8)
    model = TextScoringModel(build_client(config), model_file)
    await run(config, client=model)
    done = tasks(out)
    assert len(done) == 8
    # Every label follows the scores, although the model's text always says yes.
    assert [t["is_classification"] for t in done] == [truth(t["instruction"]) for t in done]
    assert any(t["is_classification"] for t in done) or not any(
        truth(t["instruction"]) for t in done
    )
    assert set(SEED_LABELS) <= set(model.scored)  # calibrated on every seed
    summary = classifier_summary(out)
    assert summary["method"] == "likelihood" and summary["model"].startswith("model-a.gguf")
    assert summary["balanced_accuracy"] == 1.0
    assert summary["yes_share"] == pytest.approx(sum(SEED_LABELS.values()) / len(SEED_LABELS))
    # `selfinstruct stats` shows the same classifier, in text and in JSON.
    stats = compute_stats(out)
    assert stats.to_json()["classifier"] == summary
    assert "balanced accuracy 1.000" in render_text(stats)

    # Resumed with the same model: the checkpoint's calibration is used, no seed rescored.
    resumed = TextScoringModel(build_client(config), model_file)
    await run(make_config(provider, out, target=12), client=resumed)
    assert len(tasks(out)) == 12
    assert not set(SEED_LABELS) & set(resumed.scored)

    # Another model file: calibrated again (as soon as a new task needs a label; the
    # pending ones may all have theirs), both calibrations kept.
    other_file = tmp_path / "model-b.gguf"
    other_file.write_bytes(b"b" * 20)
    other = TextScoringModel(build_client(config), other_file)
    await run(make_config(provider, out, target=24, allow_mixed=True), client=other)
    assert set(SEED_LABELS) <= set(other.scored)
    with Store(out, read_only=True) as store:
        saved = store.get_meta(META_KEY)
    assert len(saved["calibrations"]) == 2
    assert classifier_summary(out)["model"].startswith("model-b.gguf")


async def test_answer_logprobs_decide_where_the_text_always_says_yes(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = make_config(provider, out, target=8, scoring="answer", workers=2)
    model = ScoringModel(build_client(config), tmp_path / "none", logprobs=True)
    await run(config, client=model)
    done = tasks(out)
    assert [t["is_classification"] for t in done] == [truth(t["instruction"]) for t in done]
    summary = classifier_summary(out)
    assert summary["method"] == "answer" and summary["balanced_accuracy"] == 1.0
    assert set(SEED_LABELS) <= set(model.scored)


async def test_without_logprobs_one_probe_and_the_answers_are_parsed(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = make_config(provider, out, target=6, scoring="answer")
    model = ScoringModel(build_client(config), tmp_path / "none", logprobs=False)
    await run(config, client=model)
    done = tasks(out)
    assert len(done) == 6 and all(t["is_classification"] for t in done)  # the text: " Yes"
    assert classifier_summary(out) == {"scored": False, "method": "text"}
    with Store(out, read_only=True) as store:
        counters = store.counters()
    asked = counters[names.requests(names.IDENTIFY_CLASSIFICATION)]
    answered = sum(counters.get(names.classification(a), 0) for a in (True, False, None))
    assert asked == answered + 1  # one probe for the whole run, then the tasks' questions


def test_the_paper_preset_parses_text_and_the_default_scores() -> None:
    assert load_config(preset="paper").classification.scoring == "text"
    assert load_config().classification.scoring == "auto"


async def test_scored_requests_ask_for_one_token_with_top_logprobs(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    seen: list[CompletionRequest] = []

    @dataclass
    class Recording(ScoringModel):
        async def complete(self, request: CompletionRequest) -> Completion:
            if T.classification_header in request.prompt:
                seen.append(request)
            return await ScoringModel.complete(self, request)

    out = tmp_path / "run"
    config = make_config(provider, out, target=2, scoring="answer", top_logprobs=7)
    await run(config, client=Recording(build_client(config), tmp_path / "none", logprobs=True))
    assert seen and all(r.max_tokens == 1 and r.logprobs == 7 for r in seen)
    assert all(replace(r, logprobs=0).answer_format == "" for r in seen)


@dataclass
class EchoingModel(ScoringModel):
    """A completions endpoint that echoes the prompt with its tokens' logprobs (``echo``).

    The text after a likelihood prefix ("N.") gets a higher logprob after the list of its
    own kind; everything else, the prefix included, gets logprobs that would swamp the
    score if the scorer read them.
    """

    echoes: int = 0
    counting_logprob: float = -0.1  # per token of the alignment probe's continuation

    async def complete(self, request: CompletionRequest) -> Completion:
        if not request.echo:
            return await ScoringModel.complete(self, request)
        self.echoes += 1
        prompt = request.prompt
        probe, _ = ALIGNMENT_PROBE
        if prompt.startswith(probe):
            aligned = ((0, None), (len(probe), self.counting_logprob))
            return Completion((Choice(prompt, "length", token_logprobs=aligned),), model="fake")
        head, _, last = prompt.rstrip("\n").rpartition("\n")
        start = len(head) + 1 + last.index(".") + 1
        instruction = prompt[start:].strip()
        yes_list = prompt.startswith(LIKELIHOOD_HEADERS[0])
        value = -4.0 if truth(instruction) != yes_list else -2.0
        self.scored.append(instruction)
        tokens = ((0, None), (1, -50.0 if yes_list else -0.1), (start, value), (len(prompt), -9.0))
        return Completion((Choice(prompt + " x", "length", token_logprobs=tokens),), model="fake")


async def test_a_completions_endpoint_scores_by_the_prompt_logprobs_it_echoes(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = make_config(provider, out, target=6, scoring="likelihood")
    model = EchoingModel(build_client(config), tmp_path / "none")
    await run(config, client=model)
    done = tasks(out)
    assert len(done) == 6
    assert [t["is_classification"] for t in done] == [truth(t["instruction"]) for t in done]
    assert set(SEED_LABELS) <= set(model.scored)
    summary = classifier_summary(out)
    assert summary["method"] == "likelihood"
    assert summary["balanced_accuracy"] == 1.0
    with Store(out, read_only=True) as store:
        counters = store.counters()
    # Every scoring request went through the run's request path and was counted once.
    assert counters[names.requests(names.IDENTIFY_CLASSIFICATION)] == model.echoes

    # Resumed: the calibration is read back, and no seed is scored again.
    again = EchoingModel(build_client(config), tmp_path / "none")
    await run(make_config(provider, out, target=8, scoring="likelihood"), client=again)
    assert len(tasks(out)) == 8
    assert not set(SEED_LABELS) & set(again.scored)


async def test_an_endpoint_that_ignores_echo_has_its_answers_scored_instead(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = make_config(provider, out, target=4, scoring="likelihood")
    model = ScoringModel(build_client(config), tmp_path / "none", logprobs=True)
    await run(config, client=model)
    done = tasks(out)
    assert [t["is_classification"] for t in done] == [truth(t["instruction"]) for t in done]
    assert classifier_summary(out)["method"] == "answer"


async def test_echoed_logprobs_that_do_not_score_their_own_tokens_are_not_used(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    # llama-cpp-python's server gives each prompt token the next position's probability.
    out = tmp_path / "run"
    config = make_config(provider, out, target=4, scoring="likelihood")
    model = EchoingModel(build_client(config), tmp_path / "none", logprobs=True)
    model.counting_logprob = -11.0
    await run(config, client=model)
    assert model.echoes == 1  # the alignment probe, then answer scoring
    assert classifier_summary(out)["method"] == "answer"

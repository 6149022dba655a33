"""Classification-only runs ask the model for classification tasks that state their labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct_async.client.protocol import Completion, CompletionRequest, LLMClient
from selfinstruct_async.config import load_config
from selfinstruct_async.prompts import DEFAULT_TEMPLATES, build_instruction_prompt
from selfinstruct_async.run.backends import build_client
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.responder import respond
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

T = DEFAULT_TEMPLATES


def test_classification_only_prompt_uses_the_classification_header() -> None:
    prompt = build_instruction_prompt(
        ["Is the review positive or negative?"], classification_only=True
    )

    assert prompt.text.startswith(T.instruction_classification_header)
    assert T.instruction_header not in prompt.text
    assert prompt.text.endswith("1. Is the review positive or negative?\n2.")


def test_the_default_prompt_keeps_the_general_header() -> None:
    prompt = build_instruction_prompt(["Write a poem."])

    assert prompt.text.startswith(T.instruction_header)
    assert T.instruction_classification_header not in prompt.text


def test_the_classification_header_asks_for_labels_and_differs_from_the_general_one() -> None:
    header = T.instruction_classification_header.lower()

    assert "classification" in header and "label" in header
    assert header != T.instruction_header.lower()


def test_the_classification_header_is_replaceable_like_the_rest() -> None:
    import dataclasses

    custom = dataclasses.replace(T, instruction_classification_header="LABEL TASKS:\n")

    assert build_instruction_prompt(["a"], custom, classification_only=True).text == (
        "LABEL TASKS:\n1. a\n2."
    )


def test_the_simulator_answers_the_classification_only_prompt_with_a_list() -> None:
    prompt = build_instruction_prompt(
        ["Is the review positive or negative?"], classification_only=True
    )

    text, _ = respond(prompt.text, prompt.system, chat=False, max_tokens=2000, seed=1)

    assert "\n3. " in text


class Recorder:
    """Keeps every request a run sends, then passes it on."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.requests: list[CompletionRequest] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("classification_only", [True, False])
async def test_a_run_heads_every_instruction_prompt_by_its_mode(
    make_simulator: MakeSimulator, tmp_path: Path, classification_only: bool
) -> None:
    provider: SimulatorHandle = await make_simulator(responder=None)
    config = load_config(
        overrides={
            "run": {"out": str(tmp_path / "run"), "target": 4},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
            "generation": {"classification_only": classification_only},
        }
    )
    client = Recorder(build_client(config))
    try:
        summary = await run(config, client=client)
    finally:
        await client.aclose()

    prompts = [r.prompt for r in client.requests if r.stage == "generate_instructions"]
    expected = T.instruction_classification_header if classification_only else T.instruction_header
    assert summary.reached_target
    assert prompts and all(p.startswith(expected) for p in prompts)

"""The paper-mode parsers read answers as the original Self-Instruct code does, and the stages
pick a parser, a truncation rule and the capitalisation from the settings.

The first half feeds the parsers answers in the original's own format (field names such as
``Paragraph:`` and ``Sentence:``, ``Example n`` blocks, ``Class label:`` pieces) and asserts
what the original makes of them, quirks included. The second half feeds the two generation
stages a scripted model's answer and asserts what they pass on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import anyio
import pluggy
import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.protocol import Choice, Completion, CompletionRequest
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.paper_parsers import parse_instances_paper, parse_instructions_paper
from selfinstruct_async.records import Candidate, Instance, PendingTask
from selfinstruct_async.run.retry_queue import RetryQueue
from selfinstruct_async.run.runner import check_inputs, open_context
from selfinstruct_async.stages.generate_instances import generate_instances
from selfinstruct_async.stages.generate_instructions import generate_instructions

# --- instructions -------------------------------------------------------------------------


def test_paper_instructions_split_on_newline_number_dot_space_and_capitalize() -> None:
    text = (
        " write a haiku about   the sea.\n10. Explain how NASA names its missions.\n"
        "11 . Give three tips\n   for a job interview.\n12.Not a separator"
    )

    assert parse_instructions_paper(text, "stop") == [
        "Write a haiku about the sea.",
        "Explain how nasa names its missions.",  # str.capitalize lower-cases the rest
        "Give three tips for a job interview. 12.not a separator",
    ]


def test_paper_instructions_keep_case_without_capitalize() -> None:
    text = " Explain how NASA names its missions.\n10. Name a river."
    assert parse_instructions_paper(text, "stop", capitalize=False) == [
        "Explain how NASA names its missions.",
        "Name a river.",
    ]


def test_paper_instructions_drop_the_whole_response_on_length() -> None:
    text = " First task here.\n10. Second task here.\n11. Third ta"

    assert parse_instructions_paper(text, "length") == []
    assert parse_instructions_paper(text, "length", on_truncated="drop_last") == [
        "First task here.",
        "Second task here.",
    ]


def test_paper_instructions_skip_empty_pieces_and_read_no_chat_habits() -> None:
    text = "Sure! Here are more tasks:\n9. **Plan a trip.**\n10.  \n11. Name a colour."

    # Unlike the tolerant parser, the preamble is an item and markdown stays.
    assert parse_instructions_paper(text, None) == [
        "Sure! here are more tasks:",
        "**plan a trip.**",
        "Name a colour.",
    ]


# --- input-first instances ----------------------------------------------------------------


def test_paper_input_first_keeps_field_names_and_removes_only_input() -> None:
    text = (
        "Example 1\nParagraph: Dr. No is the sixth novel by the English author Ian Fleming.\n"
        "Output: English\n"
        "Example 2\nInput: 3, 1, 2\nOutput: 1, 2, 3\n"
        "Example 3\nSentence 1: It rains.\nSentence 2: The ground is wet.\nOutput: Cause"
    )

    assert parse_instances_paper(text, False, "stop") == [
        Instance(
            "Paragraph: Dr. No is the sixth novel by the English author Ian Fleming.", "English"
        ),
        Instance("3, 1, 2", "1, 2, 3"),
        Instance("Sentence 1: It rains.\nSentence 2: The ground is wet.", "Cause"),
    ]


def test_paper_input_first_without_examples_reads_one_pair_cut_at_the_next_input() -> None:
    text = "Input: a\nOutput: b\nInput: c\nOutput: d"
    assert parse_instances_paper(text, False, "stop") == [Instance("a", "b")]


def test_paper_input_first_output_only_task_and_numbered_outputs() -> None:
    text = "Example 1\nOutput: Lying leg raises.\nExample 2\nOutput 2: Planks."
    assert parse_instances_paper(text, False, None) == [
        Instance("", "Lying leg raises."),
        Instance("", "Planks."),
    ]


def test_paper_input_first_quirks_are_kept() -> None:
    # Text before "Example 1" is an instance of its own, a piece without "Output:" is all
    # output, and "Example" splits even without a number.
    text = "Here you go.\nExample 1\nJust some text.\nExample\nInput: q\nOutput: r"

    assert parse_instances_paper(text, False, "stop") == [
        Instance("", "Here you go."),
        Instance("", "Just some text."),
        Instance("q", "r"),
    ]


def test_paper_input_first_reads_nothing_without_example_or_output() -> None:
    assert parse_instances_paper("I cannot help with that.", False, "stop") == []


def test_paper_input_first_drops_the_last_instance_on_length() -> None:
    text = "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: d is cu"
    assert parse_instances_paper(text, False, "length") == [Instance("a", "b")]


def test_paper_parser_reads_the_prompts_empty_input_marker_as_empty() -> None:
    text = "Example 1\nInput: <none>\nOutput: A short poem."
    assert parse_instances_paper(text, False, "stop") == [Instance("", "A short poem.")]


# --- output-first instances ---------------------------------------------------------------


def test_paper_output_first_label_line_then_input_with_field_names() -> None:
    text = (
        "Class label: Mixed\nSentence: I like the food but the service is slow.\n"
        "Class label: Unsupport\nDocument: Rates fell.\nClaim: Loans will rise.\n"
        "Class label: Montreal"
    )

    assert parse_instances_paper(text, True, "stop") == [
        Instance("Sentence: I like the food but the service is slow.", "Mixed"),
        Instance("Document: Rates fell.\nClaim: Loans will rise.", "Unsupport"),
        Instance("", "Montreal"),
    ]


def test_paper_output_first_ignores_text_before_the_first_label_and_needs_one() -> None:
    assert parse_instances_paper("Sure:\nClass label: A\nEmail: hi", True, None) == [
        Instance("Email: hi", "A")
    ]
    assert parse_instances_paper("Input: x\nOutput: y", True, None) == []


def test_paper_output_first_reads_each_input_line_of_a_label() -> None:
    # This project's prompt writes "Input:" before each input of a label.
    text = "Class label: Positive\nInput: I love it.\nInput: Great!\nClass label: Negative"
    assert parse_instances_paper(text, True, "stop") == [
        Instance("I love it.", "Positive"),
        Instance("Great!", "Positive"),
        Instance("", "Negative"),
    ]


def test_paper_output_first_drops_the_last_instance_on_length() -> None:
    text = "Class label: A\nSentence: one\nClass label: B\nSentence: tw"
    assert parse_instances_paper(text, True, "length") == [Instance("Sentence: one", "A")]


# --- the stages ---------------------------------------------------------------------------


class ScriptedModel:
    """Answers the first request with a scripted text, then holds the stage still."""

    def __init__(self, text: str, finish: str) -> None:
        self.answer: tuple[str, str] | None = (text, finish)
        self.waiting = anyio.Event()

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.answer is not None:
            text, finish = self.answer
            self.answer = None
            return Completion((Choice(text, finish),))
        self.waiting.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


def _config(out: Path, section: str, settings: dict[str, Any]) -> Config:
    return load_config(overrides={"run": {"out": str(out), "target": 5}, section: settings})


async def instruction_stage(
    out: Path, pm: pluggy.PluginManager, text: str, finish: str, **generation: Any
) -> list[str]:
    """What the instruction stage makes of one answer to its (8-demonstration) prompt."""
    config = _config(out, "generation", generation)
    model = ScriptedModel(text, finish)
    with Store(out) as store:
        ctx, _ = await open_context(
            config, check_inputs(config, pm, None), store, model, UsageMeter()
        )
        send, receive = anyio.create_memory_object_stream[Candidate](100)
        async with anyio.create_task_group() as tg:
            tg.start_soon(generate_instructions, ctx, send)
            await model.waiting.wait()
            tg.cancel_scope.cancel()
        items: list[str] = []
        with receive:
            while True:
                try:
                    items.append(receive.receive_nowait().instruction)
                except (anyio.WouldBlock, anyio.EndOfStream):
                    return items


async def instance_stage(
    out: Path,
    pm: pluggy.PluginManager,
    text: str,
    finish: str,
    is_classification: bool,
    **instances: Any,
) -> list[Instance]:
    """What the instance stage passes on to the filters for one task and one answer."""
    config = _config(out, "instances", instances)
    model = ScriptedModel(text, finish)
    task = PendingTask("si-1-0", "Do the task.", is_classification)
    with Store(out) as store:
        store.add_pending(task, 1)
        ctx, _ = await open_context(
            config, check_inputs(config, pm, None), store, model, UsageMeter()
        )
        tasks_in, tasks = anyio.create_memory_object_stream[PendingTask](1)
        parsed_out, parsed = anyio.create_memory_object_stream[
            tuple[PendingTask, tuple[Instance, ...]]
        ](1)
        retry: RetryQueue[PendingTask] = RetryQueue("generate_instances", 60.0, _never)
        async with tasks_in:
            await tasks_in.send(task)
        async with anyio.create_task_group() as tg:
            tg.start_soon(generate_instances, ctx, tasks, parsed_out, retry)
            async with parsed:
                _, result = await parsed.receive()
    return list(result)


def _never() -> NoReturn:
    raise AssertionError("no task is sent back for another try")


ANSWER = " Write a haiku about NASA rockets.\n10. Explain photosynthesis to a child.\n11. List thr"


@pytest.mark.anyio
async def test_the_instruction_stage_drops_a_truncated_response_by_default(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    assert await instruction_stage(tmp_path / "r", pm, ANSWER, "length") == []


@pytest.mark.anyio
@pytest.mark.parametrize("parser", ["tolerant", "paper"])
async def test_the_instruction_stage_drops_only_the_cut_item_with_drop_last(
    tmp_path: Path, pm: pluggy.PluginManager, parser: str
) -> None:
    items = await instruction_stage(
        tmp_path / "r", pm, ANSWER, "length", on_truncated="drop_last", parser=parser
    )
    assert items == ["Write a haiku about NASA rockets.", "Explain photosynthesis to a child."]


@pytest.mark.anyio
async def test_the_instruction_stage_capitalizes_when_asked(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    items = await instruction_stage(tmp_path / "r", pm, ANSWER, "stop", capitalize=True)
    assert items[:2] == ["Write a haiku about nasa rockets.", "Explain photosynthesis to a child."]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("parser", "expected"),
    [
        ("tolerant", ["Plan a trip.", "Name a colour."]),
        ("paper", ["Sure! here are more tasks:", "**plan a trip.**", "Name a colour."]),
    ],
)
async def test_the_instruction_stage_uses_the_configured_parser(
    tmp_path: Path, pm: pluggy.PluginManager, parser: str, expected: list[str]
) -> None:
    text = "Sure! Here are more tasks:\n9. **Plan a trip.**\n10. Name a colour."
    items = await instruction_stage(
        tmp_path / "r", pm, text, "stop", parser=parser, capitalize=parser == "paper"
    )
    assert items == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("parser", "expected"),
    [
        ("tolerant", [Instance("a", "b"), Instance("", "c")]),
        ("paper", [Instance("a", "b")]),  # no "Example": one pair
    ],
)
async def test_the_instance_stage_uses_the_configured_parser(
    tmp_path: Path, pm: pluggy.PluginManager, parser: str, expected: list[Instance]
) -> None:
    text = "Input: a\nOutput: b\nOutput: c"
    assert await instance_stage(tmp_path / "r", pm, text, "stop", False, parser=parser) == expected


@pytest.mark.anyio
@pytest.mark.parametrize("parser", ["tolerant", "paper"])
async def test_the_instance_stage_passes_every_parsed_instance_to_the_filters(
    tmp_path: Path, pm: pluggy.PluginManager, parser: str
) -> None:
    text = "".join(f"Example {n}\nInput: i{n}\nOutput: o{n}\n" for n in range(1, 13))

    parsed = await instance_stage(
        tmp_path / "r", pm, text, "length", False, parser=parser, max_instances=5
    )

    # Twelve written, the cut-off one dropped; the cap of 5 comes after the filters.
    assert parsed == [Instance(f"i{n}", f"o{n}") for n in range(1, 12)]


@pytest.mark.anyio
async def test_the_instance_stage_keeps_field_names_and_labels_apart(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    text = "Class label: Positive\nSentence: I love it.\nClass label: Negative\nSentence: Awful."
    assert await instance_stage(tmp_path / "r", pm, text, "stop", True) == [
        Instance("Sentence: I love it.", "Positive"),
        Instance("Sentence: Awful.", "Negative"),
    ]


@pytest.mark.timeout(20)
def test_paper_parsers_take_linear_time_on_runs_of_spaces() -> None:
    text = "Input: x\nOutput" + " " * 200_000 + "y\nOutput: z"
    # "Output" without a colon is text: the input runs up to the real "Output:".
    assert parse_instances_paper(text, False, "stop") == [Instance(text[7:-10], "z")]

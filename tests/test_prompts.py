"""The prompt builders: the paper's structure, our wording, replaceable templates."""

from __future__ import annotations

import dataclasses
import random

import pytest

from selfinstruct_async.client.protocol import SAMPLING_PARAMETERS, CompletionRequest
from selfinstruct_async.client.tokens import count_tokens
from selfinstruct_async.config import ClassificationConfig, GenerationConfig, load_config
from selfinstruct_async.prompts import (
    DEFAULT_TEMPLATES,
    build_classification_prompt,
    build_instance_prompt,
    build_instruction_prompt,
    cached_request_tokens,
    select_classification_demonstrations,
    select_instance_demonstrations,
)
from selfinstruct_async.records import Instance, SeedTask
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks


def seed(n: int, instruction: str, given: str, output: str, clf: bool) -> SeedTask:
    return SeedTask(f"t{n}", f"task_{n}", instruction, (Instance(given, output),), clf)


def make_seeds(classification: int = 14, other: int = 30) -> list[SeedTask]:
    tasks = [
        seed(i, f"Decide if review number {i} is positive or negative.", f"Review {i}", "Yes", True)
        for i in range(classification)
    ]
    for i in range(other):
        given = "" if i % 3 == 0 else f"Some text {i}"
        tasks.append(
            seed(100 + i, f"Write tip number {i} for gardeners.", given, f"Tip {i}", False)
        )
    return tasks


def test_instruction_prompt_numbers_demonstrations_and_ends_with_next_number() -> None:
    prompt = build_instruction_prompt(["Write a poem\n about   rain:", "Sort these numbers."])

    lines = prompt.text.splitlines()
    assert lines[-3:] == ["1. Write a poem about rain", "2. Sort these numbers.", "3."]
    assert prompt.text.startswith(DEFAULT_TEMPLATES.instruction_header)
    assert prompt.system == DEFAULT_TEMPLATES.instruction_system


def test_instruction_prompt_stops_at_max_number_for_both_endpoints() -> None:
    prompt = build_instruction_prompt(["a"] * 8, max_number=12)

    assert "\n12." in prompt.stop
    assert "\n\n" in prompt.stop
    assert prompt.stop_for("completions") == prompt.stop
    # A chat answer opens with "Sure!\n\n": a blank-line stop would leave only that preamble.
    assert prompt.stop_for("chat") == ("\n12.",)
    assert len(prompt.stop) <= 4  # the OpenAI API accepts at most four


def test_prompt_wording_is_our_own_not_the_papers() -> None:
    text = build_instruction_prompt(["Do a thing."]).text
    assert "Come up with a series of tasks" not in text
    instances = build_instance_prompt("x", False, make_seeds()[-2:]).text
    assert "Come up with examples for the following tasks" not in instances


def test_templates_can_be_replaced_piece_by_piece() -> None:
    custom = dataclasses.replace(
        DEFAULT_TEMPLATES, instruction_header="TASKS:\n", input_label="Given", empty_input="-"
    )

    assert build_instruction_prompt(["a"], custom).text == "TASKS:\n1. a\n2."
    text = build_instance_prompt("new", False, [seed(1, "t", "", "o", False)], custom).text
    assert "Given: -\nOutput: o" in text


def test_classification_prompt_answers_each_demonstration_and_asks_about_the_new_task() -> None:
    prompt = build_classification_prompt(
        "Is this email spam?", [("Sort the list.", False), ("Tell if it rains.", True)]
    )

    question = DEFAULT_TEMPLATES.classification_question
    assert f"Task: Sort the list.\n{question} No\n" in prompt.text
    assert f"Task: Tell if it rains.\n{question} Yes\n" in prompt.text
    assert prompt.text.endswith(f"Task: Is this email spam?\n{question}")
    assert "\n" in prompt.stop
    assert prompt.stop_for("chat") == ()


def test_classification_demonstrations_are_balanced_and_deterministic() -> None:
    seeds = make_seeds(classification=14, other=30)

    demos = select_classification_demonstrations(seeds)

    assert len(demos) == 24
    assert sum(label for _, label in demos) == 12
    assert demos == select_classification_demonstrations(list(seeds))
    assert len({text for text, _ in demos}) == 24
    # Spread over the seeds rather than taken from the top of the file.
    assert max(int(t.split()[3]) for t, label in demos if not label) >= 20


def test_classification_demonstrations_fill_up_with_the_other_kind_when_one_is_short() -> None:
    demos = select_classification_demonstrations(make_seeds(classification=5, other=30), k=24)

    assert len(demos) == 24
    assert sum(label for _, label in demos) == 5


def test_classification_demonstrations_do_not_simply_alternate() -> None:
    labels = [label for _, label in select_classification_demonstrations(make_seeds())]
    alternating = all(labels[i] != labels[i + 1] for i in range(len(labels) - 1))
    assert not alternating


def test_input_first_prompt_writes_examples_and_marks_missing_input() -> None:
    demos = [
        seed(1, "Write a haiku.", "", "Rain on the roof", False),
        seed(2, "Sort the numbers.", "3, 1, 2", "1, 2, 3", False),
    ]

    prompt = build_instance_prompt("Summarize   the\ntext.", False, demos, max_instances=5)

    assert "Task: Write a haiku.\nExample 1\nInput: <none>\nOutput: Rain on the roof\n" in (
        prompt.text
    )
    assert "Task: Sort the numbers.\nExample 1\nInput: 3, 1, 2\nOutput: 1, 2, 3\n" in prompt.text
    assert prompt.text.startswith(DEFAULT_TEMPLATES.instance_input_first_header)
    assert prompt.text.endswith("\nTask: Summarize the text.\n")
    assert "Example 6" in prompt.stop
    assert prompt.stop_for("chat") == ("Example 6",)


def test_output_first_prompt_puts_the_label_before_its_inputs() -> None:
    demo = SeedTask(
        "c1",
        "sentiment",
        "Classify the sentiment.",
        (
            Instance("I loved it", "Positive"),
            Instance("Awful", "Negative"),
            Instance("Great", "Positive"),
        ),
        True,
    )

    prompt = build_instance_prompt("Is it spam?", True, [demo])

    assert (
        "Task: Classify the sentiment.\nClass label: Positive\nInput: I loved it\nInput: Great\n"
        "Class label: Negative\nInput: Awful\n"
    ) in prompt.text
    assert prompt.text.startswith(DEFAULT_TEMPLATES.instance_output_first_header)
    assert prompt.text.endswith("\nTask: Is it spam?\n")


def test_instance_demonstrations_match_the_kind_and_depend_only_on_the_rng() -> None:
    seeds = make_seeds()

    picked = select_instance_demonstrations(seeds, False, random.Random(7), k=4)

    assert len(picked) == 4
    assert all(not s.is_classification for s in picked)
    assert picked == select_instance_demonstrations(seeds, False, random.Random(7), k=4)
    assert any(not s.instances[0].input for s in picked)
    assert any(s.instances[0].input for s in picked)
    clf = select_instance_demonstrations(seeds, True, random.Random(7), k=4)
    assert len(clf) == 4 and all(s.is_classification for s in clf)


def test_instance_demonstrations_vary_with_the_rng_and_skip_tasks_without_output() -> None:
    seeds = [*make_seeds(), seed(999, "Broken.", "x", "  ", False)]

    draws = {
        tuple(s.id for s in select_instance_demonstrations(seeds, False, random.Random(i)))
        for i in range(20)
    }

    assert len(draws) > 10
    assert all("t999" not in draw for draw in draws)


def test_instance_demonstrations_return_all_when_there_are_few() -> None:
    seeds = make_seeds(classification=2)
    picked = select_instance_demonstrations(seeds, True, random.Random(0), k=4)
    assert sorted(s.id for s in picked) == ["t0", "t1"]


def test_a_request_carries_every_sampling_setting_of_its_stage() -> None:
    settings = GenerationConfig(
        temperature=1.3, top_p=0.25, presence_penalty=-0.5, frequency_penalty=0.75, max_tokens=77
    )
    prompt = build_instruction_prompt([s.instruction for s in make_seeds()[:8]], max_number=9)

    request = prompt.request("generate_instructions", settings)

    assert request.stage == "generate_instructions" and request.max_tokens == 77
    assert request.sampling() == {
        "temperature": 1.3,
        "top_p": 0.25,
        "presence_penalty": -0.5,
        "frequency_penalty": 0.75,
    }
    assert set(request.sampling()) == set(SAMPLING_PARAMETERS)
    assert (request.prompt, request.system) == (prompt.text, prompt.system)
    assert (request.stop, request.chat_stop) == (prompt.stop, prompt.chat_stop)


def test_sampling_settings_a_stage_leaves_out_keep_the_request_defaults() -> None:
    settings = ClassificationConfig(temperature=0.4, max_tokens=3)  # no top_p, no penalties
    prompt = build_instruction_prompt(["Name a colour."], max_number=3)

    request = prompt.request("identify_classification", settings)

    defaults = CompletionRequest(stage="x", prompt="", max_tokens=1).sampling()
    assert request.sampling() == defaults | {"temperature": 0.4}


def test_output_first_prompt_writes_a_task_without_input_as_its_label_alone() -> None:
    demos = [
        SeedTask("c1", "prime", "Is 91 a prime number?", (Instance("", "No"),), True),
        SeedTask(
            "c2",
            "mood",
            "Say if the note is happy or sad.",
            (Instance("Won the cup!", "Happy"), Instance("Lost my keys.", "Sad")),
            True,
        ),
    ]

    text = build_instance_prompt("Is it spam?", True, demos).text

    assert "Task: Is 91 a prime number?\nClass label: No\n\nTask: Say if" in text
    assert "Class label: Happy\nInput: Won the cup!\nClass label: Sad\nInput: Lost my keys.\n" in (
        text
    )
    assert DEFAULT_TEMPLATES.empty_input not in text


def test_instruction_prompt_asks_for_classification_tasks_only_when_told() -> None:
    general = build_instruction_prompt(["Sort the list."])
    classification = build_instruction_prompt(["Sort the list."], classification_only=True)

    assert general.text.startswith(DEFAULT_TEMPLATES.instruction_header)
    assert classification.text.startswith(DEFAULT_TEMPLATES.instruction_classification_header)
    assert general.text.split("\n", 1)[1] == classification.text.split("\n", 1)[1]
    assert (general.stop, general.system) == (classification.stop, classification.system)


# -- a classification prefix the providers' prompt caches serve (issue 17) ---------------


def _classification_prefix_tokens(k: int) -> tuple[int, int]:
    """(tokens every classification prompt shares, tokens of one whole prompt) with k demos."""
    demos = select_classification_demonstrations(load_seed_tasks(DEFAULT_SEEDS), k)
    first = build_classification_prompt("Write a poem about the sea.", demos).text
    second = build_classification_prompt("Is this review positive?", demos).text
    shared = 0
    while shared < min(len(first), len(second)) and first[shared] == second[shared]:
        shared += 1
    return count_tokens(first[:shared]), count_tokens(first)


def test_the_default_classification_prefix_is_cacheable_with_room_for_other_tokenizers() -> None:
    shared, whole = _classification_prefix_tokens(ClassificationConfig().demonstrations)
    # Providers cache from 1,024 tokens; a tokenizer counting 10% fewer still gets there.
    assert shared >= 1024 * 1.1
    # Cached at half price in 128-token steps, it costs less than the paper preset's
    # 24 demonstrations, which are below 1,024 tokens and never cached.
    paper_shared, paper_whole = _classification_prefix_tokens(24)
    assert paper_shared < 1024
    assert cached_request_tokens(paper_shared, paper_whole, 0.5) == paper_whole
    assert cached_request_tokens(shared, whole, 0.5) < 0.85 * paper_whole
    # Without a cache discount the longer prompt only costs more.
    assert cached_request_tokens(shared, whole, 1.0) > paper_whole


def test_cached_request_tokens_count_whole_128_token_steps_from_1024() -> None:
    assert cached_request_tokens(1023, 1100, 0.5) == 1100
    assert cached_request_tokens(1100, 1120, 0.5) == 1024 * 0.5 + 96
    assert cached_request_tokens(1300, 1300, 0.1) == pytest.approx(1280 * 0.1 + 20)


def test_the_paper_preset_keeps_the_24_demonstration_classification_prompt() -> None:
    paper = load_config(None, environ={}, preset="paper")
    assert paper.classification.demonstrations == 24
    assert load_config(None, environ={}).classification.demonstrations == 40

"""The simulated model: recognises our prompts, answers them parseably, with realistic flaws."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from difflib import SequenceMatcher

import pytest

from selfinstruct_async.parsing import parse_classification, parse_instances, parse_instructions
from selfinstruct_async.prompts import (
    build_classification_prompt,
    build_instance_prompt,
    build_instruction_prompt,
    select_classification_demonstrations,
    select_instance_demonstrations,
)
from selfinstruct_async.records import Instance, SeedTask
from selfinstruct_async.simulator.responder import respond

BLACKLIST = re.compile(
    r"\b(image|images|graph|graphs|picture|pictures|file|files|map|maps|draw|"
    r"plot|go to)\b",
    re.IGNORECASE,
)


def make_seeds() -> list[SeedTask]:
    def task(n: int, instruction: str, given: str, output: str, clf: bool) -> SeedTask:
        return SeedTask(f"s{n}", f"seed_{n}", instruction, (Instance(given, output),), clf)

    return [
        task(0, "Suggest a healthy breakfast without eggs.", "", "Oatmeal with nuts.", False),
        task(
            1, "What is the relation between the given pairs?", "Day : Night", "Opposites.", False
        ),
        task(2, "Explain the idiom in plain words.", "Break a leg", "Good luck.", False),
        task(3, "Write a haiku about winter mornings.", "", "Frost on the window", False),
        task(4, "Sort the numbers from smallest to largest.", "4, 1, 3", "1, 3, 4", False),
        task(5, "Give three tips for a job interview.", "", "Prepare, listen, ask.", False),
        task(6, "Translate the sentence into Spanish.", "Good morning", "Buenos días", False),
        task(7, "Write a function that reverses a string.", "", "def r(s): return s[::-1]", False),
        task(8, "Plan a three-day trip to Lisbon.", "", "Day 1: Alfama...", False),
        task(
            9,
            "Rewrite the email to sound more polite.",
            "Send it now.",
            "Could you send it?",
            False,
        ),
        task(
            10, "Tell me whether the review is positive or negative.", "Loved it", "Positive", True
        ),
        task(11, "Is the statement true or false?", "Water boils at 50C.", "False", True),
        task(12, "Classify the email as spam or not spam.", "You won $1000!", "Spam", True),
        task(13, "Detect whether the sentence is sarcastic.", "Great, rain again.", "Yes", True),
        task(
            14, "Which category does the news headline belong to?", "Stocks fall", "Business", True
        ),
        task(15, "Decide if the text contains toxic language.", "Have a nice day", "No", True),
    ]


SEEDS = make_seeds()
DEMOS = [s.instruction for s in SEEDS[:8]]


def instruction_answers(chat: bool, runs: int = 200) -> list[tuple[str, str, list[str]]]:
    prompt = build_instruction_prompt(DEMOS)
    answers = []
    for seed in range(runs):
        text, finish = respond(prompt.text, prompt.system, chat=chat, max_tokens=2000, seed=seed)
        answers.append((text, finish, parse_instructions(text, 9, finish)))
    return answers


def test_answers_are_deterministic_and_depend_on_the_seed() -> None:
    prompt = build_instruction_prompt(DEMOS)

    first = respond(prompt.text, prompt.system, chat=True, max_tokens=500, seed=3)

    assert first == respond(prompt.text, prompt.system, chat=True, max_tokens=500, seed=3)
    others = {
        respond(prompt.text, prompt.system, chat=True, max_tokens=500, seed=s) for s in range(5)
    }
    assert len(others) == 5
    assert respond(prompt.text, prompt.system, chat=False, max_tokens=500, seed=3) != first


@pytest.mark.parametrize("chat", [False, True])
def test_instruction_answers_parse_into_items_up_to_fifteen(chat: bool) -> None:
    answers = instruction_answers(chat)

    counts = [len(items) for _, finish, items in answers]
    assert all(finish == "stop" for _, finish, _ in answers)
    assert all(1 <= c <= 7 for c in counts)
    assert sum(c == 7 for c in counts) > len(counts) * 0.8
    items = [item for _, _, parsed in answers for item in parsed]
    assert len(set(items)) > len(items) * 0.85  # mostly new and varied


def test_completion_answer_continues_after_the_open_number() -> None:
    prompt = build_instruction_prompt(DEMOS[:5])
    counts = []
    for seed in range(20):
        text, _ = respond(prompt.text, prompt.system, chat=False, max_tokens=2000, seed=seed)
        numbers = [int(n) for n in re.findall(r"^(\d+)\. ", text, re.MULTILINE)]

        assert text.startswith(" ") and not re.match(r" \d+\.", text)
        assert numbers == list(range(7, 7 + len(numbers)))
        assert all(n <= 15 for n in numbers)
        counts.append(len(parse_instructions(text, 6, "stop")))
        assert counts[-1] == 1 + len(numbers)
    assert max(counts) == 10


def test_instruction_answers_carry_what_the_filters_must_catch() -> None:
    items = [item for _, _, parsed in instruction_answers(chat=False, runs=300) for item in parsed]

    def share(predicate: Callable[[str], object]) -> float:
        return sum(bool(predicate(i)) for i in items) / len(items)

    assert 0.02 < share(BLACKLIST.search) < 0.15
    assert 0.01 < share(lambda i: len(i.split()) <= 3) < 0.1
    assert 0.01 < share(lambda i: not i[0].isascii() or not i[0].isalnum()) < 0.1
    assert 0.01 < share(lambda i: i.startswith("Write a program")) < 0.1
    near_duplicates = share(
        lambda i: any(SequenceMatcher(None, i.lower(), d.lower()).ratio() > 0.8 for d in DEMOS)
    )
    assert 0.03 < near_duplicates < 0.15
    assert 0.0 < share(lambda i: len(i.split()) > 150) < 0.03
    assert (
        share(lambda i: re.search(r"\b(classify|categorize|label|tag|mark|sort)\b", i, re.I)) > 0.05
    )


def test_chat_instruction_answers_look_like_chat_models() -> None:
    answers = instruction_answers(chat=True)

    preambles = sum(not re.match(r"\s*\**\d", text) for text, _, _ in answers)
    markdown = sum("**" in text for text, _, _ in answers)
    renumbered = sum(bool(re.search(r"^\W*(Task )?1\W", text, re.M)) for text, _, _ in answers)
    assert preambles == len(answers)
    assert markdown > len(answers) * 0.2
    assert renumbered > len(answers) * 0.05
    # The markup never leaks into what the parser returns.
    assert not any("**" in item for _, _, parsed in answers for item in parsed)


@pytest.mark.parametrize("chat", [False, True])
def test_classification_answers_follow_the_instruction_and_parse(chat: bool) -> None:
    demos = select_classification_demonstrations(SEEDS, k=16)
    yes_tasks = [
        "Classify the tweet as happy or sad.",
        "Categorize the article into sports, politics or science.",
        "Determine the sentiment of the review.",
        "Is the following statement true or false?",
    ]
    no_tasks = ["Write a poem about the sea.", "Give me a recipe for pancakes.", "Explain gravity."]
    for seed in range(5):
        for instruction, expected in [(t, True) for t in yes_tasks] + [
            (t, False) for t in no_tasks
        ]:
            prompt = build_classification_prompt(instruction, demos)
            text, finish = respond(prompt.text, prompt.system, chat=chat, max_tokens=20, seed=seed)
            assert finish == "stop"
            assert parse_classification(text) in (expected, None)


def test_classification_is_stable_per_instruction_with_rare_unparseable_answers() -> None:
    demos = select_classification_demonstrations(SEEDS, k=16)
    instructions = [f"Describe place number {i} in a few words." for i in range(400)]
    unparseable = 0
    answers = {}
    for instruction in instructions:
        prompt = build_classification_prompt(instruction, demos)
        verdicts = {
            parse_classification(
                respond(prompt.text, prompt.system, chat=c, max_tokens=20, seed=s)[0]
            )
            for s in range(3)
            for c in (False, True)
        }
        unparseable += None in verdicts
        verdicts.discard(None)
        assert len(verdicts) <= 1
        answers[instruction] = verdicts
    assert 0 < unparseable < 400 * 0.1
    assert sum(True in v for v in answers.values()) < 400 * 0.2


@pytest.mark.parametrize("chat", [False, True])
def test_input_first_instances_round_trip(chat: bool) -> None:
    rng = random.Random(0)
    parsed_all: list[Instance] = []
    for seed in range(150):
        demos = select_instance_demonstrations(SEEDS, False, rng)
        instruction = "Rewrite the following email about rural farms in simpler words."
        prompt = build_instance_prompt(instruction, False, demos)
        text, finish = respond(prompt.text, prompt.system, chat=chat, max_tokens=2000, seed=seed)
        parsed = parse_instances(text, False, finish)
        assert 1 <= len(parsed) <= 5
        assert len(parsed) == len(re.findall(r"Example \d", text))
        parsed_all += parsed
    assert sum(i.output == "" for i in parsed_all) > 0
    assert sum(i.output.endswith(":") for i in parsed_all) > 0
    assert sum(i.input == i.output for i in parsed_all) > 0
    assert sum(bool(i.input) for i in parsed_all) > len(parsed_all) * 0.9
    good = [
        i for i in parsed_all if i.output and not i.output.endswith(":") and i.input != i.output
    ]
    assert len(good) > len(parsed_all) * 0.75


def test_instances_repeat_an_input_with_a_different_output_sometimes() -> None:
    conflicts = 0
    for seed in range(150):
        prompt = build_instance_prompt("Shorten the given note.", False, SEEDS[:3])
        text, finish = respond(prompt.text, prompt.system, chat=False, max_tokens=2000, seed=seed)
        parsed = parse_instances(text, False, finish)
        conflicts += any(
            a.input == b.input and a.output != b.output
            for k, a in enumerate(parsed)
            for b in parsed[k + 1 :]
        )
    assert conflicts > 0


def test_tasks_without_input_get_empty_inputs() -> None:
    prompt = build_instance_prompt("Write a limerick about a cat.", False, SEEDS[:3])
    for chat in (False, True):
        text, finish = respond(prompt.text, prompt.system, chat=chat, max_tokens=2000, seed=4)
        parsed = parse_instances(text, False, finish)
        assert parsed and all(i.input == "" for i in parsed)


def test_code_outputs_survive_chat_code_fences() -> None:
    prompt = build_instance_prompt("Write a function that sorts names.", False, SEEDS[:3])
    for seed in range(10):
        text, finish = respond(prompt.text, prompt.system, chat=True, max_tokens=2000, seed=seed)
        assert "```python" in text
        parsed = parse_instances(text, False, finish)
        code = [i.output for i in parsed if i.output.startswith("def ")]
        assert code and all("```" not in c and "\n    return" in c for c in code)


@pytest.mark.parametrize("chat", [False, True])
def test_output_first_instances_use_the_labels_of_the_instruction(chat: bool) -> None:
    demos = select_instance_demonstrations(SEEDS, True, random.Random(1))
    prompt = build_instance_prompt("Label the comment as urgent or not urgent.", True, demos)
    outputs: set[str] = set()
    for seed in range(60):
        text, finish = respond(prompt.text, prompt.system, chat=chat, max_tokens=2000, seed=seed)
        assert text.count("Class label") >= 1
        parsed = parse_instances(text, True, finish)
        assert 1 <= len(parsed) <= 5
        outputs |= {i.output for i in parsed}
    assert {"Urgent", "Not urgent"} <= outputs
    assert outputs <= {"Urgent", "Not urgent", ""}


def test_max_tokens_cuts_the_answer_and_the_parser_drops_the_cut_item() -> None:
    prompt = build_instruction_prompt(DEMOS)
    full, _ = respond(prompt.text, prompt.system, chat=False, max_tokens=5000, seed=2)

    text, finish = respond(prompt.text, prompt.system, chat=False, max_tokens=40, seed=2)

    assert finish == "length"
    assert full.startswith(text)
    assert len(text.split()) * 1.3 <= 40
    parsed = parse_instructions(text, 9, finish)
    complete = parse_instructions(full, 9, "stop")
    assert parsed == complete[: len(parsed)]
    assert len(parsed) < len(parse_instructions(text, 9, "stop"))


def test_instance_answers_cut_by_max_tokens_lose_only_the_cut_instance() -> None:
    prompt = build_instance_prompt("Summarize the given paragraph.", False, SEEDS[:3])
    full, _ = respond(prompt.text, prompt.system, chat=False, max_tokens=5000, seed=0)
    whole = parse_instances(full, False, "stop")
    assert len(whole) >= 2
    for budget in range(10, int(len(full.split()) * 1.3), 7):
        text, finish = respond(prompt.text, prompt.system, chat=False, max_tokens=budget, seed=0)
        assert finish == "length"
        parsed = parse_instances(text, False, finish)
        assert parsed == whole[: len(parsed)]


def test_unknown_prompts_get_a_short_generic_answer() -> None:
    text, finish = respond("What is the capital of France?", "", chat=True, max_tokens=100)
    assert finish == "stop"
    assert 0 < len(text.split()) < 30
    assert respond("x", "", chat=True, max_tokens=0) == ("", "length")

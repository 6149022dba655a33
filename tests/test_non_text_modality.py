"""The ``non_text_modality`` filter: what needs seeing, hearing, drawing or acting is rejected.

Scored on two labelled sets: ``dev.jsonl``, the one the filter was developed on, and
``heldout.jsonl``, written by someone who had not seen the filter (skipped when absent).
``bench/non_text_modality.py`` prints the same figures with every disagreement.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pluggy
import pytest
from selfinstruct_plugins import modality, modality_nouns
from selfinstruct_plugins.modality import NonTextModality

from selfinstruct_async.plugins import Plugins

DATA = Path(__file__).parent / "data" / "non_text_modality"
BAR = 0.9


@dataclass(frozen=True)
class Labelled:
    """One line of a labelled set."""

    instruction: str
    needs_non_text: bool


def load(path: Path) -> list[Labelled]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        data = json.loads(line)
        where = f"{path.name}:{number}"
        assert isinstance(data.get("instruction"), str) and data["instruction"].strip(), where
        assert isinstance(data.get("needs_non_text"), bool), f"{where}: needs_non_text"
        rows.append(Labelled(data["instruction"], data["needs_non_text"]))
    return rows


def precision_recall(rows: list[Labelled]) -> tuple[float, float, str]:
    f = NonTextModality()
    rejected = [f.check(row.instruction) is not None for row in rows]
    tp = sum(r and row.needs_non_text for r, row in zip(rejected, rows, strict=True))
    fp = sum(r and not row.needs_non_text for r, row in zip(rejected, rows, strict=True))
    fn = sum(not r and row.needs_non_text for r, row in zip(rejected, rows, strict=True))
    counts = f"tp {tp} fp {fp} fn {fn} of {len(rows)} (bench/non_text_modality.py lists them)"
    return tp / (tp + fp), tp / (tp + fn), counts


def test_the_development_set_is_large_balanced_and_unique() -> None:
    rows = load(DATA / "dev.jsonl")
    needs = sum(row.needs_non_text for row in rows)
    assert len(rows) >= 150
    assert 0.4 <= needs / len(rows) <= 0.6
    assert len({row.instruction for row in rows}) == len(rows)


def test_precision_and_recall_on_the_development_set_are_at_least_0_9() -> None:
    precision, recall, counts = precision_recall(load(DATA / "dev.jsonl"))
    assert precision >= BAR and recall >= BAR, counts


def test_precision_and_recall_on_the_held_out_set_are_at_least_0_9() -> None:
    path = DATA / "heldout.jsonl"
    if not path.exists():
        pytest.skip(f"no held-out set at {path}")
    # The message gives counts only: whoever tunes the filter must not learn the cases.
    precision, recall, counts = precision_recall(load(path))
    assert precision >= BAR and recall >= BAR, counts


@pytest.mark.parametrize(
    "instruction",
    [
        # the and the brief's mentions
        "Explain how pie charts can mislead readers.",
        "Describe the steps to take a screenshot.",
        "Write a poem about a photograph of your grandmother.",
        "What is a bar graph used for?",
        "Suggest a caption for a photo of a beach.",
        # figurative uses
        "Paint a picture with words of an autumn morning.",
        "Map out a plan for the first week at a new job.",
        "Draw a conclusion from these two premises: all men are mortal; Socrates is a man.",
        "Summarize the plot of a novel you have read recently.",
        "Write a letter to file a complaint about a late delivery.",
        # text that renders as a picture, or a message the user sends
        "Write Python code that uses matplotlib to plot a histogram.",
        "Draw a house using ASCII characters only.",
        "Write an email to my landlord about the broken heater.",
        "Explain how to attach a file to an email.",
    ],
)
def test_mentions_of_pictures_and_actions_pass(instruction: str) -> None:
    assert NonTextModality().check(instruction) is None


@pytest.mark.parametrize(
    ("instruction", "need"),
    [
        ("Describe the image below in detail.", "to see a picture"),
        ("Give a caption for this photo of a sunset at the beach.", "to see a picture"),
        ("What trend does the line graph show?", "to see a picture"),
        ("Listen to this audio clip and transcribe it.", "to hear or watch a recording"),
        ("Watch the video and list the main points.", "to hear or watch a recording"),
        ("Draw a cat sitting on a windowsill.", "to produce a picture"),
        ("Sketch a floor plan for a small apartment.", "to produce a picture"),
        ("Plot the function y = x^2 for x from -3 to 3.", "to produce a picture"),
        ("Create a bar chart of these sales: Jan 10, Feb 15.", "to produce a picture"),
        ("Compose a melody for a lullaby.", "to produce sound or video"),
        ("Open the attached file and list its contents.", "to open a file"),
        ("Go to www.example.com and tell me what they sell.", "to browse or search the web"),
        ("Search online for the cheapest flight to Rome.", "to browse or search the web"),
        ("Call my mother and wish her a happy birthday.", "to act in the physical world"),
        ("Send an email to my manager saying I will be late.", "to act in the physical world"),
        ("Buy two tickets for the concert on Saturday.", "to act in the physical world"),
        ("Go to the grocery store and pick up some milk.", "to act in the physical world"),
        ("Write a haiku about spring and draw a picture for it.", "to produce a picture"),
    ],
)
def test_tasks_needing_a_non_text_modality_are_rejected_naming_the_need(
    instruction: str, need: str
) -> None:
    rejection = NonTextModality().check(instruction)
    assert rejection is not None
    assert rejection.reason.startswith(f"needs {need}")


@pytest.mark.parametrize(
    "instruction",
    [
        "Describe these sketches.",  # "sketch(?:es)?": the plural is no word of the source
        "Summarize the webpages I sent.",  # "web ?pages?" spelled as one word
        "Compare the web pages I linked.",
    ],
)
def test_nouns_spelled_with_optional_parts_are_found(instruction: str) -> None:
    rejection = NonTextModality().check(instruction)
    assert rejection is not None, instruction


def test_the_quick_noun_check_never_skips_an_instruction_the_noun_scans_reject() -> None:
    # The word check in front of the two slow noun scans must be a superset of them: every
    # labelled instruction the scans flag holds a noun word (or its singular).
    rows = load(DATA / "dev.jsonl") + load(DATA / "heldout.jsonl")
    texts = [row.instruction for row in rows] + [
        f"{verb} the {noun}." for verb in ("Describe", "Summarize") for noun in _noun_samples()
    ]
    flagged = [text for text in texts if modality._pointed_at(text)]
    assert len(flagged) > 100
    missed = [text for text in flagged if not modality._names_a_medium(text.lower())]
    assert missed == []


def _noun_samples() -> list[str]:
    return sorted(
        spelling.strip()
        for part in (modality_nouns._SEEN, modality_nouns._DOCS, modality_nouns._WEB_THINGS)
        for spelling in modality_nouns._spellings(part)
        if "  " not in spelling and not spelling.startswith(" ")
    )


def test_noun_spellings_are_exactly_what_the_pattern_matches() -> None:
    spellings = modality_nouns._spellings(r"sketch(?:es)?|web ?pages?|analy[sz]e|x-rays?")
    assert spellings == {
        "sketch", "sketches", "web page", "web pages", "webpage", "webpages",
        "analyse", "analyze", "x-ray", "x-rays",
    }  # fmt: skip
    for part in (modality_nouns._SEEN, modality_nouns._HEARD, modality_nouns._DOCS):
        pattern = re.compile(part)
        for spelling in modality_nouns._spellings(part):
            if "\\" not in part or " " not in spelling:
                assert pattern.fullmatch(spelling), spelling


def test_the_reason_quotes_the_words_that_show_the_need() -> None:
    rejection = NonTextModality().check("Please describe the attached photo of my garden.")
    assert rejection is not None
    assert rejection.reason == "needs to see a picture it was not given: 'the attached photo'"


def test_imperatives_count_only_at_the_start_of_a_clause() -> None:
    f = NonTextModality()
    assert f.check("Draw a circle.") is not None
    assert f.check("Explain how to draw a circle.") is None
    assert f.check("Write a story and then draw a circle.") is not None
    assert f.check("Explain how to write a story and draw a circle.") is None
    assert f.check("I packed my bag and locked the door. Summarize this.") is None


@pytest.mark.anyio
async def test_it_runs_after_the_blacklist_in_the_default_chain(pm: pluggy.PluginManager) -> None:
    chain = Plugins(pm).build_filter_chain({})
    names = [f.name for f in chain.instruction_filters]
    assert names.index("blacklist") < names.index("non_text_modality")
    rejection = await chain.check_instruction("Describe the image below in detail.")
    assert rejection is not None and rejection.filter == "blacklist"
    rejection = await chain.check_instruction("Describe the photo below in detail.")
    assert rejection is not None and rejection.filter == "non_text_modality"


def test_long_adversarial_instructions_are_checked_quickly() -> None:
    # Regular expressions with nested optional words can backtrack without bound; these
    # are the shapes most likely to, at the length the word-count filter lets through.
    f = NonTextModality()
    texts = [
        "Please " * 150 + "draw",
        "the " * 150 + "photo",
        " and ".join(["draw a picture of the image below"] * 20),
        "I want you to " * 40 + "open",
    ]
    start = time.perf_counter()
    for text in texts:
        f.check(text)
    assert time.perf_counter() - start < 0.5

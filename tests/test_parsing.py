"""The answer parsers together: classification answers, and garbage, huge and pathological
text fed to all three (the other parsers' cases: test_parsing_instructions.py and
test_parsing_instances.py)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinstruct_async.parsing import parse_classification, parse_instances, parse_instructions

# --- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Yes", True),
        ("No", False),
        ("yes.", True),
        ("NO!", False),
        ("**Yes**", True),
        ("Answer: no", False),
        ("**Answer:** Yes, it has a fixed label set.", True),
        ("No\n\nThe output is free text.", False),
        ("The task asks for free text, so the answer is: **No**.", False),
        ("Are the possible outputs a fixed set of labels? Yes", True),
        ("Maybe", None),
        ("", None),
        ("It depends.", None),
        ("Yesterday was fine.", None),
        ("I cannot tell; yes in some cases and no in others", None),
    ],
)
def test_classification_answers(text: str, expected: bool | None) -> None:
    assert parse_classification(text) is expected


# --- fuzzing ------------------------------------------------------------------------------

_MESSY = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "Input:",
                "**Output:**",
                "Class label: A",
                "Example 3",
                "```",
                "Task: x",
                "10.",
                "- ",
                "\r\n",
                "\n\n",
                "###",
                "**",
                "Let me know",
                "Yes",
                "\u0000",
                "\ud7ff\ufffd",
            ]
        ),
    ),
    max_size=40,
).map("\n".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
).map(json.dumps)
_ANY_TEXT = st.one_of(st.text(), _MESSY, _JSON)
_FINISH = st.sampled_from([None, "stop", "length", "content_filter"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_ANY_TEXT, st.integers(-3, 20), _FINISH, st.integers(-1, 20))
def test_instruction_parser_never_raises_and_respects_its_limits(
    text: str, first: int, finish: str | None, max_number: int
) -> None:
    parsed = parse_instructions(text, first, finish, max_number)

    assert len(parsed) <= max(0, max_number - first)
    assert all(item and item == item.strip() and "\n" not in item for item in parsed)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_ANY_TEXT, st.booleans(), _FINISH, st.integers(-1, 8))
def test_instance_parser_never_raises_and_respects_its_limits(
    text: str, clf: bool, finish: str | None, max_instances: int
) -> None:
    parsed = parse_instances(text, clf, finish, max_instances)

    assert len(parsed) <= max(0, max_instances)
    assert all(isinstance(i.input, str) and isinstance(i.output, str) for i in parsed)


@settings(max_examples=300)
@given(_ANY_TEXT)
def test_classification_parser_never_raises(text: str) -> None:
    assert parse_classification(text) in (True, False, None)


_MARKER_LINE = re.compile(
    r"^\s*(?:[-*+]\s+|\d{1,2}[.)]\s+)?(?:\*\*|__)?\s*(?:input|output|class label|task)"
    r"(?:\s*\d{1,3})?\s*(?:\*\*|__)?\s*[:\uff1a]|^\s*(?:\*\*|__)?\s*example\s*#?\s*\d",
    re.IGNORECASE,
)
_FIELD_PARTS = st.one_of(
    st.sampled_from(
        [
            "Input:",
            "Output:",
            "**Output:**",
            "Class label:",
            "Label:",
            "Example 2",
            "Example 3:",
            "Task:",
            "Sentence:",
            "Sentence 2:",
            "- Output:",
            "1. Input:",
            "10, 20, 30",
            "a b",
            "I hope this helps!",
            "",
        ]
    ),
    st.text(alphabet="ab :\n*", max_size=12),
)
_FIELDS = st.lists(
    st.tuples(_FIELD_PARTS, st.sampled_from(["\n", " ", "  ", "\n\n", ""])), max_size=40
).map(lambda parts: "".join(part + sep for part, sep in parts))


@settings(max_examples=1000)
@given(_FIELDS, st.booleans(), _FINISH)
def test_no_parsed_field_holds_a_line_opening_with_a_marker(
    text: str, clf: bool, finish: str | None
) -> None:
    for instance in parse_instances(text, clf, finish, 50):
        for value in (instance.input, instance.output):
            assert not any(_MARKER_LINE.match(line) for line in value.split("\n")), value


def test_parsers_cope_with_huge_text() -> None:
    huge = ("10. **Input:** " + "word " * 2000 + "\n") * 100 + "#" * 50_000 + "\n" + "*" * 50_000

    assert len(parse_instructions(huge, 9, "length", on_truncated="drop_last")) <= 7
    assert len(parse_instances(huge, False, "length")) <= 5
    assert len(parse_instances(huge, True, None)) <= 5
    assert parse_classification(huge) in (True, False, None)


@pytest.mark.timeout(20)  # lines like these once kept a regex busy for over ten minutes
@pytest.mark.parametrize(
    "text",
    [
        "Example 1\nSentence" + " " * 200_000 + "x\nOutput: y",
        "Input" + " " * 200_000 + "x\nOutput: y",
        "Example" + " " * 200_000 + "x\nOutput: y",
        "Input: x" + " " * 200_000 + "y Output: z",
        "Class label: A\n" + "Sentence: x\n" * 50_000,
    ],
)
def test_long_runs_of_spaces_and_fields_parse_in_linear_time(text: str) -> None:
    parsed = parse_instances(text, text.startswith("Class"), "stop", 50)
    assert len(parsed) == (50 if text.startswith("Class") else 1)

"""The answer parsers: completion continuations, chat habits, truncation and garbage."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinstruct_async.parsing import parse_classification, parse_instances, parse_instructions
from selfinstruct_async.records import Instance

# --- instructions -------------------------------------------------------------------------


def test_completion_continuation_reads_the_unnumbered_first_item() -> None:
    text = " Write a poem about the sea.\n10. Summarize the article.\n11. Give 3   tips\n for a."

    assert parse_instructions(text, 9, "stop") == [
        "Write a poem about the sea.",
        "Summarize the article.",
        "Give 3 tips for a.",
    ]


def test_single_completion_item_without_numbers_is_kept() -> None:
    assert parse_instructions(" Plan a picnic for six people.", 9, "stop") == [
        "Plan a picnic for six people."
    ]


def test_length_finish_drops_the_possibly_truncated_last_item() -> None:
    text = " First task.\n10. Second task.\n11. Third ta"

    assert parse_instructions(text, 9, "length", on_truncated="drop_last") == [
        "First task.",
        "Second task.",
    ]
    assert parse_instructions(text, 9, "stop")[-1] == "Third ta"


def test_length_finish_keeps_the_last_item_when_a_later_one_followed() -> None:
    text = "\n".join(f"{n}. task {n}" for n in range(9, 18))

    parsed = parse_instructions(text, 9, "length", max_number=16, on_truncated="drop_last")

    assert parsed == [f"task {n}" for n in range(9, 16)]


def test_length_finish_drops_the_whole_response_by_default() -> None:
    text = " First task.\n10. Second task.\n11. Third ta"

    assert parse_instructions(text, 9, "length") == []
    assert parse_instructions(text, 9, "length", on_truncated="drop_response") == []
    # A complete list followed by a cut-off remark is still a cut-off response.
    assert parse_instructions("9. One.\n10. Two.\n\nI hope th", 9, "length") == []


def test_an_unknown_truncation_rule_is_an_error() -> None:
    with pytest.raises(ValueError, match="on_truncated"):
        parse_instructions(" a", 9, "stop", on_truncated="drop_all")  # type: ignore[arg-type]


def test_capitalize_applies_str_capitalize_to_each_item() -> None:
    text = " explain how NASA names missions.\n10. Name a river in Peru."

    assert parse_instructions(text, 9, "stop", capitalize=True) == [
        "Explain how nasa names missions.",
        "Name a river in peru.",
    ]
    assert parse_instructions(text, 9, "stop")[0] == "explain how NASA names missions."


@pytest.mark.parametrize(
    "text",
    [
        " Translate the sentence into French:\n10. Name a planet.",
        "Translate the sentence into French:\n10. Name a planet.",
        " **Translate the sentence into French:**\n10. Name a planet.",
        " Translate the sentence into French:",
    ],
)
def test_a_first_instruction_ending_in_a_colon_is_an_item(text: str) -> None:
    parsed = parse_instructions(text, 9, "stop")
    assert parsed[0] == "Translate the sentence into French:"
    assert parsed[1:] in ([], ["Name a planet."])


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here are more tasks:\n9. Name a planet.\n10. Name a river.",
        "Here are 7 new tasks:\n9. Name a planet.\n10. Name a river.",
        "Here are 7 new tasks:\n1. Name a planet.\n2. Name a river.",
        "New tasks:\n9. Name a planet.\n10. Name a river.",
        "Some more tasks:\n- Name a planet.\n- Name a river.",
        "Here are the next ones:\n10. Name a planet.\n11. Name a river.",
    ],
)
def test_a_genuine_preamble_is_still_skipped(text: str) -> None:
    assert parse_instructions(text, 9, "stop") == ["Name a planet.", "Name a river."]


def test_reading_stops_at_item_max_number() -> None:
    text = " a\n10. b\n11. c\n12. d\n13. e"
    assert parse_instructions(text, 9, "stop", max_number=12) == ["a", "b", "c"]


def test_nothing_is_read_when_the_list_is_already_full() -> None:
    assert parse_instructions(" a\n17. b", 16, "stop", max_number=16) == []


def test_chat_answer_with_preamble_markdown_and_commentary() -> None:
    text = (
        "Sure! Here are some more tasks:\n\n"
        "**9.** **Plan a trip** to Rome.\n\n"
        "10) Explain gravity to a child.\n"
        "### Writing\n"
        "Task 11: Draft a cover letter.\n"
        "12. **Poem**: Write a poem about autumn.\n"
        '13. "Translate the sentence into German."\n\n'
        "Let me know if you'd like more!"
    )

    assert parse_instructions(text, 9, "stop") == [
        "Plan a trip to Rome.",
        "Explain gravity to a child.",
        "Draft a cover letter.",
        "Write a poem about autumn.",
        "Translate the sentence into German.",
    ]


def test_commentary_after_the_list_is_not_an_item_even_when_truncated() -> None:
    text = "9. One task.\n10. Two task.\n\nI hope these help. Feel free to ask for mo"
    assert parse_instructions(text, 9, "length", on_truncated="drop_last") == [
        "One task.",
        "Two task.",
    ]


def test_renumbering_from_one_is_accepted_up_to_the_items_wanted() -> None:
    text = "Here you go:\n" + "\n".join(f"{n}. task {n}" for n in range(1, 16))

    assert parse_instructions(text, 9, "stop", max_number=16) == [f"task {n}" for n in range(1, 8)]


def test_echoed_demonstrations_are_skipped_when_known() -> None:
    text = "1. Old one.\n2. Old two.\n9. New one.\n10. New two."

    parsed = parse_instructions(text, 9, "stop", known=["Old one.", "Old  two."])

    assert parsed == ["New one.", "New two."]


def test_a_first_item_that_sounds_chatty_is_still_an_item_in_a_continuation() -> None:
    text = " Here is a sentence; translate it into Dutch.\n10. Name a planet."
    assert parse_instructions(text, 9, "stop") == [
        "Here is a sentence; translate it into Dutch.",
        "Name a planet.",
    ]


def test_truncation_does_not_cost_a_good_item_when_the_cut_one_was_skipped() -> None:
    text = "9. New task.\n10. Old one."
    parsed = parse_instructions(text, 9, "length", known=["Old one."], on_truncated="drop_last")
    assert parsed == ["New task."]


def test_bullet_lists_carriage_returns_and_labels() -> None:
    text = (
        "Okay, more tasks:\r\n\r\n- **Task**: Write a limerick.\r\n* Instruction: Name a river.\r\n"
    )
    assert parse_instructions(text, 9, "stop") == ["Write a limerick.", "Name a river."]


def test_blank_lines_between_items_and_wrapped_items() -> None:
    text = "9. Describe a busy\n   market at dawn.\n\n10. List three birds.\n\n\n11. Name a colour."
    assert parse_instructions(text, 9, None) == [
        "Describe a busy market at dawn.",
        "List three birds.",
        "Name a colour.",
    ]


def test_instruction_parser_applies_no_content_filters() -> None:
    text = " Draw a map.\n10. Hi\n11. ¿Qué hora es?\n12. Write a program to add numbers."
    assert parse_instructions(text, 9, "stop") == [
        "Draw a map.",
        "Hi",
        "¿Qué hora es?",
        "Write a program to add numbers.",
    ]


def test_empty_items_are_dropped() -> None:
    assert parse_instructions("9. **\n10. Real task.\n11. ``", 9, "stop") == ["Real task."]


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


# --- instances ----------------------------------------------------------------------------


def test_input_first_examples_with_none_marker_and_multiline_output() -> None:
    text = (
        "Example 1\nInput: 5, 2, 9\nOutput: 2, 5, 9\n"
        "Example 2\nInput: <none>\nOutput: First line.\n- a bullet\n\nSecond paragraph.\n"
        "Example 3\nInput: 1\nOutput: 1"
    )

    assert parse_instances(text, False, "stop") == [
        Instance("5, 2, 9", "2, 5, 9"),
        Instance("", "First line.\n- a bullet\n\nSecond paragraph."),
        Instance("1", "1"),
    ]


def test_numbered_examples_are_read() -> None:
    text = "1. Input: a\n   Output: b\n2. **Input:** c\n   **Output:** d"
    assert parse_instances(text, False, None) == [Instance("a", "b"), Instance("c", "d")]


def test_output_without_an_input_line_has_an_empty_input() -> None:
    text = "Output: one answer\nOutput: another answer"
    assert parse_instances(text, False, None) == [
        Instance("", "one answer"),
        Instance("", "another answer"),
    ]


def test_empty_markers_become_empty_strings_but_none_as_an_answer_is_kept() -> None:
    text = "Input: N/A\nOutput: <none>\nInput: (none)\nOutput: None\nInput: -\nOutput:"
    assert parse_instances(text, False, "stop") == [
        Instance("", ""),
        Instance("", "None"),
        Instance("", ""),
    ]


def test_chat_answer_with_bold_labels_code_fence_and_closing_remark() -> None:
    text = (
        "Sure! Here are some examples:\n\n"
        "### Example 1\n**Input:** N/A\n**Output:**\n"
        "```python\ndef f():\n    print('Output: hi')\n\n    return 1\n```\n\n"
        "**Example 2**\n**Input**: abc\n**Output**: Here is the result:\n\n"
        "Let me know if you need more examples!"
    )

    assert parse_instances(text, False, "stop") == [
        Instance("", "def f():\n    print('Output: hi')\n\n    return 1"),
        Instance("abc", "Here is the result:"),
    ]


def test_a_fence_inside_a_longer_output_is_kept() -> None:
    text = "Input: list\nOutput: Use this:\n```\nsorted(x)\n```\nIt is stable."
    assert parse_instances(text, False, None) == [
        Instance("list", "Use this:\n```\nsorted(x)\n```\nIt is stable.")
    ]


def test_length_finish_drops_the_instance_the_text_ends_in() -> None:
    text = "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: d is cu"

    assert parse_instances(text, False, "length") == [Instance("a", "b")]
    assert parse_instances(text, False, "stop")[-1] == Instance("c", "d is cu")


def test_length_finish_inside_an_unanswered_input_keeps_the_complete_instances() -> None:
    text = "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c is cu"
    assert parse_instances(text, False, "length") == [Instance("a", "b")]
    text = "Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: d\nExample 3\n"
    assert parse_instances(text, False, "length") == [Instance("a", "b"), Instance("c", "d")]


def test_at_most_max_instances_are_read_and_the_last_kept_survives_truncation() -> None:
    text = "".join(f"Example {n}\nInput: i{n}\nOutput: o{n}\n" for n in range(1, 9))

    parsed = parse_instances(text, False, "length", max_instances=5)

    assert parsed == [Instance(f"i{n}", f"o{n}") for n in range(1, 6)]


def test_reading_stops_when_the_model_starts_another_task() -> None:
    text = "Example 1\nInput: x\nOutput: y\n\nTask: Something else\nExample 1\nInput: p\nOutput: q"
    assert parse_instances(text, False, "stop") == [Instance("x", "y")]


def test_output_first_labels_apply_to_the_inputs_under_them() -> None:
    text = (
        "Class label: Positive\nInput: I love it.\nInput: Great!\n"
        "Class label: Negative\nInput: Awful.\nClass label: Neutral"
    )

    assert parse_instances(text, True, "stop") == [
        Instance("I love it.", "Positive"),
        Instance("Great!", "Positive"),
        Instance("Awful.", "Negative"),
        Instance("", "Neutral"),
    ]


def test_output_first_truncation_drops_the_last_input() -> None:
    text = "Class label: A\nInput: one\nInput: two\nClass label: B\nInput: thr"
    assert parse_instances(text, True, "length") == [Instance("one", "A"), Instance("two", "A")]


def test_output_first_chat_answer_with_bold_labels() -> None:
    text = (
        "Here are examples:\n\n**Class label:** True\n**Input:** The sky is blue.\n\n"
        "**Class label:** False\n**Input:** <none>\n\nI hope this helps!"
    )
    assert parse_instances(text, True, None) == [
        Instance("The sky is blue.", "True"),
        Instance("", "False"),
    ]


def test_classification_answer_written_input_first_is_still_read() -> None:
    text = "Example 1\nInput: x\nOutput: True\nExample 2\nInput: y\nOutput: False"
    assert parse_instances(text, True, None) == [Instance("x", "True"), Instance("y", "False")]


# --- inputs under field names, one-line pairs, leaked markers ---------------------------


def test_input_first_inputs_under_field_names_are_read_with_the_names() -> None:
    text = (
        "Example 1\nSentence: The cat sat on the mat.\nOutput: Statement\n"
        "Example 2\nDialogue:\n- Agent: How can I help?\n- Customer: My card is blocked.\n"
        "Output: Unsatisfied\n"
        "Example 3\nSentence 1: It rained.\nSentence 2: The road is wet.\nOutput: Cause\n"
        "Example 4\n**Paragraph:** Rome was not built in a day.\nOutput: Proverb"
    )

    assert parse_instances(text, False, "stop") == [
        Instance("Sentence: The cat sat on the mat.", "Statement"),
        Instance(
            "Dialogue:\n- Agent: How can I help?\n- Customer: My card is blocked.", "Unsatisfied"
        ),
        Instance("Sentence 1: It rained.\nSentence 2: The road is wet.", "Cause"),
        Instance("Paragraph: Rome was not built in a day.", "Proverb"),
    ]


def test_field_named_pairs_without_example_markers_are_separate_instances() -> None:
    text = "Sentence: one\nOutput: A\nthe output goes on\nSentence: two\nOutput: B"
    assert parse_instances(text, False, None) == [
        Instance("Sentence: one", "A\nthe output goes on"),
        Instance("Sentence: two", "B"),
    ]


def test_after_an_example_marker_any_text_is_the_input() -> None:
    text = "Example 1\nThe quick brown fox.\nOutput: 4 words\nExample 2: A slow dog.\nOutput: 3"
    assert parse_instances(text, False, None) == [
        Instance("The quick brown fox.", "4 words"),
        Instance("A slow dog.", "3"),
    ]


def test_a_chat_preamble_before_the_first_output_is_not_an_input() -> None:
    for preamble in ("Sure! Here is an example:", "Here are 3 examples:", "I hope this helps"):
        assert parse_instances(f"{preamble}\nOutput: x", False, "stop") == [Instance("", "x")]


def test_output_first_field_names_are_inputs_not_part_of_the_label() -> None:
    text = (
        "Class label: Positive\nSentence: I love it.\nSentence: Great!\n"
        "Class label: Unsupport\n**Document:** Rates fell.\nClaim: Loans will rise.\n"
        "Class label: Mixed\nI like the food but not the service.\n"
        "Class label: Neutral"
    )

    assert parse_instances(text, True, "stop") == [
        Instance("Sentence: I love it.", "Positive"),
        Instance("Sentence: Great!", "Positive"),
        Instance("Document: Rates fell.\nClaim: Loans will rise.", "Unsupport"),
        Instance("I like the food but not the service.", "Mixed"),
        Instance("", "Neutral"),
    ]


def test_output_first_label_on_the_line_after_its_marker() -> None:
    text = "**Class label:**\nTrue\nStatement: Water is wet."
    assert parse_instances(text, True, None) == [Instance("Statement: Water is wet.", "True")]


def test_output_first_closing_remark_right_after_a_label_is_not_an_input() -> None:
    text = "Class label: Spam\nEmail: You won!\nClass label: Not spam\nI hope this helps!"
    assert parse_instances(text, True, None) == [
        Instance("Email: You won!", "Spam"),
        Instance("", "Not spam"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Input: x Output: y",
        "Input: x  Output: y",
        "**Input:** x **Output:** y",
        "**Input**: x  **Output**: y",
        "Input: x, Output: y",
        "1. Input: x Output: y",
        "Example 1: Input: x Output: y",
        "Sentence: x Output: y",
    ],
)
def test_input_and_output_on_one_line(text: str) -> None:
    expected = "Sentence: x" if text.startswith("Sentence") else "x"
    assert parse_instances(text, False, "stop") == [Instance(expected, "y")]


def test_class_label_and_input_on_one_line() -> None:
    text = "Class label: Positive Input: I love it.\nClass label: Negative **Input:** Awful."
    assert parse_instances(text, True, None) == [
        Instance("I love it.", "Positive"),
        Instance("Awful.", "Negative"),
    ]


def test_output_first_output_line_ends_the_input_and_the_label_stays_the_output() -> None:
    # Issue 16: "input": "10, 20, ... 100\nOutput: 10" passed every filter.
    text = (
        "Class label: 10\nInput: 10, 20, ... 100\nOutput: 10\n"
        "Class label: Even\nInput: 4\nOutput: 4 is even.\nit has no remainder"
    )
    assert parse_instances(text, True, "stop") == [
        Instance("10, 20, ... 100", "10"),
        Instance("4", "Even"),
    ]


def test_output_first_pairs_before_any_label_are_read_input_first() -> None:
    text = "Input: The item is a car.\nOutput: Vehicle\nClass label: Fruit\nInput: apple"
    assert parse_instances(text, True, None) == [
        Instance("The item is a car.", "Vehicle"),
        Instance("apple", "Fruit"),
    ]


def test_a_class_label_in_an_input_first_answer_is_not_kept_in_a_field() -> None:
    text = (
        "Example 1\nInput: a\nOutput: b\nClass label: Z\nmore text\nExample 2\nInput: c\nOutput: d"
    )
    assert parse_instances(text, False, None) == [Instance("a", "b"), Instance("c", "d")]


def test_an_example_line_with_a_title_is_a_marker_not_content() -> None:
    text = "Example 1\nInput: a\nOutput: b\nExample 2 - a harder one\nInput: c\nOutput: d"
    assert parse_instances(text, False, None) == [Instance("a", "b"), Instance("c", "d")]


def test_instance_garbage_gives_nothing() -> None:
    assert parse_instances("I'm sorry, I can't help with that.", False, "stop") == []
    assert parse_instances('{"input": "x", "output": "y"}', True, "stop") == []


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

"""The instance parser: input-first and output-first answers, field names, one-line pairs,
truncation and chat habits."""

from __future__ import annotations

import pytest

from selfinstruct_async.parsing import parse_instances
from selfinstruct_async.records import Instance


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

"""The numbered-list parser: completion continuations, chat habits, truncation."""

from __future__ import annotations

import pytest

from selfinstruct_async.parsing import parse_instructions


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

"""Each stage's answer format as a grammar: compiled by llama.cpp, sent in the field each
server reads, and never forced on prompts whose labels a plugin renamed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfinstruct_async.answer_formats import (
    ANSWER_FORMATS,
    INPUT_FIRST,
    NUMBERED_LIST,
    OUTPUT_FIRST,
    YES_NO,
    constraint_fields,
    grammar_for,
    usable_format,
)
from selfinstruct_async.config import load_config
from selfinstruct_async.prompts import DEFAULT_TEMPLATES


def test_every_stage_format_has_a_grammar_llama_cpp_compiles() -> None:
    grammar_module = pytest.importorskip("llama_cpp.llama_grammar")
    assert set(ANSWER_FORMATS) == {NUMBERED_LIST, YES_NO, INPUT_FIRST, OUTPUT_FIRST}
    for text in ANSWER_FORMATS.values():
        grammar_module.LlamaGrammar.from_string(text, verbose=False)


def test_endpoints_get_the_grammar_in_their_own_field_and_nothing_when_off() -> None:
    assert constraint_fields(INPUT_FIRST, "off") == {}
    assert constraint_fields(INPUT_FIRST, "llama.cpp") == {"grammar": grammar_for(INPUT_FIRST)}
    assert constraint_fields(YES_NO, "vllm") == {"guided_grammar": grammar_for(YES_NO)}
    assert constraint_fields("", "llama.cpp") == {}  # free text
    assert constraint_fields("no_such_format", "llama.cpp") == {}
    assert load_config().endpoints == () or load_config().endpoints[0].constrained_decoding == "off"
    config = load_config(
        overrides={"endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}
    )
    assert config.endpoints[0].constrained_decoding == "off"  # hosted APIs refuse unknown fields


def test_renamed_labels_turn_the_grammar_off() -> None:
    assert usable_format(INPUT_FIRST, DEFAULT_TEMPLATES) == INPUT_FIRST
    renamed = replace(DEFAULT_TEMPLATES, input_label="Question")
    assert usable_format(INPUT_FIRST, renamed) == ""


def test_the_paper_preset_turns_the_local_grammar_off() -> None:
    assert load_config().local.constrain_formats is True
    assert load_config(preset="paper").local.constrain_formats is False

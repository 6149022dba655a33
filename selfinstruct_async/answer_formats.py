"""Each stage's answer format as a grammar, for backends that can constrain decoding to it.

A stage names its format on the request (:attr:`CompletionRequest.answer_format`); each
backend maps the name to what it supports: the embedded model compiles the GBNF text
(``local.constrain_formats``), llama.cpp's server takes it as ``grammar`` and vLLM as
``guided_grammar`` (``constrained_decoding`` on the endpoint). A small model then cannot
leave the format the parsers read (:mod:`selfinstruct_async.parsing`): it can still write
nonsense, but inside ``Example n`` / ``Input:`` / ``Output:`` lines.

The grammars follow :mod:`selfinstruct_async.prompts`' default labels and accept what a
completions model writes after the prompt as well as what a chat model writes as a
whole answer. A second line inside an output or an input may not open with the first two
letters of a marker the parsers split on ("Ex", "In", "Ou", "Cl", "Ta"): GBNF has no
negative lookahead, and without the rule the model could continue a field with a marker
line of its own (what the ``leaked_markers`` filter rejects). A new block starts with
its marker instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .prompts import DEFAULT_TEMPLATES, PromptTemplates

#: Instruction generation: the items that continue the numbered list ("9." ends the prompt).
NUMBERED_LIST: Final = "numbered_list"
#: Classification identification: one word.
YES_NO: Final = "yes_no"
#: Instance generation, input-first: ``Example n`` / ``Input: ...`` / ``Output: ...``.
INPUT_FIRST: Final = "input_first"
#: Instance generation, output-first: ``Class label: ...`` then its ``Input: ...`` lines.
OUTPUT_FIRST: Final = "output_first"

_LINE = "line ::= [^\\n]+\n"
# A field's next line, unless it opens like a marker ("Ex", "In", "Ou", "Ta", "Cl").
_MORE = (
    'more ::= ([^EIOTC\\n] | "E" [^x\\n] | "I" [^n\\n] | "O" [^u\\n] | "T" [^a\\n] '
    '| "C" [^l\\n]) [^\\n]*\n'
)

# How an instance answer may end: where the model would stop anyway (a blank line, or
# the next "Task:", which the stop sequences cut off), so the grammar never makes it go on.
_END = '("\\n" ("\\n" | "Task:")?)?\n'

#: GBNF text per format name (llama.cpp's grammar language, root rule ``root``).
ANSWER_FORMATS: Final[Mapping[str, str]] = {
    NUMBERED_LIST: (
        # The first item continues the prompt's "9." (or, from a chat model, is numbered).
        'root ::= " "? line ("\\n" [0-9] [0-9]? [.)] " " line)* ("\\n" "\\n"?)?\n' + _LINE
    ),
    YES_NO: 'root ::= " "? ("Yes" | "No")\n',
    INPUT_FIRST: (
        'root ::= example ("\\n" example)* '
        + _END
        + 'example ::= "Example " [1-9] [0-9]? "\\n" "Input: " field "\\n" "Output: " field\n'
        'field ::= line ("\\n" more)*\n' + _MORE + _LINE
    ),
    OUTPUT_FIRST: (
        'root ::= label ("\\n" label)* '
        + _END
        + 'label ::= "Class label: " line ("\\n" "Input: " field)*\n'
        'field ::= line ("\\n" more)*\n' + _MORE + _LINE
    ),
}

#: ``constrained_decoding`` values for HTTP endpoints, and the body field each one fills.
ENDPOINT_FIELDS: Final[Mapping[str, str]] = {"llama.cpp": "grammar", "vllm": "guided_grammar"}


_LABELS = ("answer_yes", "answer_no", "example_label", "input_label", "output_label", "class_label")


def usable_format(answer_format: str, templates: PromptTemplates) -> str:
    """``answer_format``, or free text when the prompts use labels the grammars do not know.

    A plugin that renames "Input" or "Class label" gets answers in its own words, parsed
    as before, rather than a grammar forcing the default words on the model.
    """
    same = all(getattr(templates, n) == getattr(DEFAULT_TEMPLATES, n) for n in _LABELS)
    return answer_format if same else ""


def grammar_for(answer_format: str) -> str:
    """The GBNF text of ``answer_format``; empty for free text or a name no grammar has."""
    return ANSWER_FORMATS.get(answer_format, "")


def constraint_fields(answer_format: str, constrained_decoding: str) -> dict[str, Any]:
    """Request-body fields that make an HTTP endpoint keep ``answer_format``; ``{}`` if off."""
    field = ENDPOINT_FIELDS.get(constrained_decoding)
    grammar = grammar_for(answer_format)
    if field is None or not grammar:
        return {}
    return {field: grammar}

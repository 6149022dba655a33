"""The four prompts of Self-Instruct, as replaceable wording plus the builders that fill them.

The structure follows the paper: a numbered list that the model continues (instruction
generation), a few-shot yes/no question (classification identification), and example
blocks written input-first or output-first (instance generation). The wording is ours and
lives in :class:`PromptTemplates`, so a plugin can swap any piece with
:func:`dataclasses.replace`. :mod:`selfinstruct_async.parsing` reads the answers back;
:mod:`selfinstruct_async.demonstrations` chooses the tasks instance prompts show.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from .client.protocol import SAMPLING_PARAMETERS, Api, CompletionRequest
from .records import Instance, SeedTask

Stops = Literal["anchored", "paper"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A filled prompt.

    ``text`` is what a completion model continues and what a chat model receives as the
    user message; ``system`` asks a chat model to answer in the same format and nothing
    else. ``stop`` suits ``/v1/completions``. Chat answers often open with a preamble and a
    blank line and repeat the context, so stops that only make sense for a continuation
    ("\\n\\n", "Task:") would cut them short: ``chat_stop`` keeps only the safe ones.
    """

    text: str
    system: str
    stop: tuple[str, ...]
    chat_stop: tuple[str, ...] = ()

    def stop_for(self, api: Api) -> tuple[str, ...]:
        """The stop sequences to send to the given endpoint kind."""
        return self.chat_stop if api == "chat" else self.stop

    def request(
        self, stage: str, sampling: Sampling, *, answer_format: str = ""
    ) -> CompletionRequest:
        """This prompt as a request, with a stage's sampling parameters and ``answer_format``."""
        # Parameters the settings leave out keep the request's defaults.
        given = {n: getattr(sampling, n) for n in SAMPLING_PARAMETERS if hasattr(sampling, n)}
        return CompletionRequest(
            stage=stage,
            prompt=self.text,
            system=self.system,
            stop=self.stop,
            chat_stop=self.chat_stop,
            max_tokens=sampling.max_tokens,
            answer_format=answer_format,
            **given,
        )


class Sampling(Protocol):
    """A stage's sampling settings; top_p and the penalties are optional.

    Any attribute named in :data:`~selfinstruct_async.client.protocol.SAMPLING_PARAMETERS`
    is copied into the request.
    """

    @property
    def max_tokens(self) -> int: ...

    @property
    def temperature(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    """Every piece of wording the prompts use; labels are also what the parsers look for."""

    instruction_header: str
    # Replaces ``instruction_header`` in classification-only runs, as the original does.
    instruction_classification_header: str
    instruction_system: str
    classification_header: str
    classification_question: str
    classification_system: str
    instance_input_first_header: str
    instance_output_first_header: str
    instance_system: str
    answer_yes: str = "Yes"
    answer_no: str = "No"
    task_label: str = "Task"
    example_label: str = "Example"
    input_label: str = "Input"
    output_label: str = "Output"
    class_label: str = "Class label"
    empty_input: str = "<none>"


DEFAULT_TEMPLATES = PromptTemplates(
    instruction_header=(
        "Below is a numbered list of varied things people ask a capable assistant to do. "
        "Each entry is one self-contained task, written as a single line.\n"
    ),
    instruction_classification_header=(
        "Below is a numbered list of classification tasks for a capable assistant: each one "
        "sorts its input into one of a few fixed labels and says what the possible labels "
        "are. Each entry is one self-contained task, written as a single line.\n"
    ),
    instruction_system=(
        "You extend numbered lists of tasks. Continue the user's list from the number it "
        "ends with, one new task per line, numbered like the existing entries. Make each "
        "task different from the others in topic and kind. Write only the list entries: "
        "no introduction, no commentary, no formatting."
    ),
    classification_header=(
        "For each task, decide whether its answer must be picked from a small, fixed set "
        "of possible labels (such as true/false, a sentiment, or a category). "
        "Answer Yes or No.\n"
    ),
    classification_question="Are the possible outputs a fixed set of labels?",
    classification_system=(
        "You label tasks. Reply with exactly one word, Yes or No, for the last task in "
        "the user's message, and nothing else."
    ),
    instance_input_first_header=(
        "For each task below, write examples of it being carried out. An example gives "
        "the Input the task works on and the correct Output. When a task needs no input, "
        "write <none> as its Input. Give several different examples when the task allows.\n"
    ),
    instance_output_first_header=(
        "Each task below sorts its input into one of a few class labels. For each label of "
        "a task, write the Class label first and then one or more inputs that belong to it, "
        "so that every label gets examples. When a task needs no input, write only its "
        "class label.\n"
    ),
    instance_system=(
        "You write examples for tasks. For the last task in the user's message, continue "
        "in exactly the format the earlier tasks use, and write nothing else."
    ),
)


def one_line(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to single spaces.

    ``str.split()`` splits on exactly the characters ``re``'s ``\\s`` matches in a str
    pattern (``str.isspace``), so this equals ``re.sub(r"\\s+", " ", text).strip()`` at a
    fraction of its cost; it runs on every instruction of every prompt.
    """
    return " ".join(text.split())


def build_instruction_prompt(
    instructions: Sequence[str],
    templates: PromptTemplates = DEFAULT_TEMPLATES,
    max_number: int = 16,
    *,
    classification_only: bool = False,
    stops: Stops = "anchored",
) -> Prompt:
    """A numbered list of ``instructions`` ending with the next, empty number.

    With N demonstrations the prompt ends with ``"N+1."``; the model writes items N+1 up
    to ``max_number - 1`` and the stop sequences catch the start of item ``max_number``.
    ``classification_only`` heads the list with the header asking for classification
    tasks that state their labels. ``stops="paper"`` uses the original's unanchored stops
    ("16." anywhere ends the answer, cutting "in 16.5 seconds"); the default anchors them
    to a line start.
    """
    header = (
        templates.instruction_classification_header
        if classification_only
        else templates.instruction_header
    )
    lines = [header]
    for number, instruction in enumerate(instructions, start=1):
        lines.append(f"{number}. {one_line(instruction).rstrip(':')}\n")
    lines.append(f"{len(instructions) + 1}.")
    return Prompt(
        text="".join(lines),
        system=templates.instruction_system,
        stop=_instruction_stops(max_number, stops),
        chat_stop=_instruction_stops(max_number, stops)
        if stops == "paper"
        else (f"\n{max_number}.",),
    )


def _instruction_stops(max_number: int, stops: Stops) -> tuple[str, ...]:
    if stops == "paper":
        return ("\n\n", f"\n{max_number}", f"{max_number}.", f"{max_number} .")
    return ("\n\n", f"\n{max_number}.", f"\n{max_number})", f"\n{max_number} .")


def build_classification_prompt(
    instruction: str,
    demonstrations: Sequence[tuple[str, bool]],
    templates: PromptTemplates = DEFAULT_TEMPLATES,
) -> Prompt:
    """Few-shot prompt asking whether ``instruction`` is a classification task."""
    prefix = _classification_prefix(tuple(demonstrations), templates)
    return Prompt(
        text=(
            f"{prefix}{templates.task_label}: {one_line(instruction)}\n"
            f"{templates.classification_question}"
        ),
        system=templates.classification_system,
        stop=("\n", f"{templates.task_label}:"),
    )


# A run asks with the same demonstrations in the same order for nearly every task (another
# order only after an unreadable answer): the header and the demonstration blocks, about
# 5 KB of text, are rendered once and the task appended.
@lru_cache(maxsize=16)
def _classification_prefix(
    demonstrations: tuple[tuple[str, bool], ...], templates: PromptTemplates
) -> str:
    blocks = [templates.classification_header]
    for demo, is_classification in demonstrations:
        answer = templates.answer_yes if is_classification else templates.answer_no
        blocks.append(
            f"{templates.task_label}: {one_line(demo)}\n"
            f"{templates.classification_question} {answer}\n"
        )
    return "\n".join(blocks) + "\n"


def select_classification_demonstrations(
    seeds: Sequence[SeedTask], k: int = 24
) -> list[tuple[str, bool]]:
    """Up to ``k`` labelled seed instructions, about half of them classification tasks.

    Picks are spread evenly over each group (not just the first ones) and shuffled with a
    fixed seed so that the answers do not alternate in a pattern the model could copy.
    """
    yes = [s.instruction for s in seeds if s.is_classification]
    no = [s.instruction for s in seeds if not s.is_classification]
    want_yes = min(len(yes), k // 2)
    want_no = min(len(no), k - want_yes)
    want_yes = min(len(yes), k - want_no)
    picked = [(text, True) for text in _spread(yes, want_yes)]
    picked += [(text, False) for text in _spread(no, want_no)]
    random.Random(20221220).shuffle(picked)
    return picked


def cached_request_tokens(
    shared: int, whole: int, cached_ratio: float, *, min_prefix: int = 1024, step: int = 128
) -> float:
    """One request's prompt in full-price token equivalents, its first ``shared`` tokens cached.

    Providers cache from ``min_prefix`` tokens in ``step``-token steps (OpenAI: 1,024 and
    128) and bill cached tokens at ``cached_ratio`` of the prompt price. Comparing two
    prompt designs with it says whether a longer, cacheable prefix costs less: the default
    classification prompt (1,171 shared of 1,188 tokens) is 612 at half price against the
    757 of the paper preset's 24 demonstrations, and pays while the ratio is below 0.62.
    """
    if shared < min_prefix:
        return float(whole)
    cached = min_prefix + (min(shared, whole) - min_prefix) // step * step
    return cached * cached_ratio + (whole - cached)


def _spread(items: Sequence[str], count: int) -> list[str]:
    if count <= 0:
        return []
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def build_instance_prompt(
    instruction: str,
    is_classification: bool,
    demonstrations: Sequence[SeedTask],
    templates: PromptTemplates = DEFAULT_TEMPLATES,
    max_instances: int = 5,
    *,
    stops: Stops = "anchored",
) -> Prompt:
    """Example blocks for ``demonstrations``, ending with the new task's ``Task:`` line.

    Classification tasks are written output-first (``Class label:`` then its inputs), the
    paper's way of keeping the model from favouring one label; the rest input-first
    (``Example n`` / ``Input:`` / ``Output:``). ``stops="paper"`` stops at "Task:" anywhere,
    as the original does; the default only at a line start, so an input quoting "Task:"
    survives.
    """
    header = (
        templates.instance_output_first_header
        if is_classification
        else templates.instance_input_first_header
    )
    blocks = [header]
    blocks.extend(
        _demonstration_block(demo, is_classification, templates) for demo in demonstrations
    )
    blocks.append(f"{templates.task_label}: {one_line(instruction)}\n")
    stop = f"{templates.example_label} {max_instances + 1}"
    prefix = "" if stops == "paper" else "\n"
    return Prompt(
        text="\n".join(blocks),
        system=templates.instance_system,
        stop=(stop, f"{prefix}{templates.task_label}:"),
        chat_stop=(stop, f"{templates.task_label}:") if stops == "paper" else (stop,),
    )


# Rendered blocks by the identity of their task and templates. Demonstrations come from a
# fixed set of objects (the built-in ones, or the seeds): looking a block up by identity
# skips hashing and comparing a whole SeedTask with its instances, which cost more than
# the lookup saved. Each entry holds its objects, so their ids cannot be reused while it
# is there.
_BLOCKS: dict[tuple[int, bool, int], tuple[SeedTask, PromptTemplates, str]] = {}
_MAX_BLOCKS = 1024


def _demonstration_block(
    demo: SeedTask, is_classification: bool, templates: PromptTemplates
) -> str:
    key = (id(demo), is_classification, id(templates))
    hit = _BLOCKS.get(key)
    if hit is not None and hit[0] is demo and hit[1] is templates:
        return hit[2]
    block = _render_block(demo, is_classification, templates)
    if len(_BLOCKS) >= _MAX_BLOCKS:
        _BLOCKS.clear()
    _BLOCKS[key] = (demo, templates, block)
    return block


# Equal tasks that are other objects (demonstrations read again) still render once.
@lru_cache(maxsize=1024)
def _render_block(demo: SeedTask, is_classification: bool, templates: PromptTemplates) -> str:
    if is_classification:
        body = _output_first_block(demo.instances, templates)
    else:
        body = _input_first_block(demo.instances, templates)
    return f"{templates.task_label}: {one_line(demo.instruction)}\n{body}"


def _field(value: str, templates: PromptTemplates) -> str:
    value = value.strip()
    return value if value else templates.empty_input


def _input_first_block(instances: Sequence[Instance], templates: PromptTemplates) -> str:
    lines: list[str] = []
    for number, instance in enumerate(instances, start=1):
        lines.append(f"{templates.example_label} {number}")
        lines.append(f"{templates.input_label}: {_field(instance.input, templates)}")
        lines.append(f"{templates.output_label}: {instance.output.strip()}")
    return "".join(line + "\n" for line in lines)


def _output_first_block(instances: Sequence[Instance], templates: PromptTemplates) -> str:
    """Each label once, followed by its inputs; a label without input stands alone.

    A task that needs no input is shown as its label only, the instance the parser reads
    back from a label with no ``Input:`` line.
    """
    by_label: dict[str, list[str]] = {}
    for instance in instances:
        inputs = by_label.setdefault(one_line(instance.output), [])
        if instance.input.strip():
            inputs.append(instance.input)
    lines: list[str] = []
    for label, inputs in by_label.items():
        lines.append(f"{templates.class_label}: {label}")
        lines.extend(f"{templates.input_label}: {text.strip()}" for text in inputs)
    return "".join(line + "\n" for line in lines)


def select_instance_demonstrations(
    seeds: Sequence[SeedTask], is_classification: bool, rng: random.Random, k: int = 4
) -> list[SeedTask]:
    """``k`` seed tasks of the same kind, each with at least one instance with an output.

    Used when ``instances.demonstrations_from = "seeds"``: every task gets its own draw.

    For input-first prompts the sample includes a task without input and one with input
    when the seeds have them, so the model sees both ways of writing ``Input:``.
    """
    pool = [
        s
        for s in seeds
        if s.is_classification == is_classification and any(i.output.strip() for i in s.instances)
    ]
    if len(pool) <= k:
        picked = list(pool)
        rng.shuffle(picked)
        return picked
    if is_classification or k < 2:
        return rng.sample(pool, k)
    no_input = [s for s in pool if not any(i.input.strip() for i in s.instances)]
    with_input = [s for s in pool if any(i.input.strip() for i in s.instances)]
    picked = []
    if no_input and with_input:
        picked = [rng.choice(no_input), rng.choice(with_input)]
    rest = [s for s in pool if s not in picked]
    picked += rng.sample(rest, k - len(picked))
    rng.shuffle(picked)
    return picked

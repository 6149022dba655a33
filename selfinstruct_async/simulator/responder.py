"""Plausible model answers to our prompts, for the simulated OpenAI-compatible server.

:func:`respond` recognises which Self-Instruct prompt it was given from the default
wording in :mod:`selfinstruct_async.prompts` and answers it the way a model would,
including the mistakes the filters exist for (near-duplicates, blacklisted words, empty
outputs...) and, for chat endpoints, a chat model's habits (preambles, markdown,
renumbering). Answers are a pure function of the request and ``seed``, so a benchmark or
test run can be repeated exactly.
"""

from __future__ import annotations

import hashlib
import random
import re

from ..prompts import DEFAULT_TEMPLATES as T

__all__ = ["respond"]

from .vocabulary import (
    ADJECTIVES,
    BLACKLISTED,
    CHAT_CLOSERS,
    CHAT_PREAMBLES,
    CLASSIFY_VERBS,
    CRITERIA,
    FOREIGN,
    FORM_VERBS,
    FORMS,
    NOUNS,
    OPEN_TASKS,
    PLACES,
    POINTERS,
    PROGRAMS,
    PUNCTUATED,
    QUALIFIERS,
    ROLES,
    TEXT_KINDS,
    TOO_SHORT,
    TRANSFORMS,
)

LAST_ITEM = 15  # the default instruction prompt stops generation at item 16

_NEEDS_INPUT = re.compile(
    r"\b(following|given|this|these|below|provided|above|the (?:text|sentence|passage|"
    r"paragraph|list|review|statement|message|headline|question|note|article))\b",
    re.IGNORECASE,
)
_CLASSIFY_WORDS = re.compile(
    r"\b(classify|classification|categori[sz]e|categori[sz]ation|sentiment|true or false|"
    r"spam|label the|yes or no|which category|positive or negative|is it (?:a|an))\b|"
    r"\b(?:as|into)\b[^.?!]*\bor\b",
    re.IGNORECASE,
)
_CODE_WORDS = re.compile(r"\b(program|function|code|script|python|sql|regex|algorithm)\b", re.I)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8", "replace"))
    return random.Random(int.from_bytes(digest.digest()[:8], "big"))


def respond(
    prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
) -> tuple[str, str]:
    """Answer ``prompt`` like a model would; returns ``(text, finish_reason)``.

    The answer depends only on the arguments. It is cut after roughly ``max_tokens``
    tokens (words x 1.3), in which case the finish reason is ``"length"``.
    """
    rng = _rng(seed, int(chat), system, prompt)
    if T.instruction_header in prompt or T.instruction_classification_header in prompt:
        text = _instructions(prompt, rng, chat)
    elif T.classification_header in prompt:
        text = _classification(prompt, rng, chat, seed)
    elif T.instance_output_first_header in prompt:
        text = _instances(prompt, rng, chat, output_first=True)
    elif T.instance_input_first_header in prompt:
        text = _instances(prompt, rng, chat, output_first=False)
    else:
        text = rng.choice(
            [
                "I am not sure what you would like me to do. Could you give more details?",
                "Here is a short answer: it depends on the context.",
                "Thank you for the question. In short, yes.",
            ]
        )
    return _limit(text, max_tokens)


def _limit(text: str, max_tokens: int) -> tuple[str, str]:
    words = list(re.finditer(r"\S+", text))
    if len(words) * 1.3 <= max_tokens:
        return text, "stop"
    keep = max(0, int(max_tokens / 1.3))
    return (text[: words[keep - 1].end()] if keep else ""), "length"


def _topic(rng: random.Random) -> str:
    topic = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    return f"{topic} {rng.choice(PLACES)}" if rng.random() < 0.6 else topic


def _fill(template: str, rng: random.Random) -> str:
    return template.format(topic=_topic(rng), topic2=_topic(rng), noun=rng.choice(NOUNS))


def _good_instruction(rng: random.Random) -> str:
    roll = rng.random()
    text_ = f"{rng.choice(POINTERS)} {rng.choice(TEXT_KINDS)} about {_topic(rng)}"
    if roll < 0.15:
        text = f"{rng.choice(CLASSIFY_VERBS)} {text_} {rng.choice(CRITERIA)}"
    elif roll < 0.35:
        verb, tail = rng.choice(TRANSFORMS)
        text = f"{verb} {text_} {tail}".rstrip()
    else:
        if rng.random() < 0.5:
            text = f"{rng.choice(FORM_VERBS)} {rng.choice(FORMS)} about {_topic(rng)}"
        else:
            openings, rest = rng.choice(OPEN_TASKS)
            text = f"{rng.choice(openings)} {_fill(rest, rng)}"
        if rng.random() < 0.75:
            text += f" {rng.choice(QUALIFIERS)}"
    text += "."
    if rng.random() < 0.25:
        text = f"Imagine you are {rng.choice(ROLES)}. {text}"
    return text


def _near_duplicate(demo: str, rng: random.Random) -> str:
    words = demo.rstrip(".?!").split()
    choice = rng.randrange(3)
    if choice == 0 or len(words) < 4:
        return f"Please {demo[:1].lower()}{demo[1:]}"
    if choice == 1:
        return " ".join(words[:-1]) + "."
    demo = demo.rstrip()
    return demo + ("" if demo[-1:] in ".?!" else ".") + " Keep it brief."


def _new_instruction(rng: random.Random, demos: list[str]) -> str:
    roll = rng.random()
    if roll < 0.08 and demos:
        return _near_duplicate(rng.choice(demos), rng)
    if roll < 0.14:
        return _fill(rng.choice(BLACKLISTED), rng) + "."
    if roll < 0.18:
        return rng.choice(TOO_SHORT)
    if roll < 0.20:
        return _fill(rng.choice(FOREIGN), rng)
    if roll < 0.22:
        return rng.choice(PUNCTUATED).format(task=_good_instruction(rng))
    if roll < 0.26:
        return _fill(rng.choice(PROGRAMS), rng)
    if roll < 0.27:
        return " ".join(_good_instruction(rng) for _ in range(12))  # far too long
    return _good_instruction(rng)


_DEMO_LINE = re.compile(r"^(\d+)\.\s+(.+)$")
_OPEN_NUMBER = re.compile(r"(?:^|\n)(\d+)\.\s*$")


def _instructions(prompt: str, rng: random.Random, chat: bool) -> str:
    demos = [m.group(2) for m in map(_DEMO_LINE.match, prompt.splitlines()) if m]
    opening = _OPEN_NUMBER.search(prompt)
    first = int(opening.group(1)) if opening else len(demos) + 1
    count = max(1, LAST_ITEM - first + 1)
    if not chat and rng.random() < 0.1:
        count = rng.randint(1, count)  # the model ended the list early with a blank line
    items = [_new_instruction(rng, demos) for _ in range(count)]
    if not chat:
        lines = [f" {items[0]}"] + [f"{first + i}. {item}" for i, item in enumerate(items[1:], 1)]
        return "\n".join(lines)

    start = 1 if rng.random() < 0.2 else first
    style = rng.choice(["plain", "bold_number", "bold_text", "paren", "task", "bullet", "title"])
    formatted = []
    for i, item in enumerate(items):
        n = start + i
        formatted.append(
            {
                "plain": f"{n}. {item}",
                "bold_number": f"**{n}.** {item}",
                "bold_text": f"{n}. **{item}**",
                "paren": f"{n}) {item}",
                "task": f"Task {n}: {item}",
                "bullet": f"- {item}",
                "title": f"{n}. **{' '.join(item.split()[:2]).rstrip('.,;:')}**: {item}",
            }[style]
        )
    separator = "\n\n" if rng.random() < 0.3 else "\n"
    parts = [rng.choice(CHAT_PREAMBLES), ""]
    if rng.random() < 0.1:
        parts += ["### More tasks", ""]
    parts.append(separator.join(formatted))
    if rng.random() < 0.5:
        parts += ["", rng.choice(CHAT_CLOSERS)]
    text = "\n".join(parts)
    return text.replace("\n", "\r\n") if rng.random() < 0.05 else text


def _last_task(prompt: str) -> str:
    marker = f"{T.task_label}: "
    at = prompt.rfind(marker)
    if at < 0:
        return ""
    return prompt[at + len(marker) :].split("\n", 1)[0].strip()


def _classification(prompt: str, rng: random.Random, chat: bool, seed: int) -> str:
    instruction = _last_task(prompt)
    if _rng("unsure", seed, instruction).random() < 0.03:
        answer = rng.choice(["Maybe", "It depends.", "Unclear"])
    else:
        is_yes = bool(_CLASSIFY_WORDS.search(instruction))
        if not is_yes:
            is_yes = _rng("label", instruction).random() < 0.08
        answer = T.answer_yes if is_yes else T.answer_no
    if not chat:
        return f" {answer}"
    return rng.choice(
        [
            answer,
            f"{answer}.",
            f"**{answer}**",
            f"Answer: {answer}",
            f"{answer}\n\nThe expected output {'is' if answer == 'Yes' else 'is not'} a label.",
        ]
    )


_SENTENCE_STARTS = [
    "The {topic} near the old station reopened last spring",
    "Our committee visited three {topic} and took notes",
    "Most people underestimate how much work {topic} need",
    "A report on {topic} was published on 12 March 2021",
    "Volunteers have looked after the {topic} since 1998",
    "Nobody expected the {topic} to become so popular",
    "Local families often spend Sunday afternoons at the {topic}",
]
_ANSWERS = [
    "A clear answer is that {topic} benefit from steady funding and patient volunteers.",
    "In short: start small, keep records, and ask people who run {topic} for advice.",
    "The key point is that {topic} serve the whole community, not just a few enthusiasts.",
    "Here is one possibility. The {topic} could open earlier and offer guided visits.",
    "Overall, {topic} are worth the effort, although they need careful planning.",
]


def _sentence(rng: random.Random) -> str:
    return _fill(rng.choice(_SENTENCE_STARTS), rng) + "."


def _code(rng: random.Random) -> str:
    name = rng.choice(["count_items", "sort_names", "find_overlap", "clean_text"])
    return (
        f"def {name}(values):\n"
        f"    result = sorted(set(values))\n"
        f"    return result[: {rng.randint(2, 9)}]"
    )


def _labels(instruction: str) -> list[str]:
    low = instruction.lower()
    if "true or false" in low:
        return ["True", "False"]
    if "spam" in low:
        return ["Spam", "Not spam"]
    found = _LABEL_LIST.search(instruction)
    if found:
        labels = []
        for part in re.split(r",\s*(?:or\s+)?|\s+or\s+", found.group(1)):
            part = re.sub(r"^(?:an?|the)\s+", "", part.strip(), flags=re.I)
            if part and part[:1].upper() + part[1:] not in labels:
                labels.append(part[:1].upper() + part[1:])
        if len(labels) >= 2:
            return labels
    if "sentiment" in low:
        return ["Positive", "Negative", "Neutral"]
    return [T.answer_yes, T.answer_no]


_LABEL_LIST = re.compile(r"\b(?:as|into)\s+([^.?!]*?\bor\b[^.?!]*)")


def _instances(prompt: str, rng: random.Random, chat: bool, *, output_first: bool) -> str:
    instruction = _last_task(prompt)
    if output_first:
        body = _output_first(instruction, rng, chat)
    else:
        body = _input_first(instruction, rng, chat)
    if not chat:
        return body
    preamble = rng.choice(
        ["Here are some examples for this task:", "Sure! Examples:", "Certainly."]
    )
    text = f"{preamble}\n\n{body}"
    if rng.random() < 0.3:
        text += "\n\nLet me know if you need more examples."
    return text


def _input_first(instruction: str, rng: random.Random, chat: bool) -> str:
    needs_input = bool(_NEEDS_INPUT.search(instruction))
    is_code = bool(_CODE_WORDS.search(instruction))
    pairs: list[tuple[str, str]] = []
    for _ in range(rng.choice([1, 2, 3, 3, 4, 4, 5, 5, 5])):
        given = _sentence(rng) if needs_input else ""
        if is_code:
            answer = _code(rng)
            if chat:
                answer = f"```python\n{answer}\n```"
        else:
            answer = _fill(rng.choice(_ANSWERS), rng)
        roll = rng.random()
        if roll < 0.05:
            answer = ""
        elif roll < 0.09:
            answer = "Here are the steps:"
        elif roll < 0.13 and given:
            answer = given
        elif roll < 0.17 and pairs and pairs[-1][0]:
            given = pairs[-1][0]  # the same input again, with a different output
        pairs.append((given, answer))
    bold = chat and rng.random() < 0.5
    heading = "### " if chat and rng.random() < 0.3 else ""
    lines = []
    for number, (given, answer) in enumerate(pairs, start=1):
        in_label = f"**{T.input_label}:**" if bold else f"{T.input_label}:"
        out_label = f"**{T.output_label}:**" if bold else f"{T.output_label}:"
        empty = rng.choice(["N/A", "None", T.empty_input]) if chat else T.empty_input
        lines.append(f"{heading}{T.example_label} {number}")
        lines.append(f"{in_label} {given or empty}")
        if "\n" in answer:
            lines.append(out_label)
            lines.append(answer)
        else:
            lines.append(f"{out_label} {answer}".rstrip())
        if chat:
            lines.append("")
    return "\n".join(lines).rstrip("\n")


def _output_first(instruction: str, rng: random.Random, chat: bool) -> str:
    labels = _labels(instruction)
    bold = chat and rng.random() < 0.5
    lines = []
    total = 0
    seen: list[str] = []
    for label in labels:
        if total >= 5:
            break
        shown = "" if rng.random() < 0.04 else label  # an empty label: an empty output
        lines.append(f"**{T.class_label}:** {shown}" if bold else f"{T.class_label}: {shown}")
        for _ in range(rng.choice([1, 1, 2])):
            if total >= 5:
                break
            given = _sentence(rng)
            roll = rng.random()
            if roll < 0.05 and seen:
                given = seen[-1]  # the same input under another label
            elif roll < 0.08:
                given = label
            seen.append(given)
            lines.append(f"**{T.input_label}:** {given}" if bold else f"{T.input_label}: {given}")
            total += 1
        if chat:
            lines.append("")
    return "\n".join(lines).rstrip("\n")

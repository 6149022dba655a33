"""The ``non_text_modality`` filter: tasks a text-only model cannot do.

It is this project's addition, on by default and ordered after every filter of the paper,
``rouge_similarity`` included (see ``NonTextModality.order``). It rejects an instruction
when *doing* the task needs something a text model does not have, and lets it through
when the task only *mentions* such a thing. The rule:

Rejected (the reason names the need):

- **seeing or hearing something it points at**: "this photo", "the image below", "the
  attached chart", "in the picture", "the video I sent", "Figure 2", "what you see",
  "listen to ...", "watch the video". A thing the instruction points at is not in the text,
  so it is rejected even when the instruction says what is in it ("Give a caption for this
  photo of a sunset" is rejected: the caption would be for a picture the model cannot see).
  So is a task whose input is a picture: "Given a photo of a room, list the furniture".
- **producing a picture, chart or sound**: draw, sketch, paint, plot, graph, diagram,
  animate, visualise; create, make, generate or design an image, chart, diagram, map,
  logo, poster, infographic, video, animation, melody or other music; answer "with a
  diagram"; sing, hum, record, film, play music, read aloud.
- **opening what is outside the conversation**: an attached or uploaded file, a PDF or
  spreadsheet it is pointed at, a link or URL, a website; browsing or searching the web;
  the user's inbox, calendar, computer or phone; downloading, uploading, installing.
- **acting in the physical world or for someone**: call, text or email someone; send or
  mail something; go, visit, drive; buy, order, book, pay, rent; cook, bake, clean, water
  the plants; take a photo; set an alarm, turn off the lights; "near me", "outside"; and
  any other imperative done to a household thing ("Knock on the door", "Check the oven").

Let through:

- the non-text thing as a topic: explaining, comparing or advising about it, or how to make
  or use it ("Explain how pie charts can mislead readers", "Describe the steps to take a
  screenshot", "What is a bar graph used for?", "How do I send a fax?");
- text about, for or inspired by a thing the instruction itself describes in words, with an
  indefinite article ("Write a poem about a photograph of your grandmother", "Suggest a
  caption for a photo of a beach", "Write alt text for an image of a dog in the snow");
- well-known works known from text ("Describe the Mona Lisa", "the plot of Hamlet");
- the text of a message or plan, which the user sends or carries out ("Write an email to my
  manager", "Plan a trip to Rome"), and text meant to render as a picture (matplotlib or
  Mermaid code, ASCII art, a table), or a graph given as its edges;
- figurative uses: paint a picture with words, map out a plan, draw a conclusion, draw up a
  contract, sketch out a timeline, chart a course, the big picture, public image, plot a
  novel, file a complaint, walk me through, go over, look at the problem.

How: imperative verbs count only at the start of a clause (the start of a sentence, after
"please", "can you", "I want you to", or after "and"/"then" when no "how", "why",
"steps to"... came before in the sentence), so "Explain how to draw a cat" is a mention and
"Write a haiku and draw a picture for it" is a request. Pointing at a picture or recording
counts anywhere. Everything is a precompiled regular expression: the filter runs on every
candidate (tens of microseconds each), and a pattern whose every match holds one of a few
words is not run on an ASCII text without them. The patterns live in
:mod:`.modality_nouns` (what a task points at) and :mod:`.modality_verbs` (imperatives and
clause starts); this module is the rule. :mod:`.modality_quick` finds the same matches
with less scanning: a clause is tried only against the imperatives its first word can
begin, and the noun scans skip every place no match can start.
``bench/non_text_modality.py`` measures precision and recall on the labelled sets in
``tests/data/non_text_modality/``. Known misses: a
pointed-at noun followed by a word the patterns cannot tell from a compound ("the audio
male or female?", "Make the photo black and white").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from selfinstruct_async import BaseFilter, Rejection, hookimpl

from .modality_nouns import (
    _ATTACHED,
    _ATTACHED_WORDS,
    _CODE_TASK,
    _DOC_NOUN,
    _FIGURATIVE_MEDIA,
    _HEARD_RE,
    _NOUN_WORDS,
    _PERCEIVE,
    _PERCEIVE_WORDS,
    _SEEN_RE,
    _SURROUNDINGS,
    _SURROUNDINGS_WORDS,
    _TEXT_FORM,
    _URL,
    _URL_VERB,
    _WEB_NOUN,
    _WEBSITE_USE,
    _WEBSITE_USE_WORDS,
    _WORD,
    HEAR,
    OPEN,
    SEE,
    SOUND,
    WEB,
    WORLD,
)
from .modality_quick import (
    MENTION_SCOPE,
    POINTING,
    THE_MEDIA,
    action_at,
    action_span,
    boundaries_from,
    household_named,
    letter_runs,
)
from .modality_verbs import (
    _ACTION_BUT_DRAW,
    _BOUNDARY,
    _MAY_BOUNDARY,
    _NEED_OF,
    _SOUND_OR_VIDEO,
    _SUBJECT_FIRST,
)

# A word names a medium when it, or it plus "s", is a noun word: the words and their
# singulars, matched against the text's set of words at once.
_NOUN_FORMS = _NOUN_WORDS | {w[:-1] for w in _NOUN_WORDS if w.endswith("s")}
_NOUN_BYTES = frozenset(word.encode() for word in _NOUN_FORMS)  # to meet letter_runs()

# Patterns each run only on a text holding one of its words (see non_text_need).
_WORD_GATED = (
    (_PERCEIVE, _PERCEIVE_WORDS, SEE),
    (_SURROUNDINGS, _SURROUNDINGS_WORDS, WORLD),
    (_WEBSITE_USE, _WEBSITE_USE_WORDS, WEB),
)


def _names_a_medium(lowered: str) -> bool:
    return not _NOUN_FORMS.isdisjoint(_WORD.findall(lowered))


def _clause_starts(text: str) -> Iterator[int]:
    """Where an imperative may start: each sentence, and "and ..." after an imperative."""
    sentence = len(text) - len(text.lstrip())
    yield sentence
    first = _MAY_BOUNDARY.search(text)
    if first is None:
        return  # one clause: no "and", "then" or sentence end in it
    # "I packed my bag and locked the door": "and" joins a subject's verbs, not commands.
    commands = _SUBJECT_FIRST.match(text, sentence) is None
    for m in _BOUNDARY.finditer(text, boundaries_from(text, first.start())):
        if m.group("end") is not None:
            sentence = m.end()
            commands = _SUBJECT_FIRST.match(text, sentence) is None
            yield m.end()
        elif commands and not MENTION_SCOPE.search(text, sentence, m.start()):
            yield m.end()


def _holds_any(lowered: str, words: tuple[str, ...]) -> bool:
    # A loop, not any() over a generator (twice as fast): it runs four times per instruction.
    for word in words:  # noqa: SIM110
        if word in lowered:
            return True
    return False


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def non_text_need(instruction: str) -> tuple[str, str] | None:
    """``(what is needed, the words that show it)``, or ``None`` for a text-only task."""
    text = instruction
    lowered = text.lower()
    # A pattern whose every match holds one of a few words is skipped when none of them is
    # in the text: ``in`` on a string is far cheaper than a scan with the pattern. Only
    # for ASCII texts: IGNORECASE also folds letters that lower() keeps ("\u017f" is "s").
    ascii_text = text.isascii()

    m = _ATTACHED.search(text) if not ascii_text or _holds_any(lowered, _ATTACHED_WORDS) else None
    if m:
        # "I've attached a photo": what was attached follows the match.
        what = text[m.start() : m.end() + 40]
        need = HEAR if _HEARD_RE.search(what) else SEE if _SEEN_RE.search(what) else OPEN
        return need, _quote(m.group(0))
    if ("/" in text or "www." in lowered) and _URL_VERB.search(text):
        url = _URL.search(text)
        if url:
            return WEB, _quote(url.group(0))
    runs = letter_runs(lowered) if ascii_text else []
    medium = (not _NOUN_BYTES.isdisjoint(runs)) if ascii_text else _names_a_medium(lowered)
    if medium:
        found = _pointed_at(text)
        if found:
            return found
    for pattern, words, need in _WORD_GATED:
        m = pattern.search(text) if not ascii_text or _holds_any(lowered, words) else None
        if m:
            return need, _quote(m.group(0))
    # Only the imperatives a clause's first word can begin are tried (same match).
    ascii_lowered = lowered if ascii_text else None
    chore = not ascii_text or household_named(runs)
    for start in _clause_starts(text):
        act = action_at(text, ascii_lowered, start, chore)
        if act and act[0] == "draw" and _drawing_excused(text, act[1]):
            act = action_span(_ACTION_BUT_DRAW.match(text, start))
        if act:
            group, begin, end = act
            asked = text[begin:end]
            if group == "draw" and _SOUND_OR_VIDEO.search(asked):
                return SOUND, _quote(asked)  # "Compose a melody", "Make a short film"
            return _NEED_OF[group], _quote(asked)
    return None


def _pointed_at(text: str) -> tuple[str, str] | None:
    code_task: bool | None = None
    for pattern in (POINTING, THE_MEDIA):  # _POINTING and _THE_MEDIA, guarded
        for m in pattern.finditer(text):
            if _FIGURATIVE_MEDIA.search(text, max(m.start() - 40, 0), m.end() + 60):
                continue
            noun = next((v for k, v in m.groupdict().items() if k.startswith("noun") and v), m[0])
            heard = _HEARD_RE.fullmatch(noun) is not None
            if code_task is None:
                code_task = _CODE_TASK.search(text) is not None
            if code_task and not heard:
                continue  # "Write code that finds faces in the image": the answer is code
            if _DOC_NOUN.fullmatch(noun):
                return OPEN, _quote(m.group(0))
            if _WEB_NOUN.fullmatch(noun):
                return WEB, _quote(m.group(0))
            return (HEAR if heard else SEE), _quote(m.group(0))
    return None


def _drawing_excused(text: str, start: int) -> bool:
    """A picture asked for in text form (code, ASCII art, words), or a figure of speech."""
    return bool(_TEXT_FORM.search(text) or _FIGURATIVE_MEDIA.search(text, start))


class NonTextModality(BaseFilter):
    """Rejects tasks that need seeing, hearing, drawing, files, the web or the physical world.

    The module docstring states the rule: pointing at a picture or asking for one is
    rejected, mentioning one is not.
    """

    name = "non_text_modality"
    # After every filter of the paper, ROUGE-L included: ROUGE-L names every candidate too
    # similar to the pool, as the paper's code does, and this check's ~20 us is not spent
    # on the candidates ROUGE-L throws out (98% of those reaching it at a 50,000-task pool;
    # at a small pool ROUGE-L is cheap and the few non-text ones cost it little).
    order = 95

    def check(self, instruction: str) -> Rejection | None:
        found = non_text_need(instruction)
        if found is None:
            return None
        need, words = found
        return Rejection(f"needs {need}: {words}")


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(NonTextModality)

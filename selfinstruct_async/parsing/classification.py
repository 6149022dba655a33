"""Reading a Yes or a No out of an answer to the classification-identification prompt."""

from __future__ import annotations

import re

from .markup import split_lines

_YES_NO_START = re.compile(r"^(yes|no)\b", re.IGNORECASE)
_ANSWER_LABEL = re.compile(
    r"^(?:(?:final\s+)?answer|a|output|label|classification|response|result)\s*[:\-]\s*",
    re.IGNORECASE,
)
_ANSWER_IS = re.compile(
    r"\banswer\s*(?:is|would be|:)\s*[:\-]?\s*[*_\"'`]*\s*(yes|no)\b", re.IGNORECASE
)
_WORD_YES = re.compile(r"\byes\b", re.IGNORECASE)
_WORD_NO = re.compile(r"\bno\b", re.IGNORECASE)
_DECORATION = re.compile(r"[*_`#>\"'\u201c\u201d\u2018\u2019\[\]()]+")


def parse_classification(text: str) -> bool | None:
    """``True`` for a Yes, ``False`` for a No, ``None`` when the answer says neither.

    Reads the first line that has words on it ("Yes", "**No**", "Answer: yes."), then an
    explicit "the answer is ..." anywhere, then a lone yes or no in the text.
    """
    text = text[:20000]
    for raw in split_lines(text):
        line = _DECORATION.sub(" ", raw).strip()
        if not line:
            continue
        line = _ANSWER_LABEL.sub("", line).strip()
        start = _YES_NO_START.match(line)
        if start:
            return start.group(1).lower() == "yes"
        break
    answers = _ANSWER_IS.findall(_DECORATION.sub(" ", text))
    if answers:
        return bool(answers[-1].lower() == "yes")
    has_yes = _WORD_YES.search(text) is not None
    has_no = _WORD_NO.search(text) is not None
    if has_yes != has_no:
        return has_yes
    return None

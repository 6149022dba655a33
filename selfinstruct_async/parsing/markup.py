"""The chat-style markup the answer readers see through: numbering, bullets, bold, fences.

Completion models continue the prompt; chat models answer it, with a friendly preamble,
markdown numbering and bold labels, code fences and a closing offer of more help. These
patterns and :func:`strip_outer_markup` are shared by the readers in this package.
"""

from __future__ import annotations

import re

_NEWLINES = re.compile(r"\r\n?")
_MARKUP = r"(?:\*\*|__|\*|_)?"
# "10. x", "10) x", "(10) x", "**10.** x", "### 10. x", "Task 10: x", "#10 - x".
NUMBERED = re.compile(
    r"^(?:[#>]\s*)*(?:[-*+]\s+)?" + _MARKUP + r"\s*(?:(?:task|instruction|item)\s*#?\s*|#\s*)?"
    r"\(?(\d{1,3})\s*(?:[.):]|\s-)" + _MARKUP + r"(?:\s+|$|(?=(?-i:[A-Z])))(.*)$",
    re.IGNORECASE,
)
BULLET = re.compile(r"^(?:>\s*)?[-*+\u2022]\s+(.*)$")
HEADING = re.compile(r"^(?:#{1,6}\s|(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$)")
FENCE = re.compile(r"^\s*(?:```|~~~)")
_BOLD_TITLE = re.compile(r"^(?:\*\*|__)([^*_]{1,80}?)(?:\*\*|__)\s*[:\-\u2013\u2014]\s*(.+)$")
_INLINE_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_LABEL_PREFIX = re.compile(r"^(?:instruction|task|new task)\s*:\s*", re.IGNORECASE)
CLOSERS = re.compile(
    r"^(?:let me know|i hope|hope (?:this|these)|feel free|these tasks|these examples|"
    r"these instructions|would you like|if you(?:'d| would)? like|if you need|i can (?:also )?|"
    r"note:|enjoy|happy to|do you want|want me to)",
    re.IGNORECASE,
)
PREAMBLE = re.compile(
    r"^(?:(?:sure|certainly|of course|okay|ok|absolutely|great|alright)\b\s*[!,.]|"
    r"here(?:'s| is| are) (?:some|more|a few|another|additional|my|\d+\b|"
    r"the (?:rest|continuation|next|following))|"
    r"below (?:are|is)\b)",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'", "`": "`"}


def split_lines(text: str) -> list[str]:
    return _NEWLINES.sub("\n", text).split("\n")


def strip_outer_markup(text: str) -> str:
    """Drop emphasis or quotes wrapping the whole item, and chat-style bold titles."""
    text = text.strip()
    for _ in range(3):
        before = text
        match = _BOLD_TITLE.match(text)
        if match and len(match.group(1).split()) <= 6:
            text = match.group(2).strip()
        for mark in ("**", "__", "*", "_"):
            if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
                inner = text[len(mark) : -len(mark)]
                if mark not in inner:
                    text = inner.strip()
        close = _QUOTES.get(text[:1])
        if close and len(text) > 2 and text.endswith(close) and close not in text[1:-1]:
            text = text[1:-1].strip()
        text = _LABEL_PREFIX.sub("", text)
        text = _INLINE_BOLD.sub(r"\1", text)
        if text == before:
            break
    return text

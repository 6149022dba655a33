"""Watching for candidates the tokenizer cannot see, which the similarity filter never rejects.

ROUGE-L scores a text with no tokens 0 against everything, so when the tokenizer does not
fit the language (rouge-score's ASCII-only rule on Chinese, say) duplicates pass the
filter silently. :class:`EmptyTokensMonitor` counts such candidates as the index sees
them and raises :class:`~selfinstruct_async.errors.EmptyTokensError` (or warns) once they
are a real share of the recent ones. Formerly ``empty.py``: the name says what is empty.
"""

from __future__ import annotations

import warnings
from collections import deque

from ..errors import EmptyTokensError
from .settings import OnEmpty, check_on_empty

__all__ = ["EmptyTokensError", "EmptyTokensMonitor", "EmptyTokensWarning", "OnEmpty"]


class EmptyTokensWarning(UserWarning):
    """Like :class:`EmptyTokensError`, when the index is configured to warn only."""


class EmptyTokensMonitor:
    """Fails loudly when a real share of recent candidates tokenize to nothing.

    ROUGE-L scores an empty token list 0 against everything, so such candidates are never
    rejected as duplicates: with rouge-score's tokenizer that is every Chinese, Japanese or
    Russian instruction. The check looks at the last ``window`` candidates once it has seen
    ``min(window, 50)`` of them.
    """

    def __init__(
        self,
        tokenizer_name: str,
        window: int = 200,
        max_share: float = 0.2,
        on_empty: OnEmpty = "error",
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        check_on_empty(on_empty, key="on_empty")
        self.tokenizer_name = tokenizer_name
        self.window = window
        self.max_share = max_share
        self.on_empty: OnEmpty = on_empty
        self.total = 0
        self.total_empty = 0
        self._recent: deque[bool] = deque(maxlen=window)
        self._recent_empty = 0
        self._first_check = min(window, 50)
        self._example = ""
        self._warned = False

    def record(self, text: str, empty: bool) -> None:
        """Count one candidate; raise or warn when too many of the recent ones were empty."""
        if len(self._recent) == self.window and self._recent[0]:
            self._recent_empty -= 1
        self._recent.append(empty)
        self.total += 1
        if empty:
            self._recent_empty += 1
            self.total_empty += 1
            if text.strip():
                self._example = text
        elif not self._recent_empty and self.max_share >= 0:  # a share of 0 passes
            return
        if self.on_empty == "ignore" or len(self._recent) < self._first_check:
            return
        if self._recent_empty / len(self._recent) <= self.max_share:
            return
        message = self.message()
        if self.on_empty == "error":
            raise EmptyTokensError(message)
        if not self._warned:
            self._warned = True
            warnings.warn(message, EmptyTokensWarning, stacklevel=3)

    def message(self) -> str:
        """Explain the problem and what to do about it."""
        hint = (
            'set tokenizer = "unicode" (CJK by character, other scripts by word)'
            if self.tokenizer_name == "rouge"
            else "use a tokenizer that covers the language of your data"
        )
        example = f"; for example {self._example[:60]!r}" if self._example else ""
        return (
            f"{self._recent_empty} of the last {len(self._recent)} candidates contain no "
            f"tokens for the {self.tokenizer_name!r} tokenizer{example}. ROUGE-L scores them 0 "
            f"against every instruction, so the similarity filter cannot reject their "
            f"duplicates: {hint}"
        )

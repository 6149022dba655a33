"""Notices answers that arrive but yield nothing usable, and stops the run before it loops.

A provider that echoes the prompt, answers ``"text": null`` or talks past the format
(a chat model behind ``--api completions``) returns 200s that parse to nothing. Nothing
fails, so retries, backoff and the failed-in-a-row rule never see it: the pipeline would
go on buying answers forever. Each stage reports every answer it got as usable or not;
too many useless ones in a row, or too large a share of a full window, raise
:class:`~selfinstruct_async.errors.UselessAnswers` with a sample of the last answer.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import deque
from dataclasses import dataclass, field

from ..errors import UselessAnswers

log = logging.getLogger("selfinstruct_async")

SAMPLE_CHARS = 120
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "'": "\\'"}


def quote_sample(text: str, limit: int = SAMPLE_CHARS) -> str:
    """``text`` on one line between quotes: control characters escaped, cut at ``limit``."""
    cut = text[:limit]
    out = []
    for ch in cut:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    more = "..." if len(text) > limit else ""
    return f"'{''.join(out)}'{more}"


@dataclass
class _StageRecord:
    """The recent answers of one stage: ``True`` for each useless one."""

    window: deque[bool]
    streak: int = 0
    useless_in_window: int = 0


@dataclass
class AnswerGuard:
    """Per-stage streak and windowed share of useless answers, with the run's limits."""

    max_streak: int
    max_share: float
    window: int
    hint: str = "check the model and --api (completions vs chat)"
    _stages: dict[str, _StageRecord] = field(default_factory=dict, init=False, repr=False)

    def record(self, stage: str, usable: bool, answer: str, *, replayed: bool = False) -> None:
        """Note one answer of ``stage``; raise ``UselessAnswers`` once the limits are passed.

        A useless answer ``replayed`` from the request ledger was judged in the session that
        bought it; a resume that asks its task again gets it back once before asking anew
        (which try a task is on is not kept), so it neither extends nor resets a streak.
        """
        if replayed and not usable:
            return
        state = self._stages.get(stage)
        if state is None:
            state = self._stages[stage] = _StageRecord(deque(maxlen=self.window))
        if len(state.window) == self.window and state.window[0]:
            state.useless_in_window -= 1  # about to fall out of the window
        state.window.append(not usable)
        if usable:
            state.streak = 0
            return
        state.useless_in_window += 1
        state.streak += 1
        sample = quote_sample(answer)
        if state.streak == 1:
            # Before the stop, so that someone tailing the log sees what the model answers.
            log.warning("an answer from %s yielded nothing usable: %s", stage, sample)
        if state.streak >= self.max_streak:
            raise UselessAnswers(
                stage,
                f"{state.streak} answers in a row from {stage} yielded nothing usable; "
                f"last answer: {sample}; {self.hint}",
            )
        full = len(state.window) == self.window
        if full and state.useless_in_window > self.max_share * self.window:
            raise UselessAnswers(
                stage,
                f"{state.useless_in_window} of the last {self.window} answers from {stage} "
                f"yielded nothing usable (more than {self.max_share:.0%}); "
                f"last answer: {sample}; {self.hint}",
            )

    def streak(self, stage: str) -> int:
        """Useless answers in a row from ``stage`` so far."""
        state = self._stages.get(stage)
        return 0 if state is None else state.streak

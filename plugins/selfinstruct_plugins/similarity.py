"""The ROUGE-L similarity filter: reject an instruction too similar to one in the pool.

A built-in plugin written exactly as a third party would write one. The paper's rule is
"ROUGE-L F > 0.7 with any instruction already in the pool"; scores are rouge-score's
``rougeL`` F-measure bit for bit, computed by :class:`SimilarityIndex` without comparing
every pair. ``[filters.rouge_similarity]`` takes ``threshold``, ``tokenizer`` (``"rouge"``,
rouge-score's ASCII-only rule, or ``"unicode"`` for Chinese, Japanese, Russian...) and
``on_empty_tokens`` (``"error"``, ``"warn"`` or ``"ignore"``: what to do when over 20% of
recent candidates have no tokens, which makes them unfilterable). The settings and their
validation are :class:`selfinstruct_async.similarity.SimilaritySettings`, shared with
``selfinstruct dedup``'s flags, so both accept and refuse the same values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from selfinstruct_async import BaseFilter, Rejection, hookimpl
from selfinstruct_async.filters import InstructionFilter
from selfinstruct_async.similarity import SimilarityIndex, SimilarityMetadata, SimilaritySettings

# ``[filters.rouge_similarity]``; the name the filter's ``Settings`` attribute has always had.
Settings = SimilaritySettings


class RougeSimilarity(BaseFilter):
    """Rejects a candidate whose ROUGE-L F with some pool instruction exceeds the threshold.

    The index is the pool: ``remember`` adds seeds, resumed and newly accepted instructions.
    ``check`` and ``remember`` take a lock, so a check never sees a half-added instruction
    even when the pipeline runs ``check`` on a worker thread (``cpu_bound``).
    """

    name = "rouge_similarity"
    order = 90
    cpu_bound = True
    Settings = Settings

    def __init__(self, settings: SimilaritySettings | None = None) -> None:
        settings = settings if settings is not None else SimilaritySettings()
        super().__init__(settings)
        self.threshold = settings.threshold
        self.index = SimilarityIndex.from_settings(settings)
        self._lock = threading.Lock()

    def check(self, instruction: str) -> Rejection | None:
        with self._lock:
            hit = self.index.first_above(instruction)
            if hit is None:
                return None
            item, score = hit
            text = self.index.text(item)
        return Rejection(
            reason=f"ROUGE-L {score:.3f} > {self.threshold} with pool instruction: {text[:80]!r}"
        )

    def remember(self, instruction: str) -> None:
        with self._lock:
            self.index.add(instruction)

    def metadata(self, instruction: str, k: int = 10) -> SimilarityMetadata:
        """The paper's metadata: the k most similar pool instructions and the mean score.

        O(pool): one C++ LCS pass over the whole pool, about 50 ms at 200K instructions.
        """
        with self._lock:
            return self.index.metadata(instruction, k)


@hookimpl
def register_instruction_filters(register: Callable[[type[InstructionFilter]], None]) -> None:
    """Offer the ROUGE-L similarity filter."""
    register(RougeSimilarity)

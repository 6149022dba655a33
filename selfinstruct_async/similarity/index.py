"""An incremental, exact ROUGE-L index: "is any pool instruction more similar than t?".

Scores are rouge-score's ``rougeL`` F-measure bit for bit: the LCS length comes from
rapidfuzz (``LCSseq`` on token-id strings, one code point per token) and F is computed with
rouge-score's own floating-point expression (:mod:`.bounds`). Everything else only decides
which pool items need an LCS at all, and only ever skips items whose F provably cannot
exceed the threshold: an overlap bound for every item from 256 token buckets
(:mod:`.buckets`, one numpy gather-and-sum), compared in the same pass with nearly the least
LCS the item's own length needs (an offset byte per item, :func:`.bounds.credits`), then
exactly; the few items left get an exact LCS, most promising first, and the search stops at
the first hit. Items of over 255 tokens have no counts and are verified whenever
their length could reach the threshold; pools of a few dozen items are simply scanned, one
C++ LCS pass over the pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from ..errors import SelfInstructError
from .bounds import LANE, NEVER, Needs, credits, f_from_lcs, f_vector, need_by_length
from .buckets import TokenBuckets
from .empty_tokens import EmptyTokensMonitor
from .settings import OnEmpty, SimilaritySettings, check_threshold
from .tokenizers import Tokenizer, get_tokenizer

__all__ = ["IndexStats", "SimilarityIndex", "SimilarityMetadata"]

# One code point per token; chr() stops at 0x10FFFF and one code is kept as the "unknown
# token" of queries, which no pool text contains.
_MAX_VOCAB = 0x110000 - 1
# Measured with bench/rouge.py's stream on one core: a C++ scan costs about 6 us plus
# 0.15 us an item, the bucket bound about 10 us plus 0.005 us an item.
_SCAN_BELOW = 48
_BATCH = 1024
_FEW = 24  # bucket survivors checked in plain Python up to this many
# Survivors verified one C++ call each (0.3 us) before batches (4 us a batch + 0.1 an item).
_ONE_BY_ONE = 16

# Items to verify, best first, and the least need() among them.
_Survivors = tuple[list[int], int]


@dataclass
class IndexStats:
    """Counters of the work the index did; cheap to keep, useful to tune and to bench."""

    queries: int = 0
    empty_queries: int = 0
    bounded: int = 0  # items given a bucket overlap bound
    pruned: int = 0  # of those, items the bound rules out without an LCS
    lcs_computed: int = 0
    hits: int = 0


@dataclass(frozen=True, slots=True)
class SimilarityMetadata:
    """The paper's per-instruction metadata: top-k similar pool instructions, mean score."""

    most_similar: tuple[tuple[str, float], ...]
    mean: float


class SimilarityIndex:
    """A pool of texts answering exact ROUGE-L queries (rouge-score's rougeL F-measure).

    The query text plays rouge-score's *prediction* and the pool text its *target*
    (``scorer.score(pool_text, query)``); F is symmetric, bit for bit, so the original
    scripts' opposite order gives the same numbers.

    Pools of up to ``scan_below`` items are scanned; the bucket counts grow in blocks of
    ``block`` items (both exact; tests force each path). Not thread-safe: one owner calls
    ``add`` and the queries (the filter plugin serialises them with a lock).
    """

    def __init__(
        self,
        tokenizer: str | Tokenizer = "rouge",
        threshold: float = 0.7,
        *,
        on_empty: OnEmpty = "error",
        empty_window: int = 200,
        max_empty_share: float = 0.2,
        scan_below: int = _SCAN_BELOW,
        block: int = 1 << 16,
    ) -> None:
        self.tokenizer = get_tokenizer(tokenizer)
        self.threshold = check_threshold(threshold)
        self.monitor = EmptyTokensMonitor(
            self.tokenizer.name, empty_window, max_empty_share, on_empty
        )
        self.stats = IndexStats()
        self._texts: list[str] = []
        self._seqs: list[str] = []  # token ids as code points
        self._lens = np.zeros(1024, dtype=np.int32)
        self._vocab: dict[str, int] = {}
        self._max_len = 0
        self._last_query: tuple[str | None, list[str]] = (None, [])
        self._scan_below = max(0, scan_below)
        self._buckets = TokenBuckets(block)
        # Each item's offset byte is what its length lets it off the least LCS it needs at
        # this threshold; queries at another threshold use the plain bound.
        self._offsets_at = self.threshold
        credit = credits(self.threshold)
        self._offset_of = [credit[LANE] - c for c in credit]

    @classmethod
    def from_settings(cls, settings: SimilaritySettings) -> SimilarityIndex:
        """The index the similarity filter (and ``dedup``) configure with these settings."""
        return cls(settings.tokenizer, settings.threshold, on_empty=settings.on_empty)

    # -- building -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, item: int) -> str:
        """The text that ``add`` returned ``item`` for."""
        return self._texts[item]

    def add(self, text: str) -> int:
        """Put a text in the pool (amortised O(tokens)); returns its id, 0, 1, 2..."""
        last_text, last_tokens = self._last_query
        # check-then-add is the usual pattern: do not tokenize the same text twice
        tokens = last_tokens if text == last_text else self.tokenizer.tokenize(text)
        ids = self._encode_new(tokens)
        item = len(self._texts)
        self._texts.append(text)
        self._seqs.append("".join(map(chr, ids)))
        if item == len(self._lens):
            self._lens = np.concatenate([self._lens, np.zeros(item, dtype=np.int32)])
        self._lens[item] = len(ids)
        self._max_len = max(self._max_len, len(ids))
        self._buckets.add(ids, self._offset_of[len(ids)] if len(ids) <= LANE else 0)
        return item

    def extend(self, texts: Iterable[str]) -> None:
        """``add`` every text, e.g. to rebuild the index from a checkpoint on resume."""
        for text in texts:
            self.add(text)

    def _encode_new(self, tokens: list[str]) -> list[int]:
        vocab = self._vocab
        ids = [vocab.get(token, -1) for token in tokens]
        if -1 in ids:  # first sightings take the next ids, in order
            for k, token in enumerate(tokens):
                if ids[k] < 0:
                    token_id = vocab.get(token)  # or seen earlier in this text
                    if token_id is None:
                        token_id = len(vocab)
                        if token_id >= _MAX_VOCAB:
                            raise SelfInstructError(
                                f"similarity index vocabulary is full ({_MAX_VOCAB} tokens)"
                            )
                        vocab[token] = token_id
                    ids[k] = token_id
        return ids

    # -- queries --------------------------------------------------------------------------

    def _encode_query(self, tokens: list[str]) -> list[int]:
        unknown = len(self._vocab)  # no pool text contains this code point
        return [self._vocab.get(token, unknown) for token in tokens]

    def _query_tokens(self, text: str) -> list[str]:
        tokens = self.tokenizer.tokenize(text)
        self._last_query = (text, tokens)
        self.stats.queries += 1
        if not tokens:
            self.stats.empty_queries += 1
        self.monitor.record(text, not tokens)
        return tokens

    def first_above(self, text: str, threshold: float | None = None) -> tuple[int, float] | None:
        """A pool item whose F with ``text`` is above the threshold, with that F, or None.

        Exact: None means no pool item scores above the threshold. The item returned is the
        first found, not necessarily the most similar (use ``most_similar`` for that).
        """
        t = self.threshold if threshold is None else check_threshold(threshold)
        tokens = self._query_tokens(text)
        if not tokens or not self._texts:
            return None
        ids = self._encode_query(tokens)
        m = len(ids)
        if len(self._texts) <= self._scan_below:
            return self._scan_first("".join(map(chr, ids)), m, t)
        survivors = self._bucket_candidates(ids, t)
        if survivors is None:  # the usual answer: no LCS, so no code-point string either
            return None
        return self._verify("".join(map(chr, ids)), m, t, survivors)

    def _bucket_candidates(self, ids: list[int], t: float) -> _Survivors | None:
        """Items whose bucket overlap bound reaches need(m, n), largest bound first."""
        m = len(ids)
        size = len(self._texts)
        needs = need_by_length(m, t, max(m, self._max_len))
        if t == self._offsets_at:  # the same items pass; ~25x fewer reach Python
            cutoff = self._offset_of[0] + needs.rest
            near, bounds = self._buckets.over(ids, len(self._vocab), cutoff, offsets=True)
        else:
            near, bounds = self._buckets.over(ids, len(self._vocab), needs.least)
        self.stats.bounded += size
        if self._buckets.long_items:
            near, bounds = self._add_long_items(near, bounds, needs)
        if not len(near):
            self.stats.pruned += size
            return None
        if len(near) <= _FEW:  # numpy's per-call cost would dominate: check them one by one
            seqs, of = self._seqs, needs.of
            ranked = sorted(
                (-bound, item, len(seqs[item]))
                for item, bound in zip(near.tolist(), bounds.tolist(), strict=True)
                if bound >= of(len(seqs[item]))
            )
            self.stats.pruned += size - len(ranked)
            if not ranked:
                return None
            return [item for _, item, _ in ranked], min(of(n) for _, _, n in ranked)
        required = needs.of_lengths(self._lens.take(near))
        fits = np.flatnonzero(bounds >= required)
        self.stats.pruned += size - len(fits)
        if not len(fits):
            return None
        near, bounds = near[fits], bounds[fits]
        order = np.argsort(bounds.max() - bounds, kind="stable")  # largest bound first
        return near[order].tolist(), int(required[fits].min())

    def _add_long_items(
        self, near: np.ndarray[Any, Any], bounds: np.ndarray[Any, Any], needs: Needs
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Items too long for the buckets have no bound but their length: add those that fit."""
        seqs = self._seqs
        extra = [i for i in self._buckets.long_items if needs.of(len(seqs[i])) != NEVER]
        if not extra:
            return near, bounds
        return (
            np.concatenate([near, np.asarray(extra, dtype=np.int64)]),
            np.concatenate([bounds.astype(np.int64), [len(seqs[i]) for i in extra]]),
        )

    def _verify(
        self, query: str, m: int, t: float, survivors: _Survivors
    ) -> tuple[int, float] | None:
        """Exact LCS for the survivors, in order, until an F above t."""
        items, cutoff = survivors  # cutoff: below every survivor's need, an LCS gives 0
        stats = self.stats
        seqs = self._seqs
        similarity = LCSseq.similarity
        # One C++ call each for the first few (a third of the hits are the first survivor,
        # and a call costs a tenth of setting up a batch), then in batches.
        for item in items[:_ONE_BY_ONE]:
            stats.lcs_computed += 1
            lcs = similarity(query, seqs[item], score_cutoff=cutoff)
            if lcs:
                f = f_from_lcs(int(lcs), len(seqs[item]), m)
                if f > t:
                    stats.hits += 1
                    return item, f
        for start in range(_ONE_BY_ONE, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            stats.lcs_computed += len(batch)
            lcs_row = process.cdist(
                [query],
                [seqs[batch[0]]] if len(batch) == 1 else itemgetter(*batch)(seqs),
                scorer=LCSseq.similarity,
                dtype=np.int32,
                workers=1,
                score_cutoff=cutoff,
            )[0]
            for k in np.flatnonzero(lcs_row).tolist():
                f = f_from_lcs(int(lcs_row[k]), len(seqs[batch[k]]), m)
                if f > t:
                    stats.hits += 1
                    return batch[k], f
        return None

    def _all_lcs(self, query: str, cutoff: int = 0) -> np.ndarray[Any, Any]:
        matrix = process.cdist(
            [query],
            self._seqs,
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=1,
            score_cutoff=cutoff,
        )
        return np.asarray(matrix[0])

    def _scan_first(self, query: str, m: int, t: float) -> tuple[int, float] | None:
        self.stats.lcs_computed += len(self._seqs)
        least = need_by_length(m, t, max(m, self._max_len)).least
        lcs = self._all_lcs(query, least)  # below it F cannot exceed t: those give 0
        lens = self._lens
        for item in np.flatnonzero(lcs).tolist():
            f = f_from_lcs(int(lcs[item]), int(lens[item]), m)
            if f > t:
                self.stats.hits += 1
                return item, f
        return None

    def scores(self, text: str) -> np.ndarray[Any, Any]:
        """F of ``text`` with every pool item, in pool order (one C++ LCS pass, O(pool))."""
        tokens = self.tokenizer.tokenize(text)
        if not tokens or not self._texts:
            return np.zeros(len(self._texts), dtype=np.float64)
        ids = self._encode_query(tokens)
        self.stats.lcs_computed += len(self._seqs)
        query = "".join(map(chr, ids))
        return f_vector(self._all_lcs(query), self._lens[: len(self._seqs)], len(ids))

    def metadata(self, text: str, k: int = 10) -> SimilarityMetadata:
        """Top-k pool texts by F (ties: earlier first) and the mean F over the pool.

        Costs one LCS against every pool item (about 50 ms at 200K items on one core):
        compute it only when the metadata is wanted. The mean is ``np.mean`` over the scores
        in pool order, as the original scripts compute it; 0.0 for an empty pool.
        """
        scores = self.scores(text)
        if not len(scores):
            return SimilarityMetadata(most_similar=(), mean=0.0)
        k = max(0, min(k, len(scores)))
        top = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return SimilarityMetadata(
            most_similar=tuple((self._texts[i], float(scores[i])) for i in top.tolist()),
            mean=float(np.mean(scores)),
        )

    def most_similar(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The k pool texts most similar to ``text`` with their F, best first (O(pool))."""
        return list(self.metadata(text, k).most_similar)

    def mean_similarity(self, text: str) -> float:
        """Mean F of ``text`` with the whole pool (O(pool); see ``metadata`` for both)."""
        return self.metadata(text, 0).mean

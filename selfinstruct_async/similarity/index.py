"""An incremental, exact ROUGE-L index: "is any pool instruction more similar than t?".

Scores are rouge-score's ``rougeL`` F-measure bit for bit: the LCS length comes from
rapidfuzz (``LCSseq`` on token-id strings, one code point per token) and F is computed with
rouge-score's own floating-point expression (:mod:`.bounds`). Everything else only decides
which pool items need an LCS at all, and only ever skips items whose F provably cannot
exceed the threshold: an overlap bound for every item from 256 token buckets
(:mod:`.buckets`, one numpy gather-and-sum), compared in the same pass with nearly the least
LCS the item's own length needs (an offset byte per item, :func:`.bounds.credits`), then
exactly; the items left get an exact LCS (in pool order when a few dozen are left, most
slack, bound less need, first when more are), and the search stops at the first hit. The
pool is bounded a stretch at a time, oldest first (8,192 items, 16,384, then the rest of
each block), each stretch's survivors verified before the next, so a near-duplicate of an
old instruction ends the search early. Items of over 255 tokens have no counts and are
verified whenever their length could reach the threshold; pools of a few dozen items are
simply scanned, one C++ LCS pass over the pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from ..errors import SelfInstructError
from .bounds import LANE, NEVER, Needs, credits, f_from_lcs, f_vector, need_by_length
from .buckets import TokenBuckets, bucket
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
# Up to this many bucket survivors are checked one by one in pool order, each against its
# own need and then by LCS, stopping at the first hit; ranking them by slack first (a
# numpy call or a Python pass over all of them) cost more than the LCS it saved: part c's
# recorded queries (bench/candidate_checks.py), first_above -12% (bench/similarity_ab.py).
_FEW = 64
# Survivors verified one C++ call each (0.3 us) before batches (4 us a batch + 0.1 an item).
_ONE_BY_ONE = 16
# Search the pool stretch by stretch (stopping at the first hit) while at least this share
# of recent queries had a hit (a moving average over about 64); below it, in one pass.
# Part c of bench/pipeline.py (91% hits at 50,000 items) gains a third; bench/rouge.py's
# stream (15%) would pay a few microseconds a stretch for nothing.
_STRETCHES_FROM = 0.25
_HIT_MEMORY = 64

# Items to verify, best first, and the least need() among them.
_Survivors = tuple[list[int], int]


def _rank(
    near: np.ndarray[Any, Any],
    bounds: np.ndarray[Any, Any],
    lens: np.ndarray[Any, Any],
    needs: Needs,
) -> _Survivors:
    """The items whose bound reaches their own need(m, n), by slack (bound - need), then id.

    For more than ``_FEW`` survivors (fewer are checked in pool order). Slack first: an
    item whose bound clears its need by more tends to have the larger LCS, which matters
    when many items survive the bound.
    """
    required = needs.of_lengths(lens.take(near))
    slack = bounds.astype(np.int64) - required
    fits = np.flatnonzero(slack >= 0)
    if not len(fits):
        return [], NEVER
    near = near[fits]
    order = np.lexsort((near, -slack[fits]))
    return near[order].tolist(), int(required[fits].min())


@dataclass
class IndexStats:
    """Counters of the work the index did; cheap to keep, useful to tune and to bench."""

    queries: int = 0
    empty_queries: int = 0
    bounded: int = 0  # items given a bucket overlap bound
    pruned: int = 0  # of those, items given no LCS: the bound rules them out (or, checked
    # in pool order, they come after the hit)
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
        self._buckets_of: dict[str, int] = {}  # token -> bucket(its id), for queries
        self._needs_at: dict[int, Needs] = {}  # need_by_length(m, threshold, cap) by m
        self._max_len = 0
        self._hit_share = 0.0  # moving average of first_above's outcomes (1: a hit)
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
        if len(ids) > self._max_len:
            self._max_len = len(ids)
            self._needs_at.clear()  # their cap was the old longest length
        self._buckets.add(ids, self._offset_of[len(ids)] if len(ids) <= LANE else 0)
        return item

    def extend(self, texts: Iterable[str]) -> None:
        """``add`` every text, e.g. to rebuild the index from a checkpoint on resume."""
        for text in texts:
            self.add(text)

    def _encode_new(self, tokens: list[str]) -> list[int]:
        vocab = self._vocab
        ids = list(map(vocab.get, tokens, repeat(-1)))
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
                        self._buckets_of[token] = bucket(token_id)
                    ids[k] = token_id
        return ids

    # -- queries --------------------------------------------------------------------------

    def _encode_query(self, tokens: list[str]) -> list[int]:
        unknown = len(self._vocab)  # no pool text contains this code point
        return list(map(self._vocab.get, tokens, repeat(unknown)))

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
        if len(self._texts) <= self._scan_below:
            ids = self._encode_query(tokens)
            return self._scan_first("".join(map(chr, ids)), len(ids), t)
        hit = self._search(tokens, t)
        self._hit_share += ((hit is not None) - self._hit_share) / _HIT_MEMORY
        return hit

    def _needs(self, m: int, t: float) -> Needs:
        """``need_by_length`` for this pool's longest item, by m at the index's threshold."""
        cap = m if m > self._max_len else self._max_len
        if t != self.threshold:
            return need_by_length(m, t, cap)
        needs = self._needs_at.get(m)
        if needs is None:
            needs = self._needs_at[m] = need_by_length(m, t, cap)
        return needs

    def _search(self, tokens: list[str], t: float) -> tuple[int, float] | None:
        """Bucket bounds stretch by stretch of the pool, oldest first; LCS for the survivors.

        Survivors of each stretch are verified before the next stretch is bounded, so a
        query with a near-duplicate among the older items stops early (on part c's stream
        half the hits are in the oldest 11% of a 50,000-item pool); a query with none
        bounds every item, as one pass would, at a few microseconds more.
        """
        m = len(tokens)
        needs = self._needs(m, t)
        # Buckets straight from the tokens (unknown ones have none): the token ids are only
        # needed for an LCS, which most queries never compute.
        rows = set(map(self._buckets_of.get, tokens, repeat(-1)))
        rows.discard(-1)
        stretches = self._hit_share >= _STRETCHES_FROM
        if t == self._offsets_at:  # the same items pass; ~25x fewer reach Python
            cutoff = self._offset_of[0] + needs.rest
            chunks = self._buckets.chunks_of_rows(rows, cutoff, offsets=True, stretches=stretches)
        else:
            chunks = self._buckets.chunks_of_rows(rows, needs.least, stretches=stretches)
        stats = self.stats
        long_items = self._buckets.long_items
        query = ""  # the code-point string, built for the first LCS only
        for covered, near, bounds in chunks:
            stats.bounded += covered
            if long_items:  # checked with the first stretch
                near, bounds = self._add_long_items(near, bounds, needs)
                long_items = []
            if not len(near):
                stats.pruned += covered
                continue
            if len(near) <= _FEW:
                query = query or "".join(map(chr, self._encode_query(tokens)))
                hit, checked = self._verify_near(query, m, t, near, bounds, needs)
                stats.pruned += covered - checked
                if hit is not None:
                    return hit
                continue
            items, least = _rank(near, bounds, self._lens, needs)
            stats.pruned += covered - len(items)
            if items:
                query = query or "".join(map(chr, self._encode_query(tokens)))
                hit = self._verify(query, m, t, (items, least))
                if hit is not None:
                    return hit
        return None

    def _verify_near(
        self,
        query: str,
        m: int,
        t: float,
        near: np.ndarray[Any, Any],
        bounds: np.ndarray[Any, Any],
        needs: Needs,
    ) -> tuple[tuple[int, float] | None, int]:
        """A few bucket survivors, oldest first: each one's own need, then its LCS."""
        listed = needs.listed
        top = len(listed) - 1  # need() of every longer item: NEVER
        seqs = self._seqs
        similarity = LCSseq.similarity
        stats = self.stats
        checked = 0
        for item, bound in zip(near.tolist(), bounds.tolist(), strict=True):
            seq = seqs[item]
            n = len(seq)
            need_n = listed[n if n < top else top]
            if bound < need_n:
                continue
            checked += 1
            stats.lcs_computed += 1
            lcs = similarity(query, seq, score_cutoff=need_n)
            if lcs:
                f = f_from_lcs(int(lcs), n, m)
                if f > t:
                    stats.hits += 1
                    return (item, f), checked
        return None, checked

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

"""An incremental, exact ROUGE-L index: "is any pool instruction more similar than t?".

Scores are rouge-score's ``rougeL`` F-measure bit for bit: the LCS length comes from
rapidfuzz (``LCSseq`` on token-id strings, one code point per token) and F is computed with
rouge-score's own floating-point expression. Everything else only decides which pool items
need an LCS at all, and only ever skips items whose F provably cannot exceed the threshold:

* real-valued F is ``2 * lcs / (m + n)`` and the float F differs from it by a few ulps, so
  F > t needs ``lcs >= need(m, n)`` (computed with a 1e-9 safety margin) and, as
  ``lcs <= min(m, n)``, a length ratio above t / (2 - t);
* ``lcs`` is at most the multiset token overlap, so a pool item has to share at least
  ``need`` token occurrences with the candidate. Prefix filtering (Chaudhuri et al. 2006,
  Bayardo et al. 2007) turns that into an inverted index: order token occurrences by a
  global rarity order; two texts that share ``a`` occurrences share one of the first
  ``len - a + 1`` occurrences of each. Only those prefixes are indexed and probed, so the
  very common words ("the", "a", "write") rarely enter the index at all;
* candidates are verified most-promising first and the search stops at the first hit.

The rarity order is fixed between rebuilds (tokens first seen since the last rebuild count as
rarest); the index is rebuilt from its own texts whenever the pool doubles, so ``add`` is
amortised O(tokens).
"""

from __future__ import annotations

import math
import warnings
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from ..errors import SelfInstructError
from .tokenizers import Tokenizer, get_tokenizer

__all__ = [
    "EmptyTokensError",
    "EmptyTokensMonitor",
    "EmptyTokensWarning",
    "IndexStats",
    "SimilarityIndex",
    "SimilarityMetadata",
    "f_from_lcs",
    "rouge_l_f",
]

OnEmpty = Literal["error", "warn", "ignore"]

# Float F is within ~6 ulps of the real 2*lcs/(m+n); pruning uses this much larger margin so
# that it can never skip a pair whose float F exceeds the threshold.
_MARGIN = 1e-9
# One code point per token; chr() stops at 0x10FFFF and one code is kept as the "unknown
# token" of queries, which no pool text contains.
_MAX_VOCAB = 0x110000 - 1
_KEY_SHIFT = 21  # element key = occurrence << 21 | token id (ids < 2**21)
_ORDER_SHIFT = 42  # sort key = rank << 42 | element key (occurrences < 2**21)
_ELEMENT_MASK = (1 << _ORDER_SHIFT) - 1
_RANK_OFFSET = 1 << 40  # ranks of tokens new since the last rebuild are negative
_SCAN_BELOW = 2048  # up to this pool size one C++ pass over the pool beats the index
_SMALL_PROBE = 64  # fewer postings than this: filter in plain Python
_FIRST_BATCH = 16  # verified first (a hit is likeliest among them), then in large batches
_BATCH = 1024
_EXTRA_PROBES = 2  # query occurrences probed beyond the minimum prefix (any value is exact)
_BAND_SHIFT = 2  # postings are grouped by item length in bands of 4


class EmptyTokensError(SelfInstructError, ValueError):
    """Too many candidates tokenize to nothing: the filter cannot see them."""


class EmptyTokensWarning(UserWarning):
    """Like :class:`EmptyTokensError`, when the index is configured to warn only."""


def f_from_lcs(lcs: int, len_target: int, len_prediction: int) -> float:
    """rouge-score's ``_score_lcs`` F-measure from the LCS length, same float operations."""
    if len_target == 0 or len_prediction == 0:
        return 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f(target_tokens: Sequence[str], prediction_tokens: Sequence[str]) -> float:
    """ROUGE-L F of two token lists, equal to ``rouge_scorer._score_lcs(...).fmeasure``.

    The value is symmetric in its arguments (bit for bit too: ``2*P*R`` and ``P+R`` do not
    depend on the order), so which text is the target does not matter.
    """
    if not target_tokens or not prediction_tokens:
        return 0.0
    lcs = int(LCSseq.similarity(list(target_tokens), list(prediction_tokens)))
    return f_from_lcs(lcs, len(target_tokens), len(prediction_tokens))


def _f_vector(
    lcs: np.ndarray[Any, Any], lens: np.ndarray[Any, Any], m: int
) -> np.ndarray[Any, Any]:
    """``f_from_lcs`` over arrays (pool items are targets, the query the prediction).

    numpy applies the same IEEE operations in the same order as the scalar expression, so
    every element is bit-identical to ``f_from_lcs``.
    """
    lcs_f = lcs.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs_f / m
        recall = lcs_f / lens.astype(np.float64)
        f = 2 * precision * recall / (precision + recall)
    f[lcs == 0] = 0.0
    result: np.ndarray[Any, Any] = f
    return result


@lru_cache(maxsize=65536)
def _need(m: int, n: int, t: float) -> int:
    """Smallest LCS with which the float F of lengths m, n could exceed t (may be > min)."""
    return max(1, math.floor((t - _MARGIN) * (m + n) / 2) + 1)


@lru_cache(maxsize=65536)
def _min_overlap(n: int, t: float) -> int:
    """The least LCS a text of n tokens needs with any partner to score above t."""
    best = n + 1
    for m in range(1, n + 1):  # need() grows with the partner's length: the first fits best
        need = _need(m, n, t)
        if need <= m:
            best = need
            break
    return min(best, _need(n, n, t))


def _prefix_length(n: int, t: float) -> int:
    return max(0, n - _min_overlap(n, t) + 1)


@lru_cache(maxsize=65536)
def _first_tier(n: int, t: float) -> int:
    """How much of an n-token item's prefix partners at least as long need: n - need(n, n) + 1.

    need(m, n) grows with m, so for m >= n the item's first n - need(n, n) + 1 occurrences
    are enough; only shorter partners need the rest of the prefix (the second tier).
    """
    return min(_prefix_length(n, t), n - _need(n, n, t) + 1)


_Window = tuple[
    int,
    int,
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[tuple[int, int, bool], ...],
]
# Items to verify, best first; their lengths; the least need() among them.
_Survivors = tuple[list[int], "np.ndarray[Any, Any]", int]


@lru_cache(maxsize=4096)
def _length_window(m: int, t: float, cap: int, index_t: float) -> _Window:
    """What a query of m tokens reads for pool lengths lo..hi (up to ``cap``) at threshold t.

    Returns lo, hi, then per length n: need(m, n); the prefix of such an item that the probe
    covers; how many query occurrences to probe (band-wide: the most any n of the band
    needs, plus ``_EXTRA_PROBES``); and per band whether its second tier is read.
    """
    lo = 1
    while lo <= m and _need(m, lo, t) > lo:
        lo += 1
    hi = m
    while hi < cap and _need(m, hi + 1, t) <= m:
        hi += 1
    lengths = range(lo, hi + 1)
    band_probes: dict[int, int] = {}
    band_both: dict[int, bool] = {}
    for n in lengths:
        band = n >> _BAND_SHIFT
        probes = min(m, m - _need(m, n, t) + 1 + _EXTRA_PROBES)
        band_probes[band] = max(band_probes.get(band, 0), probes)
        band_both[band] = band_both.get(band, False) or n > m
    return (
        lo,
        hi,
        tuple(_need(m, n, t) for n in lengths),
        tuple(
            _prefix_length(n, index_t) if band_both[n >> _BAND_SHIFT] else _first_tier(n, index_t)
            for n in lengths
        ),
        tuple(band_probes[n >> _BAND_SHIFT] for n in lengths),
        tuple((band, band_probes[band], band_both[band]) for band in sorted(band_probes)),
    )


@dataclass
class IndexStats:
    """Counters of the work the index did; cheap to keep, useful to tune and to bench."""

    queries: int = 0
    empty_queries: int = 0
    probed: int = 0  # postings read from the prefix index
    pruned: int = 0  # items found there whose overlap bound rules them out
    lcs_computed: int = 0
    hits: int = 0
    rebuilds: int = 0


@dataclass(frozen=True, slots=True)
class SimilarityMetadata:
    """The paper's per-instruction metadata: top-k similar pool instructions, mean score."""

    most_similar: tuple[tuple[str, float], ...]
    mean: float


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
        if on_empty not in ("error", "warn", "ignore"):
            raise ValueError(f"on_empty must be 'error', 'warn' or 'ignore', not {on_empty!r}")
        self.tokenizer_name = tokenizer_name
        self.window = window
        self.max_share = max_share
        self.on_empty: OnEmpty = on_empty
        self.total = 0
        self.total_empty = 0
        self._recent: deque[bool] = deque(maxlen=window)
        self._recent_empty = 0
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
        if self.on_empty == "ignore" or len(self._recent) < min(self.window, 50):
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


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:  # also rejects NaN
        raise ValueError(f"threshold must be between 0 and 1, not {threshold!r}")
    return t


class SimilarityIndex:
    """A pool of texts answering exact ROUGE-L queries (rouge-score's rougeL F-measure).

    The query text plays rouge-score's *prediction* and the pool text its *target*
    (``scorer.score(pool_text, query)``); F is symmetric, bit for bit, so the original
    scripts' opposite order gives the same numbers.

    Not thread-safe: one owner calls ``add`` and the queries (the filter plugin serialises
    them with a lock).
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
    ) -> None:
        self.tokenizer = get_tokenizer(tokenizer)
        self.threshold = _check_threshold(threshold)
        self.monitor = EmptyTokensMonitor(
            self.tokenizer.name, empty_window, max_empty_share, on_empty
        )
        self.stats = IndexStats()
        self._texts: list[str] = []
        self._seqs: list[str] = []  # token ids as code points
        self._lens = np.zeros(1024, dtype=np.int32)
        self._vocab: dict[str, int] = {}
        self._df: list[int] = []  # document frequency per token id
        self._rank: list[int] = []  # position in the global order, lower = rarer
        self._next_new_rank = -1
        # By item length: (first tier, second tier) postings, element -> packed item, position.
        self._postings: dict[int, tuple[dict[int, array[int]], dict[int, array[int]]]] = {}
        # Small pools are scanned in one C++ pass; the prefix index is built past this size.
        self._scan_below = max(0, scan_below)
        self._next_rebuild = self._scan_below + 1
        self._max_len = 0
        self._last_query: tuple[str | None, list[str]] = (None, [])

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
        df = self._df
        for token in set(ids):
            df[token] += 1
        if len(self._texts) >= self._next_rebuild:
            self._rebuild()
        elif len(self._texts) > self._scan_below:
            self._index(item, ids)
        return item

    def extend(self, texts: Iterable[str]) -> None:
        """``add`` every text, e.g. to rebuild the index from a checkpoint on resume."""
        for text in texts:
            self.add(text)

    def _encode_new(self, tokens: list[str]) -> list[int]:
        vocab = self._vocab
        ids = []
        for token in tokens:
            token_id = vocab.get(token)
            if token_id is None:
                token_id = len(vocab)
                if token_id >= _MAX_VOCAB:
                    raise SelfInstructError(
                        f"similarity index vocabulary is full ({_MAX_VOCAB} distinct tokens)"
                    )
                vocab[token] = token_id
                self._df.append(0)
                self._rank.append(self._next_new_rank)  # new since the last rebuild: rarest
                self._next_new_rank -= 1
            ids.append(token_id)
        return ids

    def _elements(self, ids: list[int]) -> list[int]:
        """Token occurrences as element keys, in the global order (rarest first)."""
        seen: dict[int, int] = {}
        keyed = []
        rank = self._rank
        known = len(rank)
        for token in ids:
            k = seen.get(token, 0)
            seen[token] = k + 1
            # One int per occurrence sorts fastest: rank, then occurrence, then token id; the
            # low bits are the element key. Unknown query tokens (rank 0 here) come first.
            order = rank[token] + _RANK_OFFSET if token < known else 0
            keyed.append((order << _ORDER_SHIFT) | (k << _KEY_SHIFT) | token)
        keyed.sort()
        return [key & _ELEMENT_MASK for key in keyed]

    def _index(self, item: int, ids: list[int]) -> None:
        if not ids:
            return
        n = len(ids)
        tiers = self._postings.get(n >> _BAND_SHIFT)
        if tiers is None:
            self._postings[n >> _BAND_SHIFT] = tiers = ({}, {})
        first_tier = _first_tier(n, self.threshold)
        shifted = item << 32
        for position, key in enumerate(self._elements(ids)[: _prefix_length(n, self.threshold)]):
            postings = tiers[0] if position < first_tier else tiers[1]
            bucket = postings.get(key)
            if bucket is None:
                postings[key] = bucket = array("q")
            bucket.append(shifted | position)

    def _rebuild(self) -> None:
        """Re-rank tokens by document frequency and re-index every prefix."""
        self.stats.rebuilds += 1
        order = sorted(range(len(self._df)), key=lambda tok: (self._df[tok], -tok))
        for position, token in enumerate(order):
            self._rank[token] = position
        self._next_new_rank = -1
        self._postings = {}
        for item, seq in enumerate(self._seqs):
            self._index(item, [ord(c) for c in seq])
        self._next_rebuild = 2 * len(self._texts)

    # -- queries --------------------------------------------------------------------------

    def _encode_query(self, tokens: list[str]) -> tuple[list[int], str]:
        unknown = len(self._vocab)  # no pool text contains this code point
        ids = [self._vocab.get(token, unknown) for token in tokens]
        return ids, "".join(map(chr, ids))

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
        A threshold below the index's own falls back to scoring the whole pool.
        """
        t = self.threshold if threshold is None else _check_threshold(threshold)
        tokens = self._query_tokens(text)
        if not tokens or not self._texts:
            return None
        ids, query = self._encode_query(tokens)
        if t < self.threshold or len(self._texts) <= self._scan_below:
            return self._scan_first(query, len(ids), t)
        return self._probe_first(ids, query, t)

    def _probe_first(self, ids: list[int], query: str, t: float) -> tuple[int, float] | None:
        m = len(ids)
        lo, hi, needs, item_prefixes, probes, bands = _length_window(
            m, t, max(m, self._max_len), self.threshold
        )
        elements = self._elements(ids)
        found: list[array[int]] = []
        where: list[int] = []
        for band, band_probes, both in bands:
            tiers = self._postings.get(band)
            if tiers is None:
                continue
            # An item of n tokens must share need(m, n) occurrences: one of them is among the
            # query's first m - need + 1 and among the item's first n - need + 1, which for
            # n <= m lie in its first tier. Probing a few more of the query's makes the
            # overlap bound of _filter_* rule out most items with a single hit.
            first, second = tiers
            for i, key in enumerate(elements[:band_probes]):
                bucket = first.get(key)
                if bucket is not None:
                    found.append(bucket)
                    where.append(i)
                if both:
                    bucket = second.get(key)
                    if bucket is not None:
                        found.append(bucket)
                        where.append(i)
        if not found:
            return None
        sizes = [len(b) for b in found]
        total = sum(sizes)
        self.stats.probed += total
        if total <= _SMALL_PROBE:
            survivors = self._filter_small(found, where, m, lo, hi, needs, item_prefixes, probes)
        else:
            survivors = self._filter_large(
                found, where, sizes, m, lo, hi, needs, item_prefixes, probes
            )
        return self._verify(query, m, t, survivors)

    def _filter_small(
        self,
        found: list[array[int]],
        where: list[int],
        m: int,
        lo: int,
        hi: int,
        needs: tuple[int, ...],
        item_prefixes: tuple[int, ...],
        probes: tuple[int, ...],
    ) -> _Survivors:
        """``_filter_large`` for a handful of postings, without numpy's per-call overhead."""
        hits: dict[int, list[int]] = {}  # item -> [shared prefix occurrences, i, j of last]
        for i, bucket in zip(where, found, strict=True):
            for packed in bucket:
                item = packed >> 32
                seen = hits.get(item)
                if seen is None:
                    hits[item] = [1, i, packed & 0xFFFFFFFF]
                else:
                    seen[0] += 1
                    seen[1] = i
                    seen[2] = packed & 0xFFFFFFFF
        lens = self._lens
        ranked = []
        for item, (shared, i, j) in hits.items():
            n = int(lens[item])
            if n < lo or n > hi:  # bands overlap the length window's ends
                continue
            need = needs[n - lo]
            rest = max(
                min(m - probes[n - lo], n - 1 - j), min(m - 1 - i, n - item_prefixes[n - lo])
            )
            if shared + rest >= need:
                ranked.append((-shared, item, n, need))
        self.stats.pruned += len(hits) - len(ranked)
        ranked.sort()
        return (
            [item for _, item, _, _ in ranked],
            np.fromiter((n for _, _, n, _ in ranked), dtype=np.int64, count=len(ranked)),
            min((need for _, _, _, need in ranked), default=0),
        )

    def _filter_large(
        self,
        found: list[array[int]],
        where: list[int],
        sizes: list[int],
        m: int,
        lo: int,
        hi: int,
        needs: tuple[int, ...],
        item_prefixes: tuple[int, ...],
        probes: tuple[int, ...],
    ) -> _Survivors:
        """Items whose overlap bound reaches need(m, n), most shared occurrences first.

        Both texts list their token occurrences in the same global order, so the ones they
        share appear in the same order in both, and those in both probed prefixes (the
        ``shared`` ones found) come first. Every other shared occurrence lies after the last
        hit (i, j), and beyond the query's probed prefix or the item's indexed prefix:
        ``LCS <= overlap <= shared + max(min(m - probed, n - 1 - j),
        min(m - 1 - i, n - item_prefix))``.
        """
        packed = np.frombuffer(b"".join(found), dtype=np.int64)[::-1]
        query_pos = np.repeat(np.asarray(where, dtype=np.int64), sizes)[::-1]
        # Reversed, so that the first occurrence np.unique reports is the last hit.
        items, last, shared = np.unique(packed >> 32, return_index=True, return_counts=True)
        lens = self._lens[items].astype(np.int64)
        in_window = (lens >= lo) & (lens <= hi)  # bands overlap the length window's ends
        offset = np.clip(lens - lo, 0, hi - lo)
        need = np.asarray(needs, dtype=np.int64)[offset]
        item_prefix = np.asarray(item_prefixes, dtype=np.int64)[offset]
        probed = np.asarray(probes, dtype=np.int64)[offset]
        i = query_pos[last]
        j = packed[last] & 0xFFFFFFFF
        rest = np.maximum(
            np.minimum(m - probed, lens - 1 - j), np.minimum(m - 1 - i, lens - item_prefix)
        )
        fits = in_window & (shared + rest >= need)
        self.stats.pruned += int(len(items) - np.count_nonzero(fits))
        items, shared, lens, need = items[fits], shared[fits], lens[fits], need[fits]
        order = np.argsort(-shared, kind="stable")
        return items[order].tolist(), lens[order], int(need.min()) if len(need) else 0

    def _verify(
        self, query: str, m: int, t: float, survivors: _Survivors
    ) -> tuple[int, float] | None:
        """Exact LCS (C++ batches) for the survivors, in order, until an F above t."""
        items, lens, cutoff = survivors
        stats = self.stats
        seqs = self._seqs
        start = 0
        size = _FIRST_BATCH
        while start < len(items):
            batch = items[start : start + size]
            stats.lcs_computed += len(batch)
            lcs_row = process.cdist(
                [query],
                [seqs[batch[0]]] if len(batch) == 1 else itemgetter(*batch)(seqs),
                scorer=LCSseq.similarity,
                dtype=np.int32,
                workers=1,
                score_cutoff=cutoff,  # below every survivor's need: those give 0
            )[0]
            for k in np.flatnonzero(lcs_row).tolist():
                f = f_from_lcs(int(lcs_row[k]), int(lens[start + k]), m)
                if f > t:
                    stats.hits += 1
                    return batch[k], f
            start += size
            size = _BATCH
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
        # need() is smallest for the shortest feasible partner; below it F cannot exceed t.
        cutoff = _length_window(m, t, max(m, self._max_len), self.threshold)[2][0]
        lcs = self._all_lcs(query, cutoff)
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
        ids, query = self._encode_query(tokens)
        self.stats.lcs_computed += len(self._seqs)
        return _f_vector(self._all_lcs(query), self._lens[: len(self._seqs)], len(ids))

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

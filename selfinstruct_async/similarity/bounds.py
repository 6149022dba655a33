"""rouge-score's ROUGE-L F arithmetic, and the least LCS with which a pair can exceed t.

Real-valued F is ``2 * lcs / (m + n)`` and rouge-score's float F differs from it by a few
ulps, so F > t needs ``lcs >= need(m, n)``, computed with a 1e-9 safety margin that is 10^7
times the rounding error. As ``lcs <= min(m, n)``, lengths with ``need > min(m, n)`` cannot
match at all (for t = 0.7 the shorter text must be over t / (2 - t) = 53.8% of the longer).
Every pruning rule in the index is phrased through ``need``; the final decision is always
``f_from_lcs`` on the exact LCS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from rapidfuzz.distance import LCSseq

__all__ = [
    "LANE",
    "NEVER",
    "Needs",
    "credits",
    "f_from_lcs",
    "f_vector",
    "need",
    "need_by_length",
    "rouge_l_f",
]

_MARGIN = 1e-9
NEVER = 2**31 - 1  # need() of a length that can never score above t (fits int32)
LANE = 255  # the longest item the byte-lane bucket counts hold (buckets.MAX_ITEM)


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


def f_vector(lcs: np.ndarray[Any, Any], lens: np.ndarray[Any, Any], m: int) -> np.ndarray[Any, Any]:
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
def need(m: int, n: int, t: float) -> int:
    """Smallest LCS with which the float F of lengths m, n could exceed t (may be > min)."""
    return max(1, math.floor((t - _MARGIN) * (m + n) / 2) + 1)


class Needs(NamedTuple):
    """need(m, n) of one query length m for every pool length n (``NEVER``: out of reach).

    The table stops at the first length too long to reach t (need grows with n: every
    longer item shares that ``NEVER``), so it stays about 2m / t entries long however long
    the longest pool item is.
    """

    table: np.ndarray[Any, Any]  # read-only: the cache shares it
    listed: tuple[int, ...]  # the same values, for a handful of items without numpy
    least: int  # below this nothing of any length can exceed t
    # need(m, n) >= credits(t)[n] + rest for every reachable n <= LANE (NEVER: none is)
    rest: int

    def of(self, n: int) -> int:
        """need(m, n), or ``NEVER``."""
        return self.listed[min(n, len(self.listed) - 1)]

    def of_lengths(self, lens: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``of`` for an array of lengths."""
        needs: np.ndarray[Any, Any] = self.table[np.minimum(lens, len(self.listed) - 1)]
        return needs


@lru_cache(maxsize=64)
def credits(t: float) -> tuple[int, ...]:
    """For n = 0..LANE: the part of need(m, n, t) an item of n tokens owes to its own length.

    ``floor((t - margin) * n / 2)``, at least 0. ``Needs.rest`` is defined against this
    table so that ``credits(t)[n] + rest <= need(m, n, t)`` holds by construction (the
    table's exact values only make the rule tighter or looser, never wrong). The index
    stores ``credits(t)[LANE] - credits(t)[n]`` beside each item's bucket counts, so a
    single comparison of the summed bytes applies every item's own length at once
    (:meth:`.buckets.TokenBuckets.over`). Non-decreasing, and ``credits[LANE] -
    credits[n] + n <= LANE``: that sum never carries out of a byte.
    """
    return tuple(max(0, math.floor((t - _MARGIN) * n / 2)) for n in range(LANE + 1))


@lru_cache(maxsize=256)
def need_by_length(m: int, t: float, cap: int) -> Needs:
    """The ``Needs`` of a query of m tokens at threshold t, for items of up to cap tokens."""
    listed = [NEVER]
    for n in range(1, cap + 1):
        required = need(m, n, t)
        if required > m:  # and so for every longer item
            break
        listed.append(required if required <= n else NEVER)
    listed.append(NEVER)
    table = np.array(listed, dtype=np.int32)
    table.setflags(write=False)
    credit = credits(t)
    reachable = [r - credit[n] for n, r in enumerate(listed[: LANE + 1]) if r != NEVER]
    return Needs(table, tuple(listed), min(listed), min(reachable, default=NEVER))
